"""Git ref rules and repository identity (core/gitref.py, core/repourl.py) and the reasoned error, as tables:
each rule's exact message, and the repository key of each URL form."""

from __future__ import annotations

import pytest

from bluegreen.core.errors import ClusterError, Outcome, ReasonedError, SourceError
from bluegreen.core.gitref import ref_name_problem, semver_problem
from bluegreen.core.repourl import is_scp_like, repository_key, same_repository

FORBIDDEN = "must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
DOTS = "must not contain '..' or '//', nor start with '/' or end with '/' or '.'"
PARTS = "no '/'-separated part may start with '.' or end with '.lock'"


@pytest.mark.parametrize(("name", "problem"), [
    pytest.param("main", None, id="plain"),
    pytest.param("release/v1.2", None, id="nested"),
    pytest.param("a.b/c-d_e", None, id="dots-inside"),
    pytest.param("x@y", None, id="at-inside"),
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("a b", FORBIDDEN, id="space"),
    pytest.param("a\tb", FORBIDDEN, id="tab"),
    pytest.param("a\x7f", FORBIDDEN, id="del"),
    pytest.param("v1~1", FORBIDDEN, id="tilde"),
    pytest.param("a^", FORBIDDEN, id="caret"),
    pytest.param("a:b", FORBIDDEN, id="colon"),
    pytest.param("a?", FORBIDDEN, id="question"),
    pytest.param("a*", FORBIDDEN, id="star"),
    pytest.param("a[", FORBIDDEN, id="bracket"),
    pytest.param("a\\b", FORBIDDEN, id="backslash"),
    pytest.param("-x", "must not start with '-'", id="dash-first"),
    pytest.param("@", "must not be '@' or contain '@{'", id="at"),
    pytest.param("a@{1}", "must not be '@' or contain '@{'", id="reflog-syntax"),
    pytest.param("a..b", DOTS, id="dot-dot"),
    pytest.param("a//b", DOTS, id="double-slash"),
    pytest.param("/a", DOTS, id="slash-first"),
    pytest.param("a/", DOTS, id="slash-last"),
    pytest.param("a.", DOTS, id="dot-last"),
    pytest.param(".a", PARTS, id="dot-first"),
    pytest.param("a/.b", PARTS, id="part-dot-first"),
    pytest.param("a.lock", PARTS, id="lock"),
    pytest.param("a.lock/b", PARTS, id="part-lock"),
])
def test_ref_name_rules(name: str, problem: str | None) -> None:
    assert ref_name_problem(name) == problem


def test_a_semver_problem_is_the_range_error() -> None:
    assert semver_problem(">=1.0.0 <2.0.0") is None
    assert semver_problem("not a range") == "'not a range' is not a semver range ('not' is not a version)"


@pytest.mark.parametrize(("url", "key"), [
    pytest.param("https://git.example.com/Team/Deploy.git", "git.example.com/team/deploy", id="https"),
    pytest.param("https://GIT.example.com/team/deploy/", "git.example.com/team/deploy", id="host-case-slash"),
    pytest.param("http://user:token@git.example.com:8080/team/deploy.git/", "git.example.com/team/deploy",
                 id="userinfo-port"),
    pytest.param("ssh://git@git.example.com:2222/team/deploy", "git.example.com/team/deploy", id="ssh"),
    pytest.param("git@git.example.com:team/deploy.git", "git.example.com/team/deploy", id="scp-like"),
    pytest.param("git@Git.Example.com:/Team/Deploy.git", "git.example.com/team/deploy", id="scp-like-rooted"),
    pytest.param("https://git.example.com/team/my%20repo.git", "git.example.com/team/my repo", id="quoted"),
    pytest.param("/srv/Git/Deploy.git/", "file:/srv/Git/Deploy", id="local-path-keeps-case"),
    pytest.param("file:///srv/Git/De%20ploy.git", "file:/srv/Git/De ploy", id="file-url"),
    pytest.param("  /srv/git/deploy  ", "file:/srv/git/deploy", id="spaces-stripped"),
    pytest.param("Weird", "weird", id="neither-url-nor-path"),
    pytest.param("https://h/team/REPOX", "h/team/repox", id="ends-with-x"),
    pytest.param("https://h/team/x%20", "h/team/x ", id="ends-with-a-space"),
    pytest.param("https:///team/x", "/team/x", id="no-host"),
    pytest.param("https://git.example.com/team/deploy.git.git", "git.example.com/team/deploy.git",
                 id="one-git-suffix-only"),
])
def test_repository_key(url: str, key: str) -> None:
    assert repository_key(url) == key


def test_same_repository_across_transports() -> None:
    assert same_repository("https://git.example.com/team/deploy.git", "git@git.example.com:team/deploy")
    assert not same_repository("https://git.example.com/team/deploy", "https://git.example.com/team/other")
    assert not same_repository("/srv/git/Deploy", "/srv/git/deploy"), "a local path keeps its case"


@pytest.mark.parametrize(("url", "scp"), [
    pytest.param("git@host:team/x.git", True, id="scp"),
    pytest.param("host:x", True, id="no-user"),
    pytest.param("ssh://git@host/x", False, id="url"),
    pytest.param("host://x", False, id="scheme"),
    pytest.param("/srv/x", False, id="path"),
])
def test_is_scp_like(url: str, scp: bool) -> None:
    assert is_scp_like(url) is scp


@pytest.mark.parametrize("kind", [ReasonedError, ClusterError, SourceError])
def test_a_reasoned_error_carries_its_reason_and_message(kind: type[ReasonedError]) -> None:
    error = kind("PathNotFound", "d.yaml is not in commit 1234567")  # type: ignore[arg-type]
    assert (error.reason, error.message, str(error), error.args) == (
        "PathNotFound", "d.yaml is not in commit 1234567", "d.yaml is not in commit 1234567",
        ("PathNotFound", "d.yaml is not in commit 1234567"))
    assert error.outcome("c" * 40) == Outcome(False, "PathNotFound", "d.yaml is not in commit 1234567", "c" * 40)
    assert error.outcome() == Outcome(False, "PathNotFound", "d.yaml is not in commit 1234567", None)
