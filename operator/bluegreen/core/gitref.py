"""What makes a git ref valid: commit ids, branch and tag names, semver ranges. Pure.

The rules live here once; the spec parser (``bluegreen.core.spec``) and the git source word their messages
for their own readers.
"""

from __future__ import annotations

import re

from bluegreen.core.semver import RangeError, parse_range

COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
"""A full or abbreviated commit id, lower case."""
_REF_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def is_commit_id(text: str) -> bool:
    """7 to 40 lowercase hex digits."""
    return bool(COMMIT_RE.fullmatch(text))


def ref_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid git branch or tag name (``git check-ref-format`` rules), or None."""
    if not name:
        return "must not be empty"
    if _REF_FORBIDDEN_RE.search(name):
        return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    if name.startswith("-"):
        return "must not start with '-'"
    if name == "@" or "@{" in name:
        return "must not be '@' or contain '@{'"
    if ".." in name or "//" in name or name.startswith("/") or name.endswith(("/", ".")):
        return "must not contain '..' or '//', nor start with '/' or end with '/' or '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "no '/'-separated part may start with '.' or end with '.lock'"
    return None


def semver_problem(text: str) -> str | None:
    """Why ``text`` is not a semver range, or None."""
    try:
        parse_range(text)
    except RangeError as exc:
        return str(exc)
    return None
