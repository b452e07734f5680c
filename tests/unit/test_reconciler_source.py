"""When and how a release's git source is read, with fakes behind the Protocols (a pure unit: no cluster, no git).

The reconciler here uses an inline fetch scheduler (checks run in the pass, due by the scheduler's rules), or
one that is never started, to see what a pass does before any check is done. The real cluster, git and the
scheduler's threads are exercised in tests/e2e; here the rules are pinned: one look per interval, a push
webhook, the reconcile-at annotation or a resume forces a look, nothing is read while suspended, credentials
are read from the Secret on every look, a transient failure keeps the last good manifest while a permanent
one holds, and a release without any result waits a moment, then says NotFetched.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import Color, GitRef, ReleaseRef
from bluegreen.runtime.fetcher import FetchScheduler
from bluegreen.runtime.reconciler import Reconciler
from bluegreen.runtime.source_step import FIRST_RESULT_GRACE, FORCED_CHECK_HOLD
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


class FakeCluster:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.secret_reads = 0
        self.applied: list[Mapping[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.status: dict[str, Any] = {}

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self.secret_reads += 1
        return self.secrets.get(name)

    def color_state(self, release: ReleaseRef, color: Color) -> ColorState:
        """What was applied to this colour (never available: these tests are about git, not rollouts)."""
        for applied in reversed(self.applied):
            if applied["metadata"]["name"] == f"{release.name}-{color}":
                meta = applied["metadata"]
                return ColorState(color=color, exists=True, replicas=applied["spec"]["replicas"],
                                  template_hash=meta["annotations"]["bluegreen.dev/template-hash"],
                                  commit=meta["annotations"]["bluegreen.dev/commit"])
        return ColorState(color=color)

    def service_state(self, namespace: str, name: str) -> ServiceState:
        return ServiceState(name=name, exists=True)

    def apply_deployment(self, body: Mapping[str, Any]) -> None:
        self.applied.append(body)

    def apply_config_maps(self, release: ReleaseRef, color: Color, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        return []

    def delete_config_maps(self, namespace: str, names: Sequence[str]) -> None:
        pass

    def apply_object(self, body: Mapping[str, Any], *, known: bool) -> None:
        pass

    def delete_object(self, namespace: str, api_version: str, kind: str, name: str) -> None:
        pass

    def scale(self, release: ReleaseRef, color: Color, replicas: int, annotations: Mapping[str, str | None]) -> None:
        pass

    def switch_selector(self, namespace: str, service: str, color: Color) -> None:
        pass

    def patch_status(self, release: ReleaseRef, status: Mapping[str, Any]) -> None:
        self.status = dict(status)

    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))


class FakeSource:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.version = "v1"
        self.error: SourceError | None = None

    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot:
        self.calls.append({"not_before": not_before, "credentials": credentials})
        if self.error is not None:
            raise self.error
        sha = (self.version.encode().hex() * 40)[:40]
        commit = CommitInfo(sha, f"release {self.version}", "Dev <dev@example.com>", datetime.now(UTC))
        return Snapshot(commit, path, MANIFEST % self.version.encode())

    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None:
        return None  # every commit is unsigned


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(**source: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "shop", "uid": "u1", "generation": 1, "annotations": {}},
            "spec": {"source": {"url": "https://git.example.com/deploy.git", "path": "d.yaml", "interval": "30s",
                                **source}, "service": "shop"}}


@pytest.fixture
def world() -> tuple[Reconciler, FakeCluster, FakeSource, Clock]:
    cluster, source, clock = FakeCluster(), FakeSource(), Clock()
    fetcher = FetchScheduler(source, cluster, CommitVerifier(), monotonic=clock, random=lambda: 0.0, inline=True)
    return Reconciler(cluster, source, CommitVerifier(), monotonic=clock, fetcher=fetcher), cluster, source, clock


def test_git_is_read_once_per_interval(world: tuple[Reconciler, FakeCluster, FakeSource, Clock]) -> None:
    reconciler, _, source, clock = world
    reconciler.reconcile(body())
    clock.now += 10
    reconciler.reconcile(body())
    assert len(source.calls) == 1, "no second look inside the interval"
    clock.now += 25
    reconciler.reconcile(body())
    assert len(source.calls) == 2
    assert source.calls[1]["not_before"] == pytest.approx(clock.now - 15), "a contact in the last half interval will do"
    reconciler.reconcile(body())
    assert len(source.calls) == 2, "the next look is an interval after this one"


def test_a_push_webhook_forces_a_look_no_older_than_the_push(
        world: tuple[Reconciler, FakeCluster, FakeSource, Clock]) -> None:
    reconciler, _, source, clock = world
    reconciler.reconcile(body())
    clock.now += 2
    reconciler.request_check("shop", "shop", clock.now)
    reconciler.reconcile(body())
    assert len(source.calls) == 2 and source.calls[1]["not_before"] == clock.now
    reconciler.reconcile(body())
    assert len(source.calls) == 2, "a request is served once"


def test_reconcile_at_annotation_forces_a_look(world: tuple[Reconciler, FakeCluster, FakeSource, Clock]) -> None:
    reconciler, _, source, _ = world
    reconciler.reconcile(body())
    forced = body()
    forced["metadata"]["annotations"]["bluegreen.dev/reconcile-at"] = "1"
    reconciler.reconcile(forced)
    reconciler.reconcile(forced)
    assert len(source.calls) == 2


World = tuple[Reconciler, FakeCluster, FakeSource, Clock]


def test_credentials_come_from_the_secret_on_every_look(world: World) -> None:
    reconciler, cluster, source, clock = world
    spec = {"secretRef": {"name": "creds"}}
    reconciler.reconcile(body(**spec))
    assert cluster.status["conditions"][3]["reason"] == "SecretNotFound"
    cluster.secrets["creds"] = {"username": b"deployer", "password": b"first"}
    clock.now += 31
    reconciler.reconcile(body(**spec))
    cluster.secrets["creds"] = {"username": b"deployer", "password": b"rotated"}
    clock.now += 31
    reconciler.reconcile(body(**spec))
    passwords = [c["credentials"].password for c in source.calls if c["credentials"]]
    assert passwords == ["first", "rotated"], "a rotated Secret is used on the next look, without a restart"
    assert "rotated" not in repr(cluster.status) + repr(cluster.events)


def test_unreachable_keeps_the_last_good_manifest_missing_file_holds(
        world: tuple[Reconciler, FakeCluster, FakeSource, Clock]) -> None:
    reconciler, cluster, source, clock = world
    reconciler.reconcile(body())
    assert len(cluster.applied) == 1
    source.error = SourceError("RepositoryUnreachable", "git.example.com: connection refused")
    clock.now += 31
    reconciler.reconcile(body())
    assert reconciler.memory("shop", "shop").template is not None, "a release under way can finish"
    assert cluster.status["conditions"][2]["status"] == "False", "unreachable is not Stalled: it may cure itself"
    source.error = SourceError("PathNotFound", "d.yaml is not in commit 1234567")
    clock.now += 31
    reconciler.reconcile(body())
    assert reconciler.memory("shop", "shop").template is None
    assert cluster.status["conditions"][2]["status"] == "True" and cluster.status["conditions"][2]["reason"] == \
        "PathNotFound"
    assert ("Warning", "PathNotFound", "d.yaml is not in commit 1234567") in cluster.events


def test_an_unsigned_commit_is_never_applied(world: tuple[Reconciler, FakeCluster, FakeSource, Clock]) -> None:
    reconciler, cluster, _, _ = world
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))  # a well-formed public key
    cluster.secrets["keys"] = {"alice.pub": b"ssh-ed25519 " + base64.b64encode(blob) + b" alice"}
    reconciler.reconcile(body(verify={"mode": "head", "secretRef": {"name": "keys"}}))
    assert cluster.applied == []
    verified = next(c for c in cluster.status["conditions"] if c["type"] == "SourceVerified")
    assert (verified["status"], verified["reason"]) == ("False", "Unsigned")
    assert any(reason == "Unsigned" for _, reason, _ in cluster.events)


def test_a_resume_forces_a_look_and_nothing_is_read_while_suspended(world: World) -> None:
    reconciler, cluster, source, clock = world
    other = body()
    other["metadata"]["name"] = "other"  # keeps the feed alive while shop is suspended
    reconciler.reconcile(other)
    reconciler.reconcile(body())
    source.calls.clear()
    suspended = body()
    suspended["spec"]["suspend"] = True
    source.version = "v2"
    for _ in range(3):
        clock.now += 31
        reconciler.reconcile(suspended)
        assert reconciler.fetcher.result("shop", "shop") is None, "a suspended release is not subscribed"
    assert source.calls == [], "a suspended release reads nothing"
    applied = len(cluster.applied)
    source.calls.clear()
    clock.now += 1
    reconciler.reconcile(body())
    assert [call["not_before"] for call in source.calls] == [clock.now], "resuming checks git at once"
    assert len(cluster.applied) == applied + 1 and "shop:v2" in repr(cluster.applied[-1])


def test_a_changed_path_is_read_at_once_and_an_unchanged_interval_costs_nothing(world: World) -> None:
    reconciler, _, source, clock = world
    reconciler.reconcile(body())
    clock.now += 1
    reconciler.reconcile(body(interval="1m"))
    assert len(source.calls) == 1, "a new interval reads nothing new"
    reconciler.reconcile(body(path="other.yaml"))
    assert len(source.calls) == 2, "a new path is read at once"
    assert source.calls[1]["not_before"] <= clock.now - 1, "the mirror's last contact will do for it"


def test_a_release_without_any_result_waits_then_reports_not_fetched() -> None:
    cluster, source, clock = FakeCluster(), FakeSource(), Clock()
    idle = FetchScheduler(source, cluster, CommitVerifier(), monotonic=clock)  # never started: no check ever ends
    reconciler = Reconciler(cluster, source, CommitVerifier(), monotonic=clock, fetcher=idle)
    assert reconciler.reconcile(body()) == pytest.approx(FIRST_RESULT_GRACE)
    clock.now += 2
    assert reconciler.reconcile(body()) == pytest.approx(FIRST_RESULT_GRACE - 2)
    assert cluster.status == {} and cluster.events == [], "nothing is written while the first check may finish"
    clock.now += FIRST_RESULT_GRACE - 2
    reconciler.reconcile(body())
    source_ready = next(c for c in cluster.status["conditions"] if c["type"] == "SourceReady")
    assert (source_ready["status"], source_ready["reason"]) == ("False", "NotFetched")
    assert source.calls == [] and cluster.applied == []


def test_a_deleted_release_leaves_its_feed(world: World) -> None:
    reconciler = world[0]
    reconciler.reconcile(body())
    reconciler.forget("shop", "shop")
    assert reconciler.fetcher.book.feeds == {} and reconciler.fetcher.result("shop", "shop") is None


def test_a_pass_defers_to_a_forced_check_under_way_for_a_moment() -> None:
    cluster, source, clock = FakeCluster(), FakeSource(), Clock()
    fetcher = FetchScheduler(source, cluster, CommitVerifier(), monotonic=clock)  # runs only when told here
    reconciler = Reconciler(cluster, source, CommitVerifier(), monotonic=clock, fetcher=fetcher)
    reconciler.reconcile(body())
    fetcher.run_due()
    reconciler.reconcile(body())
    assert len(cluster.applied) == 1
    forced = body()
    forced["metadata"]["annotations"]["bluegreen.dev/reconcile-at"] = "1"
    source.version = "v2"
    writes = len(cluster.events)
    reconciler.request_check("shop", "shop", clock.now)  # what the controller does on the watch event
    clock.now += 0.25
    assert reconciler.reconcile(forced) == pytest.approx(FORCED_CHECK_HOLD - 0.25), "it stops: the check queues it"
    assert len(cluster.events) == writes and len(cluster.applied) == 1
    fetcher.run_due()
    assert reconciler.reconcile(forced) is not None and len(cluster.applied) == 2, "the check's result is released"
    forced["metadata"]["annotations"]["bluegreen.dev/reconcile-at"] = "2"
    clock.now += FORCED_CHECK_HOLD
    reconciler.reconcile(forced)
    clock.now += FORCED_CHECK_HOLD
    source.version = "v3"
    assert reconciler.reconcile(forced) == pytest.approx(30.0)
    assert len(cluster.applied) == 2 and cluster.status["lastAttemptedRevision"] == (b"v2".hex() * 40)[:40], \
        "a check that takes longer holds the pass no more: it goes on with what it has"


def test_a_pass_does_not_ask_again_for_the_check_the_controller_just_asked_for() -> None:
    cluster, source, clock = FakeCluster(), FakeSource(), Clock()
    fetcher = FetchScheduler(source, cluster, CommitVerifier(), monotonic=clock)
    reconciler = Reconciler(cluster, source, CommitVerifier(), monotonic=clock, fetcher=fetcher)
    reconciler.reconcile(body())
    fetcher.run_due()
    clock.now += 1
    reconciler.request_check("shop", "shop", clock.now)  # what Controller.upsert does on a new reconcile-at
    asked = clock.now
    clock.now += 0.5
    forced = body()
    forced["metadata"]["annotations"]["bluegreen.dev/reconcile-at"] = "1"
    reconciler.reconcile(forced)
    assert fetcher.requested_at("shop", "shop") == asked
    fetcher.run_due()
    assert len(source.calls) == 2 and source.calls[1]["not_before"] == asked, "one check for the one request"


def test_a_check_slower_than_the_hold_is_not_asked_for_again_by_the_pass() -> None:
    cluster, source, clock = FakeCluster(), FakeSource(), Clock()
    fetcher = FetchScheduler(source, cluster, CommitVerifier(), monotonic=clock)
    reconciler = Reconciler(cluster, source, CommitVerifier(), monotonic=clock, fetcher=fetcher)
    reconciler.reconcile(body())
    fetcher.run_due()
    reconciler.reconcile(body())
    clock.now += 1
    reconciler.request_check("shop", "shop", clock.now)
    asked = clock.now
    clock.now += 5  # the check is slow: the pass comes later, and goes on with what it has
    forced = body()
    forced["metadata"]["annotations"]["bluegreen.dev/reconcile-at"] = "1"
    assert reconciler.reconcile(forced) == pytest.approx(30.0)
    assert fetcher.requested_at("shop", "shop") == asked, "still the one check"
    forced["metadata"]["annotations"]["bluegreen.dev/reconcile-at"] = "2"
    clock.now += 1
    reconciler.reconcile(forced)
    assert fetcher.requested_at("shop", "shop") == clock.now, "a token seen after that pass asks anew"
