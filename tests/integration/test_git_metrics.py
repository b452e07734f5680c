"""What ``GitSource`` reports to its recorder (``core.recorder.Recorder``) against real repositories and a real
HTTPS server: one contact per listing of the remote's refs, one fetch only when objects were missing, each
with its result and duration, the repository named without credentials (also through the private-CA child
process, which reports its fetch's duration back)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gitservers
import pytest
from gitservers import HTTP_PASSWORD, HTTP_USER

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.core.recorder import Recorder
from bluegreen.core.spec import GitRef
from bluegreen.git.remote import parse_url
from bluegreen.git.source import GitSource

if TYPE_CHECKING:
    from conftest import GitRepo, Served, Tls

pytestmark = pytest.mark.integration

MAIN = GitRef("branch", "main")
MANIFEST = "deploy/deployment.yaml"


class Calls(Recorder):
    def __init__(self) -> None:
        self.contacts: list[tuple[str, str, float]] = []
        self.fetches: list[tuple[str, str, float]] = []

    def git_contact(self, repository: str, result: str, seconds: float) -> None:
        self.contacts.append((repository, result, seconds))

    def git_fetch(self, repository: str, result: str, seconds: float) -> None:
        self.fetches.append((repository, result, seconds))


def test_a_contact_each_time_the_refs_are_listed_and_a_fetch_only_when_the_ref_moved(
        tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> None:
    calls = Calls()
    source = GitSource(tmp_path / "cache", timeout_seconds=5.0, recorder=calls)
    origin = make_repo("origin")
    origin.commit("v1", {MANIFEST: b"v1"})
    key = parse_url(origin.url).key
    source.fetch(origin.url, MAIN)
    source.fetch(origin.url, MAIN)
    origin.commit("v2", {MANIFEST: b"v2"})
    source.fetch(origin.url, MAIN)
    assert [(r, result) for r, result, _ in calls.contacts] == [(key, "success")] * 3
    assert [(r, result) for r, result, _ in calls.fetches] == [(key, "success")] * 2, \
        "the second time there was nothing to fetch"
    assert all(0 < seconds < 5 for *_, seconds in calls.contacts + calls.fetches)
    assert all(fetch[2] <= contact[2] for fetch, contact in zip(calls.fetches, [calls.contacts[0], calls.contacts[2]],
                                                                strict=True)), "a fetch is part of its contact"

    missing = str(tmp_path / "nowhere")
    with pytest.raises(SourceError) as failed:
        source.fetch(missing, MAIN)
    assert calls.contacts[-1][:2] == (parse_url(missing).key, failed.value.reason)
    assert len(calls.fetches) == 2, "a failed listing fetched nothing"


def test_without_a_recorder_nothing_is_reported_and_nothing_breaks(tmp_path: Path,
                                                                   make_repo: Callable[[str], GitRepo]) -> None:
    origin = make_repo("origin")
    origin.commit("v1", {MANIFEST: b"v1"})
    assert GitSource(tmp_path / "cache").fetch(origin.url, MAIN).sha == origin.head()


def test_https_through_the_private_ca_process_names_the_repository_without_its_password(
        tmp_path: Path, make_repo: Callable[[str], GitRepo], served: Served, https_server: gitservers.HttpsGitServer,
        tls: Tls) -> None:
    calls = Calls()
    source = GitSource(tmp_path / "cache", timeout_seconds=5.0, recorder=calls)
    origin = make_repo("origin")
    origin.commit("v1", {MANIFEST: b"v1"})
    served.publish("app.git", origin)
    url = https_server.url("app.git").replace("https://", f"https://{HTTP_USER}:{HTTP_PASSWORD}@")
    credentials = Credentials.from_secret_data({"caFile": tls.ca.cert_pem})
    source.fetch(url, MAIN, credentials=credentials)
    wrong = https_server.url("app.git").replace("https://", f"https://{HTTP_USER}:not-{HTTP_PASSWORD}@")
    with pytest.raises(SourceError) as refused:
        source.fetch(wrong, MAIN, credentials=credentials)
    repository = https_server.url("app.git")
    assert [(r, result) for r, result, _ in calls.contacts] == [(repository, "success"),
                                                                (repository, refused.value.reason)]
    assert [(r, result) for r, result, _ in calls.fetches] == [(repository, "success")]
    assert calls.fetches[0][2] > 0, "the child process reports how long its fetch took"
    assert not any(HTTP_PASSWORD in r or HTTP_USER in r for r, *_ in calls.contacts + calls.fetches)
