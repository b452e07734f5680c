"""Semantic versions and ranges for ``ref: {semver: ">=1.2.0 <2.0.0"}``: the highest matching tag. Pure.

Range syntax (as npm and Flux users know it): comparators ``=``, ``>``, ``>=``, ``<``, ``<=`` separated by
spaces (all must hold), alternatives joined by ``||``, x-ranges (``1.2.x``, ``1.*``, ``1``), tilde
(``~1.2.3``: >=1.2.3 <1.3.0) and caret (``^1.2.3``: >=1.2.3 <2.0.0; ``^0.2.3``: <0.3.0), hyphen ranges
(``1.2.3 - 2.0.0``). Tags may carry a leading ``v``. Pre-releases (``1.3.0-rc.1``) match only a range that
names a pre-release of the same major.minor.patch, and never by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

_VERSION_RE = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_PARTIAL_RE = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")
_COMPARATOR_RE = re.compile(r"^(>=|<=|>|<|=|~|\^)?\s*(\S+)$")


class RangeError(ValueError):
    """The range text is not a valid semver range."""


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = _VERSION_RE.match(text.strip())
        if not match:
            return None
        pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split(".")) if match.group(4) else ()
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        ids = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.core, 0 if self.prerelease else 1, ids)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return text + ("-" + ".".join(str(p) for p in self.prerelease) if self.prerelease else "")


@dataclass(frozen=True)
class _Comparator:
    op: str
    version: Version

    def holds(self, v: Version) -> bool:
        return {"=": v == self.version, ">": v > self.version, ">=": v >= self.version,
                "<": v < self.version, "<=": v <= self.version}[self.op]


@dataclass(frozen=True)
class Range:
    """A parsed range: alternatives (``||``) of comparator sets (all must hold)."""

    text: str
    alternatives: tuple[tuple[_Comparator, ...], ...]

    def matches(self, version: Version) -> bool:
        for comparators in self.alternatives:
            if not all(c.holds(version) for c in comparators):
                continue
            if not version.prerelease:
                return True
            # A pre-release matches only if some comparator of this set names the same core with a pre-release.
            if any(c.version.prerelease and c.version.core == version.core for c in comparators):
                return True
        return False


def parse_range(text: str) -> Range:
    """Parse a range; raise RangeError with a readable message when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise RangeError("a semver range must be a non-empty string such as '>=1.2.0 <2.0.0'")
    alternatives = []
    for part in text.split("||"):
        part = part.strip()
        if not part:
            raise RangeError(f"{text!r} has an empty alternative around '||'")
        alternatives.append(tuple(_parse_set(part, text)))
    return Range(text, tuple(alternatives))


def highest_matching(tags: Iterable[str], constraint: Range | str) -> tuple[str, Version] | None:
    """The tag with the highest version inside the range (None if none matches); non-semver tags are ignored."""
    rng = parse_range(constraint) if isinstance(constraint, str) else constraint
    best: tuple[str, Version] | None = None
    for tag in tags:
        version = Version.parse(tag)
        if version is not None and rng.matches(version) and (best is None or version > best[1]):
            best = (tag, version)
    return best


def _parse_set(part: str, whole: str) -> list[_Comparator]:
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", part)
    if hyphen:
        low = _partial(hyphen.group(1), whole)
        high = _partial(hyphen.group(2), whole)
        return [_Comparator(">=", _floor(low)), *_upper_inclusive(high)]
    tokens = re.findall(r"(?:>=|<=|>|<|=|~|\^)?\s*[^\s<>=~^]+", part)
    if "".join(t.replace(" ", "") for t in tokens) != part.replace(" ", ""):
        raise RangeError(f"{whole!r} is not a semver range (could not read {part!r})")
    result: list[_Comparator] = []
    for token in tokens:
        match = _COMPARATOR_RE.match(token.strip())
        if not match:
            raise RangeError(f"{whole!r} is not a semver range (could not read {token!r})")
        op, partial = match.group(1) or "", _partial(match.group(2), whole)
        result.extend(_expand(op, partial))
    return result


_Partial = tuple[int | None, int | None, int | None, tuple[int | str, ...]]


def _partial(text: str, whole: str) -> _Partial:
    match = _PARTIAL_RE.match(text)
    if not match:
        raise RangeError(f"{whole!r} is not a semver range ({text!r} is not a version)")
    nums: list[int | None] = []
    for group in match.groups()[:3]:
        nums.append(None if group is None or group in ("x", "X", "*") else int(group))
    for i in range(1, 3):  # 1.x.3 is not meaningful: everything after a wildcard is a wildcard
        if nums[i - 1] is None:
            nums[i] = None
    pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split(".")) if match.group(4) else ()
    return nums[0], nums[1], nums[2], pre


def _floor(p: _Partial) -> Version:
    return Version(p[0] or 0, p[1] or 0, p[2] or 0, p[3])


def _upper_inclusive(p: _Partial) -> list[_Comparator]:
    major, minor, patch, pre = p
    if major is None:
        return []
    if minor is None:
        return [_Comparator("<", Version(major + 1, 0, 0, (0,)))]
    if patch is None:
        return [_Comparator("<", Version(major, minor + 1, 0, (0,)))]
    return [_Comparator("<=", Version(major, minor, patch, pre))]


def _expand(op: str, p: _Partial) -> list[_Comparator]:
    major, minor, patch, pre = p
    if op in ("", "="):
        if major is None:
            return [_Comparator(">=", Version(0, 0, 0))]
        if patch is not None and minor is not None:
            return [_Comparator("=", Version(major, minor, patch, pre))]
        return [_Comparator(">=", _floor(p)), *_upper_inclusive(p)]
    if op == "~":
        if major is None:
            return [_Comparator(">=", Version(0, 0, 0))]
        upper = Version(major + 1, 0, 0, (0,)) if minor is None else Version(major, minor + 1, 0, (0,))
        return [_Comparator(">=", _floor(p)), _Comparator("<", upper)]
    if op == "^":
        if major is None:
            return [_Comparator(">=", Version(0, 0, 0))]
        if major > 0 or minor is None:
            upper = Version(major + 1, 0, 0, (0,))
        elif minor > 0 or patch is None:
            upper = Version(0, minor + 1, 0, (0,))
        else:
            upper = Version(0, 0, patch + 1, (0,))
        return [_Comparator(">=", _floor(p)), _Comparator("<", upper)]
    if major is None:  # >*, <* ...
        return [_Comparator(">=", Version(0, 0, 0))] if op in (">=", "<=") else [_Comparator("<", Version(0, 0, 0))]
    if op == ">":
        if minor is None:
            return [_Comparator(">=", Version(major + 1, 0, 0))]
        if patch is None:
            return [_Comparator(">=", Version(major, minor + 1, 0))]
        return [_Comparator(">", Version(major, minor, patch, pre))]
    if op == ">=":
        return [_Comparator(">=", _floor(p))]
    if op == "<":
        return [_Comparator("<", Version(major, minor or 0, patch or 0, pre or ((0,) if patch is None else ())))]
    # "<="
    return _upper_inclusive(p)
