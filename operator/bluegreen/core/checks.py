"""Release checks (``spec.checks``): what a check is, the state of one run, and the port that runs them. Pure.

A check belongs to a hook: ``prePromotion`` checks run against the idle colour once it is fully available,
before the selector switch; ``postPromotion`` checks run after the switch while the previous colour is still
warm. A check probes over HTTP or runs a batch/v1 Job read from the same commit.

A *run* is one hook for one (release, commit, colour): it happens once. The runner (``CheckRunner``) keeps
the state of a run where it can be found again: an HTTP run in memory (repeated after an operator restart,
it is cheap and safe), a Job run on the Job itself (found again after a restart, never run twice).
The planner reads ``CheckResult``s and never starts anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from bluegreen.core.spec import Color, ReleaseRef


class Hook(StrEnum):
    """When a check runs (also the value of the ``bluegreen.dev/hook`` label of its Job)."""

    PRE_PROMOTION = "prePromotion"
    POST_PROMOTION = "postPromotion"


@dataclass(frozen=True)
class HttpProbe:
    """``http``: a GET against ``url``, or against a Service of the release's namespace (its ClusterIP)."""

    url: str | None = None
    service: str | None = None
    port: int | None = None  # None: the Service's first port
    path: str = "/"
    expect_status: int | None = None  # None: any 2xx
    body_contains: str | None = None


@dataclass(frozen=True)
class JobProbe:
    """``job``: a batch/v1 Job manifest at ``path`` of the same commit."""

    path: str


@dataclass(frozen=True)
class CheckSpec:
    """One entry of ``spec.checks.prePromotion`` / ``postPromotion``; exactly one of ``http`` and ``job``."""

    name: str
    hook: Hook
    http: HttpProbe | None = None
    job: JobProbe | None = None
    timeout_seconds: float = 10.0
    """One HTTP attempt; for a Job, its whole run (its activeDeadlineSeconds unless the manifest sets one)."""
    attempts: int = 1
    """HTTP: consecutive failed attempts before the check fails."""
    interval_seconds: float = 1.0
    """HTTP: pause between attempts (pre-promotion) / between probes (post-promotion)."""
    duration_seconds: float = 0.0
    """Post-promotion HTTP: keep probing this long; 0: one round."""


class Verdict(StrEnum):
    """Where one check of one run stands."""

    RUNNING = "Running"
    PASSED = "Passed"
    FAILED = "Failed"


@dataclass(frozen=True)
class CheckRun:
    """The identity of one run of a hook: once per (release, hook, commit, colour)."""

    release: ReleaseRef
    hook: Hook
    commit: str
    color: Color
    preview_service: str | None = None
    """Given to Job checks as ``BLUEGREEN_PREVIEW_SERVICE``."""


@dataclass(frozen=True)
class CheckResult:
    """The latest word on one check of one run."""

    name: str
    verdict: Verdict
    reason: str
    """CamelCase: ``Running``, ``Passed``, ``HttpStatus``, ``BodyMismatch``, ``Timeout``, ``Unreachable``,
    ``JobFailed``, ``JobDeadlineExceeded``, ``Refused`` (an address the operator may not call), ..."""
    message: str
    """For a failure, what it saw: the HTTP status and the start of the body, or the Job's failure and the
    last lines of its pod's log."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class CheckRunner(Protocol):
    """Runs the checks of a hook (the adapters in ``bluegreen.hooks``). Thread-safe; never blocks for long:
    the work happens elsewhere and the release is queued (the ``wake`` callback the runner was made with)
    whenever a result changes."""

    def ensure(self, run: CheckRun, checks: Sequence[CheckSpec],
               job_manifests: Mapping[str, Mapping[str, Any]]) -> Mapping[str, CheckResult]:
        """Start every check of ``run`` not started yet (idempotent: a started or finished check is never
        started again) and return the latest result of each, by name. ``job_manifests``: the parsed Job
        manifests of the run's commit, by ``JobProbe.path``."""
        ...

    def results(self, run: CheckRun, checks: Sequence[CheckSpec]) -> Mapping[str, CheckResult]:
        """The latest result of each check of ``run`` that was started (a check not started is absent); starts
        nothing. For a Job check this is read from the Job (the watch's view), so it holds across a restart."""
        ...

    def rerun(self, run: CheckRun, checks: Sequence[CheckSpec]) -> None:
        """Forget ``run``'s results, finished or not, so the next ``ensure`` runs its checks again (a ``bluegreen
        retry`` of a commit whose check failed). A Job is deleted."""
        ...

    def cancel(self, release: ReleaseRef, keep: CheckRun | None = None) -> None:
        """Stop the release's runs other than ``keep`` (a newer commit, an abort, a rollback): their results
        no longer matter. A Job is deleted with its pods."""
        ...
