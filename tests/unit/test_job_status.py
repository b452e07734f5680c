"""Unit tests of bluegreen.core.job_status: a Job's body read into its record and verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bluegreen.core.checks import Verdict
from bluegreen.core.job_status import JobState, job_record, job_state

T0, T1, T2 = "2026-12-01T10:00:00Z", "2026-12-01T10:00:07Z", "2026-12-01T10:00:06Z"
AT0, AT1, AT2 = (datetime(2026, 12, 1, 10, 0, s, tzinfo=UTC) for s in (0, 7, 6))


def body(status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    metadata = {"name": "shop-pre-smoke-0123456789-green", "namespace": "shop", "uid": "u1",
                "resourceVersion": "42", "creationTimestamp": T0,
                "labels": {"bluegreen.dev/release": "shop", "bluegreen.dev/hook": "prePromotion",
                           "bluegreen.dev/color": "green"},
                "annotations": {"bluegreen.dev/commit": "0123456789abc", "bluegreen.dev/check": "smoke"}, **meta}
    return {"metadata": metadata, "status": status or {}}


def condition(kind: str, reason: str = "", message: str = "", status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": T1}


STATES: list[tuple[str, dict[str, Any], dict[str, Any], JobState]] = [
    ("new", {}, {}, JobState(Verdict.RUNNING, "Running", "running: 0 active, 0 succeeded, 0 failed")),
    ("active", {"startTime": T0, "active": 1}, {},
     JobState(Verdict.RUNNING, "Running", "running: 1 active, 0 succeeded, 0 failed", AT0)),
    ("complete", {"startTime": T0, "completionTime": T2, "succeeded": 1, "conditions": [condition("Complete")]}, {},
     JobState(Verdict.PASSED, "Passed", "Complete", AT0, AT2)),
    ("complete, time from the condition", {"conditions": [condition("Complete", "Done", "all good")]}, {},
     JobState(Verdict.PASSED, "Passed", "Done: all good", None, AT1)),
    ("backoff limit", {"startTime": T0, "failed": 1, "conditions": [
        condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]}, {},
     JobState(Verdict.FAILED, "JobFailed", "BackoffLimitExceeded: Job has reached the specified backoff limit", AT0,
              AT1)),
    ("deadline", {"conditions": [condition("Failed", "DeadlineExceeded", "Job was active longer than specified")]}, {},
     JobState(Verdict.FAILED, "JobDeadlineExceeded", "DeadlineExceeded: Job was active longer than specified", None,
              AT1)),
    ("other failure", {"conditions": [condition("Failed", "PodFailurePolicy")]}, {},
     JobState(Verdict.FAILED, "JobFailed", "PodFailurePolicy", None, AT1)),
    ("failed without words", {"conditions": [{"type": "Failed", "status": "True"}]}, {},
     JobState(Verdict.FAILED, "JobFailed", "Failed")),
    ("complete without words", {"conditions": [{"type": "Complete", "status": "True"}]}, {},
     JobState(Verdict.PASSED, "Passed", "Complete")),
    ("false conditions are ignored", {"active": 1, "conditions": [condition("Failed", "X", status="False"),
                                                                 condition("Complete", status="Unknown")]}, {},
     JobState(Verdict.RUNNING, "Running", "running: 1 active, 0 succeeded, 0 failed")),
    ("other condition types are ignored", {"conditions": [condition("Suspended"), "junk"]}, {},
     JobState(Verdict.RUNNING, "Running", "running: 0 active, 0 succeeded, 0 failed")),
    ("the first true verdict wins", {"conditions": [condition("Failed", "DeadlineExceeded"), condition("Complete")]},
     {}, JobState(Verdict.FAILED, "JobDeadlineExceeded", "DeadlineExceeded", None, AT1)),
    ("deleted while running", {"startTime": T0, "active": 1, "failed": 2}, {"deletionTimestamp": T1},
     JobState(Verdict.FAILED, "JobDeleted", "deleted before it finished (1 active, 0 succeeded, 2 failed)", AT0)),
    ("a false condition before the true one", {"conditions": [condition("Failed", "X", status="False"),
                                                              condition("Complete")]}, {},
     JobState(Verdict.PASSED, "Passed", "Complete", None, AT1)),
    ("deleted after it passed", {"conditions": [condition("Complete")]}, {"deletionTimestamp": T1},
     JobState(Verdict.PASSED, "Passed", "Complete", None, AT1)),
]


@pytest.mark.parametrize(("status", "meta", "expected"), [s[1:] for s in STATES], ids=[s[0] for s in STATES])
def test_the_verdict_is_the_job_controllers(status: dict[str, Any], meta: dict[str, Any], expected: JobState) -> None:
    assert job_state(body(status, **meta)) == expected
    assert job_state(body(status, **meta)).finished is (expected.verdict is not Verdict.RUNNING)


def test_a_record_says_which_run_the_job_belongs_to() -> None:
    record = job_record(body({"active": 1}))
    assert record is not None
    assert (record.namespace, record.name, record.uid, record.resource_version) == (
        "shop", "shop-pre-smoke-0123456789-green", "u1", "42")
    assert (record.release, record.hook, record.commit, record.color, record.check) == (
        "shop", "prePromotion", "0123456789abc", "green", "smoke")
    assert record.created_at == AT0 and record.deleting is False
    assert record.state.verdict is Verdict.RUNNING
    assert job_record(body(deletionTimestamp=T1)).deleting is True  # type: ignore[union-attr]


def test_a_job_without_the_release_label_is_not_ours() -> None:
    assert job_record(body(labels={"app": "x"})) is None
    assert job_record(body(labels={"bluegreen.dev/release": ""})) is None
    assert job_record({"metadata": {"name": "x"}}) is None


def test_a_bare_job_of_ours_has_no_run_details() -> None:
    record = job_record({"metadata": {"labels": {"bluegreen.dev/release": "shop"}}})
    assert record is not None
    assert (record.hook, record.commit, record.color, record.check, record.created_at) == (None,) * 5
    assert (record.namespace, record.name, record.uid, record.resource_version) == ("", "", "", "")
