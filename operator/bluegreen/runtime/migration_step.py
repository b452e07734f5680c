"""The migration part of a reconcile pass: the release's expand/contract runs into ``Observed`` (from the Job
watch's view: no API request), the Job a ``RunMigration`` step asks for created (or adopted), and
``status.migrations``.

The state of every run lives on its Job (``hooks.hook_jobs``: a deterministic name per phase, commit and
colour), so after an operator restart a running expand is adopted, never run twice. The only API read is the
pod count of the previous colour (``migrations.pods_to_count``): made while the desired commit's contract is
due, never on a pass with nothing to do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from bluegreen.core.checks import Verdict
from bluegreen.core.hook_jobs import HOOK_CONTRACT, HOOK_EXPAND, INVALID_JOB_MANIFEST, HookJobRun
from bluegreen.core.migrations import pods_to_count
from bluegreen.core.plans import Action, Desired, MigrationResult, Observed, Plan, Settings
from bluegreen.core.protocols import Cluster
from bluegreen.core.spec import Color, ReleaseRef, ReleaseSpec
from bluegreen.core.timestamps import format_time
from bluegreen.hooks.hook_jobs import HookJobs, JobOutcome
from bluegreen.runtime.memory import Memory

PHASES: Final = (HOOK_EXPAND, HOOK_CONTRACT)
MIGRATION_HOOKS: Final = frozenset(PHASES)
MESSAGE_LIMIT: Final = 1024
"""Characters of a run's message kept in ``status.migrations``."""
MIGRATIONS_UNAVAILABLE: Final = "MigrationsUnavailable"


class MigrationStep:
    """Migrations for the passes of a ``Reconciler`` (thread-safe as ``HookJobs`` is). Without ``jobs`` (tools,
    tests of other parts) every configured migration reads as failed, so nothing is brought up unmigrated."""

    def __init__(self, cluster: Cluster, jobs: HookJobs | None) -> None:
        self.cluster = cluster
        self.jobs = jobs

    def observe(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, observed: Observed,
                desired: Desired | None, settings: Settings) -> Observed:
        """``observed`` with the desired commit's runs, the release's running migrations, when its newest
        contract was created, and (only when the contract waits for them) the previous colour's pods."""
        if desired is None or not spec.migrations.paths:
            return observed
        runs: dict[str, dict[Color, MigrationResult]] = {phase: {} for phase in PHASES}
        for phase in PHASES:
            migration = spec.migrations.of(phase)
            if migration is None:
                continue
            for color in Color:
                result = self._result(release, memory, phase, desired.commit, color, migration.path,
                                      migration.timeout_seconds)
                if result is not None:
                    runs[phase][color] = result
        running, last_contract = self._others(release, spec)
        observed = replace(observed, expand_runs=runs[HOOK_EXPAND], contract_runs=runs[HOOK_CONTRACT],
                           running_migrations=running, last_contract_at=last_contract)
        previous = pods_to_count(desired, observed, settings)
        if previous is not None:
            observed = replace(observed, previous_pods=self.cluster.color_pods(release, previous))
        return observed

    def _result(self, release: ReleaseRef, memory: Memory, phase: str, commit: str, color: Color, path: str,
                timeout: float) -> MigrationResult | None:
        run = HookJobRun(release, phase, commit, color)
        if self.jobs is None:
            return MigrationResult(phase, commit, color, run.job_name, Verdict.FAILED, MIGRATIONS_UNAVAILABLE,
                                   "this operator runs no migration Jobs (no hook-Job runner)")
        outcome = self.jobs.outcome(run, timeout_seconds=timeout)
        if outcome is None:
            if path not in memory.job_manifests:
                return MigrationResult(phase, commit, color, run.job_name, Verdict.FAILED, INVALID_JOB_MANIFEST,
                                       f"the Job manifest {path!r} was not read from commit {commit[:7]}")
            return None
        return _result(phase, commit, color, outcome)

    def _others(self, release: ReleaseRef,
                spec: ReleaseSpec) -> tuple[tuple[MigrationResult, ...], datetime | None]:
        """The release's running migration runs (any commit) and the creation of its newest contract Job."""
        if self.jobs is None:
            return (), None
        running = []
        last_contract: datetime | None = None
        for record in self.jobs.runs(release, MIGRATION_HOOKS):
            assert record.hook is not None
            if record.hook == HOOK_CONTRACT and record.created_at is not None:
                last_contract = max(last_contract or record.created_at, record.created_at)
            if record.state.finished or record.commit is None or record.color not in ("blue", "green"):
                continue
            migration = spec.migrations.of(record.hook)
            run = HookJobRun(release, record.hook, record.commit, Color(record.color))
            outcome = self.jobs.outcome(run, timeout_seconds=migration.timeout_seconds if migration else None)
            if outcome is not None and outcome.verdict is Verdict.RUNNING:
                running.append(_result(record.hook, record.commit, Color(record.color), outcome))
        return tuple(running), last_contract

    def run(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, step: Plan, observed: Observed,
            log: Any) -> bool:
        """Create (or adopt) the Job ``step`` asks for, deleting a finished one that no longer counts first; True
        when the run's state changed from what the plan saw (then plan again at once). A Job created here is
        announced (a log line and a Normal Event)."""
        assert step.action is Action.RUN_MIGRATION and step.migration is not None
        migration = spec.migrations.of(step.migration.phase)
        if self.jobs is None or migration is None:
            return False
        wanted = step.migration
        run = HookJobRun(release, wanted.phase, wanted.commit, wanted.color)
        manifest = memory.job_manifests.get(migration.path)
        if manifest is None:
            return False  # observe reports it (InvalidJobManifest)
        if wanted.rerun:
            self.jobs.rerun(run)
        existed = self.jobs.outcome(run, timeout_seconds=migration.timeout_seconds) is not None
        outcome = self.jobs.ensure(run, manifest, timeout_seconds=migration.timeout_seconds)
        if not existed and outcome.uid:
            message = f"{step.message}: Job {outcome.job} created"
            log.info(message, action=str(step.action), reason=step.reason, color=str(wanted.color), job=outcome.job)
            self.cluster.post_event(release, "Normal", step.reason, message)
        seen = (observed.expand_runs if wanted.phase == HOOK_EXPAND else observed.contract_runs).get(wanted.color)
        return bool(outcome.uid) and (seen is None or (seen.uid, seen.verdict) != (outcome.uid, outcome.verdict))


def _result(phase: str, commit: str, color: Color, outcome: JobOutcome) -> MigrationResult:
    return MigrationResult(phase, commit, color, outcome.job, outcome.verdict, outcome.reason, outcome.message,
                           outcome.uid, outcome.created_at, outcome.started_at, outcome.finished_at)


def migrations_status(spec: ReleaseSpec, observed: Observed) -> list[dict[str, Any]] | None:
    """``status.migrations``: the desired commit's runs, expand first (None without ``spec.migrations``: the
    field stays absent)."""
    if not spec.migrations.paths:
        return None
    entries = []
    for runs in (observed.expand_runs, observed.contract_runs):
        for color in Color:
            result = runs.get(color)
            if result is not None:
                entries.append(_entry(result))
    return entries


def _entry(result: MigrationResult) -> dict[str, Any]:
    started = result.started_at or result.created_at
    return {"phase": result.phase, "commit": result.commit, "color": str(result.color), "job": result.job,
            "verdict": str(result.verdict), "reason": result.reason, "message": result.message[:MESSAGE_LIMIT],
            "startedAt": format_time(started) if started else None,
            "finishedAt": format_time(result.finished_at) if result.finished_at else None}

