"""The leader elector's campaign over an in-memory Lease store with the API server's conflict rule, with
short real timings; and the write guard of the API client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from bluegreen.core.leases import LeaseRecord, LeaseSettings
from bluegreen.kube.client import NotLeaderError, RequestTimeouts, TimedApiClient
from bluegreen.kube.leases import StoredLease
from bluegreen.runtime.leader import LeaderElector, identity, micro_time

FAST = LeaseSettings("ops", "lease", lease_duration=0.8, renew_deadline=0.5, retry_period=0.1)


class FakeLeases:
    """One Lease with resourceVersions: a replace over a stale copy is refused, as the API server does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stored: StoredLease | None = None
        self.version = 0
        self.failing = False
        self.writes: list[tuple[float, str]] = []
        self.labels: list[tuple[str, bool]] = []

    def _check(self) -> None:
        if self.failing:
            raise ConnectionError("API server unreachable")

    def read(self) -> StoredLease | None:
        self._check()
        with self.lock:
            return self.stored

    def _write(self, record: LeaseRecord) -> StoredLease:
        self.version += 1
        self.stored = StoredLease(record, str(self.version))
        self.writes.append((time.monotonic(), record.holder))
        return self.stored

    def create(self, record: LeaseRecord) -> StoredLease | None:
        self._check()
        with self.lock:
            return None if self.stored is not None else self._write(record)

    def replace(self, current: StoredLease, record: LeaseRecord) -> StoredLease | None:
        self._check()
        with self.lock:
            if self.stored is None or self.stored.resource_version != current.resource_version:
                return None
            return self._write(record)

    def label_pod(self, namespace: str, pod: str, leader: bool) -> None:
        self.labels.append((pod, leader))

    def holder(self) -> str | None:
        return self.stored.record.holder if self.stored else None


class Candidate:
    def __init__(self, store: FakeLeases, me: str, settings: LeaseSettings = FAST) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.elector = LeaderElector(store, settings, me, on_started=self.started.set,  # type: ignore[arg-type]
                                     on_stopped=self.stopped.set, pod=("ops", f"pod-{me}"))


def wait(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.01)
    return time.monotonic() - start


def test_one_leader_the_other_stands_by_and_takes_over_after_the_duration() -> None:
    store = FakeLeases()
    a, b = Candidate(store, "a"), Candidate(store, "b")
    a.elector.start()
    assert a.started.wait(2)
    b.elector.start()
    time.sleep(1.2)  # longer than the lease duration: a keeps renewing, b never gets it
    assert a.elector.is_leader() and not b.elector.is_leader() and not b.started.is_set()
    assert store.holder() == "a"
    assert {holder for _, holder in store.writes} == {"a"}
    renewals = len(store.writes)
    assert renewals >= 8  # every retry period (0.1 s) for 1.2 s
    # a crashes: no release, no more renewals.
    crashed = time.monotonic()
    a.elector.stop(give_up=False)
    wait(b.started.is_set)
    took = time.monotonic() - crashed
    assert store.holder() == "b" and b.elector.is_leader()
    assert 0.8 - 0.15 <= took <= 0.8 + 0.5, took  # after the lease duration (from b's last observation) + a retry
    assert store.stored is not None and store.stored.record.transitions == 1
    assert ("pod-b", True) in store.labels and store.labels[0] == ("pod-a", False)
    b.elector.stop()


def test_a_released_lease_is_taken_over_at_once() -> None:
    store = FakeLeases()
    a, b = Candidate(store, "a", LeaseSettings("ops", "lease", 5.0, 3.0, 0.1)), \
        Candidate(store, "b", LeaseSettings("ops", "lease", 5.0, 3.0, 0.1))
    a.elector.start()
    assert a.started.wait(2)
    b.elector.start()
    time.sleep(0.3)
    given_up = time.monotonic()
    a.elector.stop()  # graceful: the Lease is released
    assert store.stored is not None and store.stored.record.holder in ("", "b")
    assert b.started.wait(2)
    assert time.monotonic() - given_up < 1.0  # far sooner than the 5 s duration
    assert not a.elector.is_leader()
    b.elector.stop()
    assert store.holder() == ""


def test_a_leader_that_cannot_renew_stops_within_the_renew_deadline() -> None:
    store = FakeLeases()
    a = Candidate(store, "a")
    a.elector.start()
    assert a.started.wait(2)
    store.failing = True
    cut = time.monotonic()
    assert a.stopped.wait(2)
    assert 0.5 - 0.05 <= time.monotonic() - cut <= 0.5 + 0.3
    assert not a.elector.is_leader()
    # It stopped before anyone could take over: the last renewal plus the lease duration is still ahead.
    assert store.writes[-1][0] + FAST.lease_duration > time.monotonic()


def test_is_leader_turns_false_at_the_renew_deadline_even_before_the_thread_notices() -> None:
    store = FakeLeases()
    elector = LeaderElector(store, LeaseSettings("ops", "l", 3.0, 1.0, 0.5), "a",  # type: ignore[arg-type]
                            on_started=lambda: None, on_stopped=lambda: None)
    assert not elector.is_leader()
    assert elector._attempt()  # one claim, by hand
    elector._leading, elector._renewed = True, time.monotonic()
    assert elector.is_leader()
    elector._renewed = time.monotonic() - 1.0
    assert not elector.is_leader()


def test_a_conflicting_write_means_not_held() -> None:
    store = FakeLeases()
    store._write(LeaseRecord("other", 15, "t", "t", 0))
    elector = LeaderElector(store, FAST, "a", on_started=lambda: None, on_stopped=lambda: None)  # type: ignore[arg-type]
    assert not elector._attempt()
    assert store.holder() == "other"


def test_identity_and_micro_time() -> None:
    first, second = identity({"POD_NAME": "op-7d9"}), identity({"POD_NAME": "op-7d9"})
    assert first.startswith("op-7d9_") and first != second and len(first) == len("op-7d9_") + 8
    from datetime import UTC, datetime
    assert micro_time(datetime(2026, 12, 1, 10, 0, 5, 123, tzinfo=UTC)) == "2026-12-01T10:00:05.000123Z"


def test_the_write_guard_refuses_writes_not_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def fake_call(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> str:
        sent.append(method)
        return "ok"

    monkeypatch.setattr(client.ApiClient, "call_api", fake_call)
    api = TimedApiClient(client.Configuration(), RequestTimeouts())
    leading = [False]
    api.write_guard = lambda: leading[0]
    assert api.call_api("GET", "/api/v1/pods") == "ok"
    for method in ("POST", "PATCH", "PUT", "DELETE", "patch"):
        with pytest.raises(NotLeaderError) as refused:
            api.call_api(method, "/api/v1/namespaces/x/services/y")
        assert refused.value.reason == "NotLeader"
    leading[0] = True
    assert api.call_api("PATCH", "/x") == "ok"
    assert sent == ["GET", "PATCH"]
    api.write_guard = None
    assert api.call_api("DELETE", "/x") == "ok"
