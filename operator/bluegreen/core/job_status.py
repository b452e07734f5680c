"""A hook Job as the watch delivers it: who it belongs to and how it stands, read from its body; and the port
the hook runners reach Jobs through (``JobCluster``). Pure.

The verdict is the Job controller's: ``Passed`` on condition ``Complete``, ``Failed`` on condition ``Failed``
(reason ``JobDeadlineExceeded`` for its ``DeadlineExceeded``, ``JobFailed`` for ``BackoffLimitExceeded`` and
anything else), ``Running`` until then. A Job being deleted before it finished (cancelled) reads ``Failed``
with reason ``JobDeleted``: its run ended without a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from bluegreen.core.checks import Verdict
from bluegreen.core.hook_jobs import ANNOTATION_CHECK
from bluegreen.core.spec import ANNOTATION_COMMIT, LABEL_COLOR, LABEL_HOOK, LABEL_RELEASE
from bluegreen.core.timestamps import parse_time

REASON_RUNNING: Final = "Running"
REASON_PASSED: Final = "Passed"
REASON_FAILED: Final = "JobFailed"
REASON_DEADLINE: Final = "JobDeadlineExceeded"
REASON_DELETED: Final = "JobDeleted"
_FAILURE_REASONS: Final = {"DeadlineExceeded": REASON_DEADLINE, "BackoffLimitExceeded": REASON_FAILED}


@dataclass(frozen=True, slots=True)
class JobState:
    """Where a Job stands: the verdict, a CamelCase reason and what the Job controller said."""

    verdict: Verdict
    reason: str
    message: str
    """The Job controller's condition (``BackoffLimitExceeded: Job has reached the specified backoff limit``),
    or the pod counts while it runs."""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.verdict is not Verdict.RUNNING


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A Job labelled ``bluegreen.dev/release``: the run it belongs to and its state."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    release: str
    hook: str | None
    commit: str | None
    color: str | None
    check: str | None
    created_at: datetime | None
    state: JobState
    deleting: bool = False


def job_state(body: Mapping[str, Any]) -> JobState:
    """The verdict of a Job from its status conditions (the first true Complete or Failed one)."""
    status = body.get("status") or {}
    started = parse_time(status.get("startTime"))
    deleting = bool((body.get("metadata") or {}).get("deletionTimestamp"))
    for condition in status.get("conditions") or []:
        if not isinstance(condition, Mapping) or condition.get("status") != "True":
            continue
        kind, reason = condition.get("type"), str(condition.get("reason") or "")
        said = ": ".join(part for part in (reason, str(condition.get("message") or "")) if part)
        if kind == "Complete":
            finished = parse_time(status.get("completionTime")) or parse_time(condition.get("lastTransitionTime"))
            return JobState(Verdict.PASSED, REASON_PASSED, said or "Complete", started, finished)
        if kind == "Failed":
            return JobState(Verdict.FAILED, _FAILURE_REASONS.get(reason, REASON_FAILED), said or "Failed", started,
                            parse_time(condition.get("lastTransitionTime")))
    counts = ", ".join(f"{int(status.get(name) or 0)} {name}" for name in ("active", "succeeded", "failed"))
    if deleting:
        return JobState(Verdict.FAILED, REASON_DELETED, f"deleted before it finished ({counts})", started)
    return JobState(Verdict.RUNNING, REASON_RUNNING, f"running: {counts}", started)


def job_record(body: Mapping[str, Any]) -> JobRecord | None:
    """The record of a Job of ours (labelled ``bluegreen.dev/release``); None for any other."""
    meta = body.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    release = labels.get(LABEL_RELEASE)
    if not release:
        return None
    return JobRecord(
        namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")), uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")), release=str(release),
        hook=_text(labels.get(LABEL_HOOK)), commit=_text(annotations.get(ANNOTATION_COMMIT)),
        color=_text(labels.get(LABEL_COLOR)), check=_text(annotations.get(ANNOTATION_CHECK)),
        created_at=parse_time(meta.get("creationTimestamp")), state=job_state(body),
        deleting=bool(meta.get("deletionTimestamp")))


def _text(value: object) -> str | None:
    return str(value) if value else None


class JobCluster(Protocol):
    """What the hook runners need of the cluster (``bluegreen.kube.KubeCluster``). Reads come from the view
    the Job watch feeds (no API request); writes and log reads raise ``ClusterError`` for what a retry will
    not cure (a refused manifest, a same-named Job that is not the run's), anything else for the rest."""

    def job(self, namespace: str, name: str) -> JobRecord | None:
        """A Job of ours as the view has it."""
        ...

    def release_jobs(self, namespace: str, release: str) -> Sequence[JobRecord]:
        """Every Job of the view labelled for ``release``, running or finished."""
        ...

    def create_job(self, body: Mapping[str, Any]) -> JobRecord:
        """Create the Job; one of that name created before (an earlier pass, before a restart) for the same
        commit is returned instead."""
        ...

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and its pods (propagation Background); an absent Job is fine."""
        ...

    def job_log_tail(self, job: JobRecord, lines: int) -> str | None:
        """The last ``lines`` lines of the log of the Job's newest pod (of its first failed container, else its
        first container); None when there is no pod or no log to read."""
        ...
