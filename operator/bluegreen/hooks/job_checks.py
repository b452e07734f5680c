"""``JobCheckRunner``: the ``core.checks.CheckRunner`` of the checks whose ``job`` is set.

Each such check of a run is one hook Job (``hooks.hook_jobs``): created by ``ensure`` unless it exists, its
result read from the Job (so it holds across an operator restart), its failure message naming the Job, how it
failed and the last lines of its pod's log. Checks without ``job`` are left to the other runners.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from bluegreen.core.checks import CheckResult, CheckRun, CheckSpec, Hook, Verdict
from bluegreen.core.hook_jobs import INVALID_JOB_MANIFEST, HookJobRun
from bluegreen.core.job_status import JobRecord
from bluegreen.core.spec import ReleaseRef
from bluegreen.hooks.hook_jobs import HookJobs, JobOutcome

CHECK_HOOKS: Final = frozenset(str(hook) for hook in Hook)


def hook_job_run(run: CheckRun, check: CheckSpec) -> HookJobRun:
    """The Job run of one check of a run."""
    return HookJobRun(run.release, str(run.hook), run.commit, run.color, check.name, run.preview_service)


class JobCheckRunner:
    """Runs the Job checks of a hook (``CheckRunner``); thread-safe, never waits for a Job."""

    def __init__(self, jobs: HookJobs) -> None:
        self.jobs = jobs

    def ensure(self, run: CheckRun, checks: Sequence[CheckSpec],
               job_manifests: Mapping[str, Mapping[str, Any]]) -> Mapping[str, CheckResult]:
        results = {}
        for check in checks:
            if check.job is None:
                continue
            manifest = job_manifests.get(check.job.path)
            if manifest is None:
                results[check.name] = CheckResult(
                    check.name, Verdict.FAILED, INVALID_JOB_MANIFEST,
                    f"check {check.name!r}: the Job manifest {check.job.path!r} was not read from commit "
                    f"{run.commit[:7]} (the release reads every job.path of its checks)")
                continue
            outcome = self.jobs.ensure(hook_job_run(run, check), manifest, timeout_seconds=check.timeout_seconds)
            results[check.name] = _result(check, outcome)
        return results

    def results(self, run: CheckRun, checks: Sequence[CheckSpec]) -> Mapping[str, CheckResult]:
        results = {}
        for check in checks:
            if check.job is not None and (outcome := self.jobs.outcome(
                    hook_job_run(run, check), timeout_seconds=check.timeout_seconds)) is not None:
                results[check.name] = _result(check, outcome)
        return results

    def cancel(self, release: ReleaseRef, keep: CheckRun | None = None) -> None:
        """Delete the running check Jobs of ``release`` other than those of ``keep`` (finished ones stay, for
        their logs, until the cleanup of older runs)."""
        def kept(record: JobRecord) -> bool:
            return keep is not None and (record.hook, record.commit, record.color) == \
                (str(keep.hook), keep.commit, str(keep.color))
        self.jobs.cancel(release, hooks=CHECK_HOOKS, keep=kept)

    def rerun(self, run: CheckRun, checks: Sequence[CheckSpec]) -> None:
        """Delete the Jobs of ``run``'s checks, finished or not, so the next ``ensure`` runs them again (a
        ``bluegreen retry`` of a commit whose check failed)."""
        for check in checks:
            if check.job is not None:
                self.jobs.rerun(hook_job_run(run, check))


def _result(check: CheckSpec, outcome: JobOutcome) -> CheckResult:
    return CheckResult(check.name, outcome.verdict, outcome.reason, f"check {check.name!r}: {outcome.message}",
                       outcome.started_at, outcome.finished_at)
