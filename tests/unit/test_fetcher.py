"""The fetch scheduler's threads (``runtime.fetcher.FetchScheduler``) with a fake git source whose "hanging"
repositories block until released, the way a silent server blocks libgit2 until its timeout: a healthy
repository's checks are not held up, the threads stay bounded, and results reach ``on_change``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.runtime.feeds import Subscription
from bluegreen.runtime.fetcher import FetchScheduler
from bluegreen.verify.verifier import CommitVerifier

MANIFEST = b"""apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: web, image: "shop:%s"}]}
"""


class Source:
    """``https://hang/...`` blocks until ``release`` is set, then fails as a timeout; anything else answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.version = "v1"
        self.blocked = 0
        self.lock = threading.Lock()

    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot:
        if "//hang/" in url:
            with self.lock:
                self.blocked += 1
            self.release.wait(30)
            raise SourceError("RepositoryUnreachable", f"Cannot reach the repository {url}: timed out.")
        sha = (self.version.encode().hex() * 40)[:40]
        commit = CommitInfo(sha, self.version, "Dev <dev@example.com>", datetime.now(UTC),
                            refreshed_at=time.monotonic())
        return Snapshot(commit, path, MANIFEST % self.version.encode())

    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None:
        return None


class NoSecrets:
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return None


class Heard:
    """What ``on_change`` was told, with when."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []
        self.cond = threading.Condition()

    def __call__(self, namespace: str, name: str) -> None:
        with self.cond:
            self.events.append((time.monotonic(), name))
            self.cond.notify_all()

    def wait_for(self, name: str, after: float, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for moment, who in self.events:
                    if who == name and moment >= after:
                        return moment - after
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{name} was not notified within {timeout}s: {self.events}")
                self.cond.wait(left)


def sub(name: str, url: str, interval: float = 30.0) -> Subscription:
    return Subscription(("ns", name), url, GitRef("branch", "main"), "d.yaml", interval=interval)


@pytest.fixture
def world() -> Iterator[tuple[FetchScheduler, Source, Heard]]:
    source, heard = Source(), Heard()
    fetcher = FetchScheduler(source, NoSecrets(), CommitVerifier(), workers=2, max_threads=40, stuck_after=0.2)
    fetcher.start(heard)
    yield fetcher, source, heard
    source.release.set()
    fetcher.stop()


def test_hanging_repositories_delay_no_check_of_a_healthy_one(world: tuple[FetchScheduler, Source, Heard]) -> None:
    fetcher, source, heard = world
    start = time.monotonic()
    for n in range(20):
        fetcher.subscribe(sub(f"hang-{n}", f"https://hang/{n}.git"))
    fetcher.subscribe(sub("healthy", "https://git.example.com/deploy.git", interval=0.5))
    first = heard.wait_for("healthy", start)
    deadline = time.monotonic() + 5
    while source.blocked < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.blocked == 20, "every hanging repository is being checked"
    assert fetcher.in_flight() <= 40

    source.version = "v2"
    asked = time.monotonic()
    fetcher.request_check("ns", "healthy", asked)
    forced = heard.wait_for("healthy", asked)
    result = fetcher.result("ns", "healthy")
    assert result is not None and result.commit is not None and result.commit.summary == "v2"

    source.version = "v3"
    changed = time.monotonic()
    timed = heard.wait_for("healthy", changed)
    print(f"healthy beside 20 hanging: first result {first * 1000:.0f} ms, forced check {forced * 1000:.0f} ms, "
          f"timed check {timed * 1000:.0f} ms (interval 500 ms)")
    assert forced < 1.0, "a forced check starts at once"
    assert timed < 1.5, "the timed check comes on time"
    assert fetcher.result("ns", "hang-0") is None, "still hanging: no result yet"

    source.release.set()
    for n in range(20):
        heard.wait_for(f"hang-{n}", start)
    failed = fetcher.result("ns", "hang-7")
    assert failed is not None and failed.source.reason == "RepositoryUnreachable"


def test_threads_stay_bounded_when_more_repositories_hang_than_there_are_places() -> None:
    source, heard = Source(), Heard()
    fetcher = FetchScheduler(source, NoSecrets(), CommitVerifier(), workers=2, max_threads=6, stuck_after=0.05)
    fetcher.start(heard)
    try:
        for n in range(12):
            fetcher.subscribe(sub(f"hang-{n}", f"https://hang/{n}.git"))
        time.sleep(0.6)
        assert source.blocked == fetcher.in_flight() == 6, "max_threads runs at most"
        source.release.set()
        for n in range(12):
            heard.wait_for(f"hang-{n}", 0)
    finally:
        source.release.set()
        fetcher.stop()
    assert fetcher.in_flight() == 0
