"""Give freed heap memory back to the operating system (glibc only; a no-op elsewhere).

CPython and libgit2 free memory into the C allocator, and glibc keeps those free pages in the process
until something asks for them back: a long-running operator's RSS then creeps up by the allocator's
fragmentation, not by anything alive. ``release_free_memory`` asks glibc (``malloc_trim(0)``) to return
every free page, which takes well under a millisecond. Call it after a full garbage collection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the OS; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
