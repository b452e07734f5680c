"""The check runner the reconciler is given: routes each check of a run to the runner of its kind.

``CheckRunners(http=..., job=...)`` implements ``bluegreen.core.checks.CheckRunner``: ``http`` checks go to the
``HttpCheckRunner``, ``job`` checks to the Job runner (``bluegreen.hooks.job_checks.JobCheckRunner``, plugged
in by the operator's wiring). Without a Job runner, a job check's result is ``Failed`` with reason
``JobChecksUnavailable`` (from ``results`` too, so the release stops at once instead of waiting for nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bluegreen.core.checks import CheckResult, CheckRun, CheckRunner, CheckSpec, Verdict
from bluegreen.core.spec import ReleaseRef

JOB_CHECKS_UNAVAILABLE = "JobChecksUnavailable"


class CheckRunners:
    """One ``CheckRunner`` over the runners of each kind."""

    def __init__(self, http: CheckRunner, job: CheckRunner | None = None) -> None:
        self.http = http
        self.job = job

    def ensure(self, run: CheckRun, checks: Sequence[CheckSpec],
               job_manifests: Mapping[str, Mapping[str, Any]]) -> Mapping[str, CheckResult]:
        http, jobs = _split(checks)
        results = dict(self.http.ensure(run, http, job_manifests)) if http else {}
        if jobs:
            results.update(self.job.ensure(run, jobs, job_manifests) if self.job is not None else _unavailable(jobs))
        return results

    def results(self, run: CheckRun, checks: Sequence[CheckSpec]) -> Mapping[str, CheckResult]:
        http, jobs = _split(checks)
        results = dict(self.http.results(run, http)) if http else {}
        if jobs:
            results.update(self.job.results(run, jobs) if self.job is not None else _unavailable(jobs))
        return results

    def rerun(self, run: CheckRun, checks: Sequence[CheckSpec]) -> None:
        http, jobs = _split(checks)
        if http:
            self.http.rerun(run, http)
        if jobs and self.job is not None:
            self.job.rerun(run, jobs)

    def cancel(self, release: ReleaseRef, keep: CheckRun | None = None) -> None:
        self.http.cancel(release, keep)
        if self.job is not None:
            self.job.cancel(release, keep)


def _split(checks: Sequence[CheckSpec]) -> tuple[list[CheckSpec], list[CheckSpec]]:
    return [c for c in checks if c.http is not None], [c for c in checks if c.job is not None]


def _unavailable(checks: Sequence[CheckSpec]) -> dict[str, CheckResult]:
    return {c.name: CheckResult(c.name, Verdict.FAILED, JOB_CHECKS_UNAVAILABLE,
                                f"job check {c.name!r}: this operator runs no Job checks (no Job check runner)")
            for c in checks}
