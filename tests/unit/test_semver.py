"""Semver ranges as users write them for ``ref: {semver: ...}``: the highest matching tag wins."""

from __future__ import annotations

import pytest

from bluegreen.core.semver import RangeError, Version, highest_matching, parse_range

TAGS = ["v0.9.0", "v1.0.0", "v1.2.0", "v1.2.7", "1.3.0-rc.1", "v1.3.0", "v1.10.2", "v2.0.0-beta.1", "v2.0.0",
        "v2.1.3", "latest", "release-5", "v3.0"]


@pytest.mark.parametrize(("constraint", "expected"), [
    pytest.param(">=1.2.0 <2.0.0", "v1.10.2", id="and-range"),
    pytest.param("<2.0.0", "v1.10.2", id="below"),
    pytest.param(">2.0.0", "v2.1.3", id="above"),
    pytest.param("1.2.x", "v1.2.7", id="x-range"),
    pytest.param("1.*", "v1.10.2", id="star"),
    pytest.param("1", "v1.10.2", id="major-only"),
    pytest.param("~1.2.0", "v1.2.7", id="tilde"),
    pytest.param("^1.2.0", "v1.10.2", id="caret"),
    pytest.param("^0.9.0", "v0.9.0", id="caret-zero-major"),
    pytest.param("1.2.0 - 1.3.0", "v1.3.0", id="hyphen"),
    pytest.param("=1.2.0", "v1.2.0", id="exact"),
    pytest.param("1.0.0 || >=2.1.0", "v2.1.3", id="or"),
    pytest.param("*", "v2.1.3", id="any-release"),
    pytest.param(">=1.3.0-rc.0 <1.3.0", "1.3.0-rc.1", id="prerelease-named"),
    pytest.param(">=2.0.0-beta.0 <2.0.0", "v2.0.0-beta.1", id="beta-named"),
    pytest.param(">=5.0.0", None, id="none-match"),
])
def test_highest_matching_tag(constraint: str, expected: str | None) -> None:
    best = highest_matching(TAGS, constraint)
    assert (best[0] if best else None) == expected


def test_prereleases_do_not_match_by_accident() -> None:
    assert highest_matching(["v1.3.0-rc.1", "v1.2.0"], ">=1.0.0") == ("v1.2.0", Version(1, 2, 0))
    assert highest_matching(["v2.0.0-rc.1"], "<2.0.0") is None


@pytest.mark.parametrize(("a", "b"), [
    ("1.0.0-alpha", "1.0.0-alpha.1"), ("1.0.0-alpha.1", "1.0.0-alpha.beta"), ("1.0.0-beta.2", "1.0.0-beta.11"),
    ("1.0.0-rc.1", "1.0.0"), ("1.9.0", "1.10.0"), ("v1.0.0", "2.0.0"),
])
def test_precedence(a: str, b: str) -> None:
    va, vb = Version.parse(a), Version.parse(b)
    assert va is not None and vb is not None and va < vb


@pytest.mark.parametrize("text", ["", "  ", ">>1", "1.2.3 ||", "abc", "1.2.3 - ", "~>1.2"])
def test_invalid_ranges_are_refused(text: str) -> None:
    with pytest.raises(RangeError):
        parse_range(text)


def test_tags_that_are_not_versions_are_ignored() -> None:
    assert highest_matching(["latest", "stable", "v1", "1.2"], "*") is None
