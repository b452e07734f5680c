"""The local node's pod status rules: phase, conditions, minimal patches, back-off and probe thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubelet.backoff import CrashBackoff
from kubelet.ipam import IPAllocator
from kubelet.mountpoints import resolve
from kubelet.podstatus import (
    ContainerRecord,
    condition_entries,
    conditions,
    exit_code,
    iso,
    phase,
    status_patch,
)
from kubelet.probes import Thresholds, resolve_port, settings


def running(name: str = "c") -> ContainerRecord:
    record = ContainerRecord(name, "local/python:3")
    record.running(100.0, "local://1")
    return record


def exited(code: int, name: str = "c") -> ContainerRecord:
    record = running(name)
    record.terminated(code, 100.0, 101.0)
    return record


def backing_off(code: int, name: str = "c") -> ContainerRecord:
    record = exited(code, name)
    record.waiting("CrashLoopBackOff")
    return record


def creating(name: str = "c") -> ContainerRecord:
    return ContainerRecord(name, "local/python:3")


@pytest.mark.parametrize(("policy", "init", "main", "expected"), [
    ("Always", [], [creating()], "Pending"),
    ("Always", [], [running()], "Running"),
    ("Always", [], [running("a"), exited(1, "b")], "Running"),
    ("Always", [], [exited(0)], "Running"),
    ("Always", [], [backing_off(1)], "Running"),
    ("Never", [], [exited(0)], "Succeeded"),
    ("Never", [], [exited(0, "a"), exited(2, "b")], "Failed"),
    ("Never", [], [exited(0, "a"), running("b")], "Running"),
    ("OnFailure", [], [exited(0)], "Succeeded"),
    ("OnFailure", [], [exited(1)], "Running"),
    ("Always", [running("i")], [creating()], "Pending"),
    ("Always", [exited(0, "i")], [running()], "Running"),
    ("Never", [exited(1, "i")], [creating()], "Failed"),
    ("OnFailure", [exited(1, "i")], [creating()], "Pending"),
    ("Never", [backing_off(3, "i")], [creating()], "Failed"),
])
def test_phase_is_kubelets(policy: str, init: list[ContainerRecord], main: list[ContainerRecord],
                           expected: str) -> None:
    assert phase(policy, init, main) == expected


def test_exit_codes_of_signals() -> None:
    assert (exit_code(0), exit_code(3), exit_code(-9), exit_code(-15)) == (0, 3, 137, 143)


def test_a_record_keeps_its_last_run() -> None:
    record = exited(2)
    assert record.state["terminated"]["reason"] == "Error" and record.exit_code == 2
    record.running(200.0, "local://2")
    assert record.last_state["terminated"]["exitCode"] == 2 and "running" in record.state
    assert exited(0).state["terminated"]["reason"] == "Completed"


def test_conditions() -> None:
    ready, unready = running("a"), running("b")
    ready.ready = True
    got = conditions([], [ready, unready], "Running")
    assert got["Ready"] == (False, "ContainersNotReady", "containers with unready status: [b]")
    assert got["Initialized"] == (True, "", "")
    unready.ready = True
    assert conditions([], [ready, unready], "Running")["Ready"] == (True, "", "")
    assert conditions([], [ready, unready], "Running", terminating=True)["Ready"][0] is False
    assert conditions([], [exited(0)], "Succeeded")["ContainersReady"] == (False, "PodCompleted", "")
    assert conditions([running("i")], [creating()], "Pending")["Initialized"] == (
        False, "ContainersNotInitialized", "containers with incomplete status: [i]")


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = condition_entries({"Ready": (False, "ContainersNotReady", "m")}, [], 1000.0)
    same = condition_entries({"Ready": (False, "ContainersNotReady", "m2")}, first, 2000.0)
    flipped = condition_entries({"Ready": (True, "", "")}, same, 3000.0)
    assert first[0]["lastTransitionTime"] == same[0]["lastTransitionTime"] == iso(1000.0)
    assert flipped[0]["lastTransitionTime"] == iso(3000.0)
    assert flipped[0]["reason"] is None and flipped[0]["message"] is None, "cleared in a merge patch"


def test_status_patch_has_only_what_changed() -> None:
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": "t1", "reason": None, "message": None}
    init = {"type": "Initialized", "status": "True", "lastTransitionTime": "t0", "reason": None, "message": None}
    current = {"phase": "Running", "podIP": "127.244.0.1", "conditions": [
        {"type": "Ready", "status": "False", "lastTransitionTime": "t0", "reason": "ContainersNotReady"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "t0"}]}
    wanted = {"phase": "Running", "podIP": "127.244.0.1", "conditions": [ready, init], "containerStatuses": []}
    assert status_patch(current, wanted) == {"conditions": [ready], "containerStatuses": []}
    assert status_patch({**wanted}, wanted) == {}


def test_backoff_like_kubelet() -> None:
    backoff = CrashBackoff(10, 300)
    assert backoff.remaining(finished_at=100, now=100) == 0, "first restart is immediate"
    backoff.restarted(finished_at=100, now=100)
    assert backoff.remaining(finished_at=101, now=101) == 10
    assert backoff.remaining(finished_at=101, now=108) == 3
    backoff.restarted(finished_at=101, now=111)
    assert backoff.window == 20
    for _ in range(10):
        backoff.restarted(finished_at=112, now=112)
    assert backoff.window == 300
    assert backoff.remaining(finished_at=112 + 301, now=413) == 0, "a long run starts over"
    backoff.restarted(finished_at=413, now=413)
    assert backoff.window == 10


@pytest.mark.parametrize(("kind", "results", "reports"), [
    ("readiness", [True], [True]),
    ("readiness", [False, False, True], [None, None, True]),
    ("readiness", [True, False, False, False], [True, None, None, False]),
    ("readiness", [True, False, True, False, False], [True, None, None, None, None]),
    ("liveness", [True, False, False, False], [None, None, None, False]),
    ("startup", [False, False, True], [None, None, True]),
])
def test_thresholds(kind: str, results: list[bool], reports: list[bool | None]) -> None:
    tracker = Thresholds(kind, success=1, failure=3)
    assert [tracker.observe(r) for r in results] == reports


def test_success_threshold() -> None:
    tracker = Thresholds("readiness", success=2, failure=1)
    assert [tracker.observe(r) for r in (True, True, False, True, True)] == [None, True, False, None, True]


def test_probe_defaults_and_named_ports() -> None:
    assert settings({}) == {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3}
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080 and resolve_port(81, container) == 81
    assert resolve_port("9000", container) == 9000
    with pytest.raises(ValueError):
        resolve_port("grpc", container)


def test_ip_allocator_never_hands_out_an_address_in_use() -> None:
    ips = IPAllocator("127.244.0.0/29")
    ips.claim("127.244.0.2", "old")
    got = [ips.allocate(f"p{i}") for i in range(5)]
    assert got == ["127.244.0.1", "127.244.0.3", "127.244.0.4", "127.244.0.5", "127.244.0.6"]
    ips.release_uid("p0")
    assert ips.allocate("again") == "127.244.0.1", "freed addresses come back once the range is used up"


def test_resolve_splits_existing_and_missing(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert resolve(str(tmp_path / "link" / "a" / "b")) == (str((tmp_path / "real").resolve()), ["a", "b"])
    assert resolve(str(tmp_path / "link")) == (str((tmp_path / "real").resolve()), [])
