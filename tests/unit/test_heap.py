"""Freed heap memory goes back to the operating system (glibc's malloc_trim)."""

from __future__ import annotations

import platform
from pathlib import Path

from bluegreen.git.heap import release_free_memory


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_fragmented_memory_is_returned() -> None:
    assert platform.libc_ver()[0] == "glibc"  # the operator image and these machines are Debian
    blocks = [bytearray(4000) for _ in range(20000)]  # ~80 MiB in small heap chunks, not mmapped
    keep = blocks[::50]  # a few survivors pin the heap top, so free() alone cannot shrink it
    del blocks
    before = rss_kib()
    assert release_free_memory()
    after = rss_kib()
    assert before - after > 40 * 1024, (before, after)
    del keep
