"""Unit tests of the benchmarks' instruments (benchmarks/probes.py): the audit-log request counter and the
"rolled out and available" check. The figures of benchmarks/scale.py are only as true as these."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from probes import AuditLog, complete

OPERATOR = "system:serviceaccount:apps:bluegreen-operator"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def entry(audit_id: str, verb: str, resource: str, *, at: float = T0 + 1, name: str = "", user: str = OPERATOR,
          stage: str = "ResponseComplete", subresource: str | None = None) -> str:
    ref: dict[str, Any] = {"resource": resource, "namespace": "apps"}
    if name:
        ref["name"] = name
    if subresource:
        ref["subresource"] = subresource
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"kind": "Event", "auditID": audit_id, "stage": stage, "verb": verb,
                       "user": {"username": user, "groups": ["system:serviceaccounts"]}, "objectRef": ref,
                       "requestReceivedTimestamp": stamp}, separators=(",", ":")) + "\n"


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as out:
        out.write("".join(lines))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    append(path, entry("before", "get", "services"))  # written before the counter starts: not counted
    return path


def test_counts_each_request_of_the_user_once_by_verb_and_resource(log: Path) -> None:
    audit = AuditLog(log, OPERATOR)
    append(log, entry("1", "get", "deployments", name="app-0001-blue"),
           entry("2", "get", "deployments", name="app-0002-blue"),
           entry("3", "patch", "bluegreenreleases", name="app-0001", subresource="status"),
           entry("4", "watch", "services", stage="ResponseStarted"),
           entry("4", "watch", "services"),  # the same watch's second stage
           entry("5", "get", "deployments", user="system:serviceaccount:other:someone"),
           entry("6", "list", "pods", user="admin"))
    assert audit.between(T0, T0 + 60) == {("get", "deployments"): 2, ("patch", "bluegreenreleases/status"): 1,
                                          ("watch", "services"): 1}


def test_window_and_name_prefix(log: Path) -> None:
    audit = AuditLog(log, OPERATOR)
    append(log, entry("1", "get", "services", at=T0 - 0.001, name="app-1"),
           entry("2", "get", "services", at=T0, name="app-1"),
           entry("3", "get", "services", at=T0 + 9.999, name="hang-1"),
           entry("4", "get", "services", at=T0 + 10, name="app-1"))
    assert audit.between(T0, T0 + 10) == {("get", "services"): 2}
    assert audit.between(T0, T0 + 10, "app-") == {("get", "services"): 1}
    assert audit.between(T0, T0 + 10, "hang-") == {("get", "services"): 1}


def test_follows_rotation_and_a_line_still_being_written(log: Path) -> None:
    audit = AuditLog(log, OPERATOR)
    first, second = entry("1", "get", "services"), entry("2", "get", "deployments")
    append(log, first, second[:40])
    assert audit.between(T0, T0 + 60) == {("get", "services"): 1}
    append(log, second[40:])
    log.rename(log.with_name("audit-2026-01-01T12-00-05.000.log"))  # what kube-apiserver's rotation does
    append(log, entry("3", "patch", "services"))
    assert audit.between(T0, T0 + 60) == {("get", "services"): 1, ("get", "deployments"): 1, ("patch", "services"): 1}


def test_a_log_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = AuditLog(path, OPERATOR)
    assert audit.between(T0, T0 + 60) == {}
    append(path, entry("1", "create", "events"))
    assert audit.between(T0, T0 + 60) == {("create", "events"): 1}
    assert audit.has("create", "events") and not audit.has("get", "events")


def test_last_write_ignores_reads_and_other_names(log: Path) -> None:
    audit = AuditLog(log, OPERATOR)
    assert audit.last_write() == 0.0
    append(log, entry("1", "patch", "services", at=T0 + 5, name="app-1"),
           entry("2", "create", "events", at=T0 + 7),
           entry("3", "get", "services", at=T0 + 9, name="app-1"))
    assert audit.last_write() == pytest.approx(T0 + 7)
    assert audit.last_write("app-") == pytest.approx(T0 + 5)


def deployment(replicas: int = 1, *, generation: int = 2, observed: int = 2, total: int = 1, updated: int = 1,
               ready: int = 1, available: int = 1) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": available}}


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(deployment(), True, id="rolled-out-and-available"),
    pytest.param(deployment(3, total=3, updated=3, ready=3, available=3), True, id="three-replicas"),
    pytest.param(None, False, id="absent"),
    pytest.param(deployment(observed=1), False, id="spec-not-seen-yet"),
    pytest.param(deployment(total=2), False, id="an-old-replica-left"),
    pytest.param(deployment(updated=0), False, id="not-updated"),
    pytest.param(deployment(ready=0), False, id="not-ready"),
    pytest.param(deployment(available=0), False, id="not-available"),
    pytest.param(deployment(0, total=0, updated=0, ready=0, available=0), False, id="scaled-to-zero"),
])
def test_complete(body: dict[str, Any] | None, expected: bool) -> None:
    assert complete(body) is expected
