"""Semver ranges, as tables: what each range form means (its comparators, the way npm desugars them), which
versions it matches, the exact refusal of a malformed range, and version parsing, printing and order."""

from __future__ import annotations

import pytest

from bluegreen.core.semver import RangeError, Version, highest_matching, parse_range


def desugared(text: str) -> str:
    return " || ".join(" ".join(f"{c.op}{c.version}" for c in alt) for alt in parse_range(text).alternatives)


@pytest.mark.parametrize(("text", "comparators"), [
    pytest.param('1.2.3', '=1.2.3', id='1.2.3'),
    pytest.param('=1.2.3', '=1.2.3', id='=1.2.3'),
    pytest.param('1.2.3-rc.1', '=1.2.3-rc.1', id='1.2.3-rc.1'),
    pytest.param('1.2', '>=1.2.0 <1.3.0-0', id='1.2'),
    pytest.param('1', '>=1.0.0 <2.0.0-0', id='1'),
    pytest.param('*', '>=0.0.0', id='*'),
    pytest.param('x', '>=0.0.0', id='x'),
    pytest.param('1.x.3', '>=1.0.0 <2.0.0-0', id='1.x.3'),
    pytest.param('1.2.x', '>=1.2.0 <1.3.0-0', id='1.2.x'),
    pytest.param('~1', '>=1.0.0 <2.0.0-0', id='~1'),
    pytest.param('~1.2', '>=1.2.0 <1.3.0-0', id='~1.2'),
    pytest.param('~1.2.3', '>=1.2.3 <1.3.0-0', id='~1.2.3'),
    pytest.param('~*', '>=0.0.0', id='~*'),
    pytest.param('^1.2.3', '>=1.2.3 <2.0.0-0', id='^1.2.3'),
    pytest.param('^0.2.3', '>=0.2.3 <0.3.0-0', id='^0.2.3'),
    pytest.param('^0.0.3', '>=0.0.3 <0.0.4-0', id='^0.0.3'),
    pytest.param('^0.0', '>=0.0.0 <0.1.0-0', id='^0.0'),
    pytest.param('^0', '>=0.0.0 <1.0.0-0', id='^0'),
    pytest.param('^*', '>=0.0.0', id='^*'),
    pytest.param('^0.0.x', '>=0.0.0 <0.1.0-0', id='^0.0.x'),
    pytest.param('>1', '>=2.0.0', id='>1'),
    pytest.param('>1.2', '>=1.3.0', id='>1.2'),
    pytest.param('>1.2.3', '>1.2.3', id='>1.2.3'),
    pytest.param('>1.2.3-rc.1', '>1.2.3-rc.1', id='>1.2.3-rc.1'),
    pytest.param('>=1', '>=1.0.0', id='>=1'),
    pytest.param('>=1.2.3-rc.1', '>=1.2.3-rc.1', id='>=1.2.3-rc.1'),
    pytest.param('<1', '<1.0.0-0', id='<1'),
    pytest.param('<1.2', '<1.2.0-0', id='<1.2'),
    pytest.param('<1.2.3', '<1.2.3', id='<1.2.3'),
    pytest.param('<1.2.3-rc.1', '<1.2.3-rc.1', id='<1.2.3-rc.1'),
    pytest.param('<=1', '<2.0.0-0', id='<=1'),
    pytest.param('<=1.2', '<1.3.0-0', id='<=1.2'),
    pytest.param('<=1.2.3', '<=1.2.3', id='<=1.2.3'),
    pytest.param('>*', '<0.0.0', id='>*'),
    pytest.param('>=*', '>=0.0.0', id='>=*'),
    pytest.param('<*', '<0.0.0', id='<*'),
    pytest.param('<=*', '>=0.0.0', id='<=*'),
    pytest.param('1.2.3 - 2.3', '>=1.2.3 <2.4.0-0', id='1.2.3 - 2.3'),
    pytest.param('1 - 2', '>=1.0.0 <3.0.0-0', id='1 - 2'),
    pytest.param('1.2.3-rc.1 - 2', '>=1.2.3-rc.1 <3.0.0-0', id='1.2.3-rc.1 - 2'),
    pytest.param('* - 2', '>=0.0.0 <3.0.0-0', id='* - 2'),
    pytest.param('>= 1.2.3 < 2', '>=1.2.3 <2.0.0-0', id='>= 1.2.3 < 2'),
    pytest.param('1.2.3 || 2.x', '=1.2.3 || >=2.0.0 <3.0.0-0', id='1.2.3 || 2.x'),
    pytest.param('v1.2.3', '=1.2.3', id='v1.2.3'),
    pytest.param('=v1.2', '>=1.2.0 <1.3.0-0', id='=v1.2'),
])
def test_each_range_form_desugars_like_npm(text: str, comparators: str) -> None:
    assert desugared(text) == comparators
    assert parse_range(text).text == text


@pytest.mark.parametrize(("text", "message"), [
    pytest.param('', "a semver range must be a non-empty string such as '>=1.2.0 <2.0.0'"),
    pytest.param('  ', "a semver range must be a non-empty string such as '>=1.2.0 <2.0.0'"),
    pytest.param('>>1', "'>>1' is not a semver range (could not read '>>1')"),
    pytest.param('1.2.3 ||', "'1.2.3 ||' has an empty alternative around '||'"),
    pytest.param('abc', "'abc' is not a semver range ('abc' is not a version)"),
    pytest.param('1.2.3 - ', "'1.2.3 - ' is not a semver range ('-' is not a version)"),
    pytest.param('~>1.2', "'~>1.2' is not a semver range (could not read '~>1.2')"),
    pytest.param('|| 1', "'|| 1' has an empty alternative around '||'"),
    pytest.param(5, "a semver range must be a non-empty string such as '>=1.2.0 <2.0.0'"),
    pytest.param('1.2.3.4', "'1.2.3.4' is not a semver range ('1.2.3.4' is not a version)"),
    pytest.param('>=1 <', "'>=1 <' is not a semver range (could not read '>=1 <')"),
])
def test_malformed_ranges_are_refused_with_a_reason(text: object, message: str) -> None:
    with pytest.raises(RangeError) as caught:
        parse_range(text)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize(("text", "version", "matches"), [
    pytest.param(">1.2.3", "1.2.3", False, id="gt-excludes-equal"),
    pytest.param(">1.2.3", "1.2.4", True, id="gt"),
    pytest.param(">=1.2.3", "1.2.3", True, id="ge-includes-equal"),
    pytest.param("<1.2.3", "1.2.3", False, id="lt-excludes-equal"),
    pytest.param("<=1.2.3", "1.2.3", True, id="le-includes-equal"),
    pytest.param("=1.2.3", "1.2.4", False, id="eq"),
    pytest.param("1.2.x", "1.3.0-rc.1", False, id="prerelease-of-the-next-minor"),
    pytest.param(">=1.3.0-rc.1", "1.3.0-rc.2", True, id="prerelease-of-the-named-core"),
    pytest.param(">=1.3.0-rc.1", "1.4.0-rc.1", False, id="prerelease-of-another-core"),
    pytest.param(">=1.3.0-rc.1 <2", "1.4.0", True, id="release-above-a-named-prerelease"),
    pytest.param("1.0.0 || 2.0.0-rc.1", "2.0.0-rc.1", True, id="prerelease-named-in-the-second-alternative"),
    pytest.param("<2 || >=3.0.0-rc.1", "3.0.0-rc.2", True, id="prerelease-in-a-later-set"),
    pytest.param("^1.2.3", "2.0.0-rc.1", False, id="caret-upper-excludes-next-prereleases"),
])
def test_which_versions_a_range_matches(text: str, version: str, matches: bool) -> None:
    parsed = Version.parse(version)
    assert parsed is not None
    assert parse_range(text).matches(parsed) is matches


@pytest.mark.parametrize(("text", "version", "printed"), [
    pytest.param("1.2.3", Version(1, 2, 3), "1.2.3", id="plain"),
    pytest.param("v1.2.3", Version(1, 2, 3), "1.2.3", id="v-prefix"),
    pytest.param(" 1.2.3 ", Version(1, 2, 3), "1.2.3", id="spaces"),
    pytest.param("1.2.3-rc.1", Version(1, 2, 3, ("rc", 1)), "1.2.3-rc.1", id="prerelease"),
    pytest.param("1.2.3-0.a-b", Version(1, 2, 3, (0, "a-b")), "1.2.3-0.a-b", id="mixed-prerelease"),
    pytest.param("1.2.3+build.5", Version(1, 2, 3), "1.2.3", id="build-metadata-ignored"),
    pytest.param("01.2.3", None, None, id="leading-zero"),
    pytest.param("1.2", None, None, id="two-parts"),
    pytest.param("latest", None, None, id="word"),
])
def test_version_parsing_and_printing(text: str, version: Version | None, printed: str | None) -> None:
    assert Version.parse(text) == version
    if version is not None:
        assert str(version) == printed
        assert version.core == (version.major, version.minor, version.patch)


def test_version_order_is_semver_precedence() -> None:
    ordered = ["0.9.0", "1.0.0-1", "1.0.0-2", "1.0.0-10", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0",
               "1.0.1", "1.1.0", "1.10.0", "2.0.0"]
    versions = [Version.parse(v) for v in ordered]
    assert all(v is not None for v in versions)
    assert sorted(versions, key=lambda v: (v is None, v)) == versions  # type: ignore[arg-type,return-value]
    assert Version(1, 0, 0) == Version(1, 0, 0) and not Version(1, 0, 0) < Version(1, 0, 0)
    assert Version(1, 0, 0).__lt__("1.0.0") is NotImplemented


def test_highest_matching_takes_a_parsed_range_or_text() -> None:
    tags = ["v1.2.0", "v1.4.0", "junk", "v2.0.0"]
    assert highest_matching(tags, parse_range("^1")) == ("v1.4.0", Version(1, 4, 0))
    assert highest_matching(tags, "^1") == ("v1.4.0", Version(1, 4, 0))
    assert highest_matching(["v1.4.0", "1.4.0"], "^1") == ("v1.4.0", Version(1, 4, 0)), "the first of equals wins"
    assert highest_matching([], "*") is None
