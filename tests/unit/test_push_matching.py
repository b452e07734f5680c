"""Which releases a push webhook concerns: same repository (any transport) and the followed ref."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bluegreen.core.repourl import repository_key, same_repository
from bluegreen.core.spec import GitRef
from bluegreen.runtime.controller import Controller, ref_matches


@pytest.mark.parametrize(("a", "b"), [
    ("https://git.example.com/Team/Deploy.git", "git@git.example.com:team/deploy.git"),
    ("ssh://git@git.example.com:2222/team/deploy", "https://user:token@git.example.com/team/deploy/"),
    ("http://git.example.com/team/deploy", "git://git.example.com/team/deploy.git"),
    ("/srv/git/deploy", "file:///srv/git/deploy.git"),
])
def test_same_repository_whatever_the_transport(a: str, b: str) -> None:
    assert same_repository(a, b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://git.example.com/team/deploy", "https://git.example.com/team/deploy-2"),
    ("https://git.example.com/team/deploy", "https://other.example.com/team/deploy"),
    ("/srv/git/Deploy", "/srv/git/deploy"),
])
def test_different_repositories(a: str, b: str) -> None:
    assert not same_repository(a, b)


def test_credentials_in_a_url_do_not_reach_the_key() -> None:
    assert "s3cret" not in repository_key("https://alice:s3cret@git.example.com/team/deploy.git")


@pytest.mark.parametrize(("spec_ref", "pushed", "expected"), [
    (GitRef("branch", "main"), "refs/heads/main", True),
    (GitRef("branch", "main"), "refs/heads/dev", False),
    (GitRef("branch", "main"), "refs/tags/v1", False),
    (GitRef("branch", "main"), "refs/tags/main", False),
    (GitRef("tag", "v1"), "refs/tags/v1", True),
    (GitRef("tag", "v1"), "refs/tags/v2", False),
    (GitRef("tag", "main"), "refs/heads/main", False),
    (GitRef("semver", ">=1.0.0"), "refs/tags/v2.0.0", True),
    (GitRef("semver", ">=1.0.0"), "refs/heads/main", False),
    (GitRef("commit", "abc1234"), "refs/heads/main", False),
    (GitRef("branch", "main"), None, True),
    (GitRef("branch", "main"), "refs/notes/main", False),
])
def test_ref_matches(spec_ref: GitRef, pushed: str | None, expected: bool) -> None:
    assert ref_matches(spec_ref, pushed) is expected


def release(name: str, url: str, ref: dict[str, str] | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"url": url, "path": "d.yaml"}
    if ref is not None:
        source["ref"] = ref
    return {"metadata": {"namespace": "ns", "name": name, "uid": name, "generation": 1},
            "spec": {"source": source, "service": "svc"}}


def test_trigger_asks_only_the_matching_releases_to_check_now() -> None:
    requested: list[tuple[str, str, float]] = []

    async def scenario() -> int:
        controller = Controller(lambda body, spec: None, request_check=lambda ns, n, at: requested.append((ns, n, at)))
        controller.upsert(release("a", "https://git.example.com/team/deploy.git"))  # default branch main
        controller.upsert(release("b", "git@git.example.com:team/deploy.git", {"branch": "dev"}))
        controller.upsert(release("c", "https://git.example.com/team/other.git"))
        controller.upsert(release("d", "ssh://git@git.example.com/team/deploy", {"semver": "^1"}))
        return controller.trigger(["https://git.example.com/team/deploy"], "refs/heads/main")

    assert asyncio.run(scenario()) == 1
    assert [(ns, name) for ns, name, _ in requested] == [("ns", "a")]
