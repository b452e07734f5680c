"""The planner's vocabulary: what it observes, what it is told, and the plan it returns. Pure.

``bluegreen.core.planner`` (the rules of a release) and ``bluegreen.core.gates`` (the rules of its checks,
manual gate and promote/abort/retry requests) both speak it; ``planner`` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bluegreen.core.checks import CheckResult, Hook, Verdict
from bluegreen.core.spec import Color


class Action(StrEnum):
    """What the reconciler does next. One write per step; WAIT, NONE, RUN_CHECKS and RUN_MIGRATION write nothing
    to workloads."""

    NONE = "None"
    WAIT = "Wait"
    RUN_CHECKS = "RunChecks"  # start (or keep running) the checks of a hook: no API write, the runner works
    APPLY = "Apply"  # create/update the idle colour's Deployment from the desired template
    SCALE = "Scale"  # set a colour's replica count (cold rollback, manifest replica change)
    SWITCH = "Switch"  # point the Service's bluegreen.dev/color at a colour
    SWITCH_PREVIEW = "SwitchPreview"  # point the preview Service's bluegreen.dev/color at a colour
    SCALE_DOWN = "ScaleDown"  # a colour to 0 replicas (the previous one after its delay, or a failed one)
    ABANDON = "Abandon"  # idle colour missed its deadline: scale to 0 and mark the commit (ProgressDeadlineExceeded)
    FAIL = "Fail"  # a pre-promotion check failed, or an abort before the switch: scale to 0 and mark the commit
    ROLLBACK = "Rollback"  # a post-promotion check failed or an abort after the switch: mark, then switch back
    RETRY = "Retry"  # a retry request: clear the mark of the commit and bring its colour up again
    RUN_MIGRATION = "RunMigration"  # create (or keep waiting for) an expand/contract Job: no workload write


class Phase(StrEnum):
    """Display-only summary of a release (never read back to decide anything)."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    AWAITING_PROMOTION = "AwaitingPromotion"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"


class MarkReason(StrEnum):
    """Why a commit was marked failed on a colour's Deployment (``bluegreen.dev/failed-reason``)."""

    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    PRE_PROMOTION_CHECK_FAILED = "PrePromotionCheckFailed"
    POST_PROMOTION_CHECK_FAILED = "PostPromotionCheckFailed"
    ABORTED = "Aborted"


@dataclass(frozen=True)
class ColorState:
    """One colour's Deployment as observed in the cluster."""

    color: Color
    exists: bool = False
    template_hash: str | None = None
    commit: str | None = None
    replicas: int = 0  # spec.replicas
    generation: int = 0
    observed_generation: int = 0
    status_replicas: int = 0  # all pods, old templates included
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    rollout_started_at: datetime | None = None
    failed_commit: str | None = None
    """The commit marked failed on this colour (``bluegreen.dev/failed-commit``, or the older
    ``bluegreen.dev/abandoned-commit``): it is not tried again until a new commit or a retry."""
    failed_reason: str = MarkReason.PROGRESS_DEADLINE_EXCEEDED
    failed_message: str = ""
    expand_job: str | None = None
    """The uid of the expand Job that ran before this colour was last brought up (``bluegreen.dev/expand-job``)."""

    @property
    def fully_available(self) -> bool:
        """Every replica runs the current template and is ready and available; no old pod is left."""
        return (
            self.exists
            and self.replicas > 0
            and self.observed_generation >= self.generation
            and self.status_replicas == self.replicas
            and self.updated_replicas == self.replicas
            and self.ready_replicas == self.replicas
            and self.available_replicas == self.replicas
        )

    def describe_progress(self) -> str:
        return (
            f"{self.ready_replicas}/{self.replicas} ready, {self.available_replicas} available, "
            f"{self.updated_replicas} updated"
        )


@dataclass(frozen=True)
class ServiceState:
    """A Service as observed: does it exist and which colour does its selector name."""

    name: str
    exists: bool = False
    color: Color | None = None


@dataclass(frozen=True)
class Requests:
    """The ``bluegreen.dev/promote|abort|retry: <commit>`` annotations of the release not handled yet."""

    promote: str | None = None
    abort: str | None = None
    retry: str | None = None

    def items(self) -> list[tuple[str, str]]:
        """(kind, commit) of each request present: kind is ``promote``, ``abort`` or ``retry``."""
        return [(kind, value) for kind, value in
                (("promote", self.promote), ("abort", self.abort), ("retry", self.retry)) if value]


def names_commit(request: str | None, commit: str) -> bool:
    """Does a request's commit (full, or an abbreviation of at least 7 hex digits) name ``commit``?"""
    return request is not None and len(request) >= 7 and commit.startswith(request.lower())


@dataclass(frozen=True)
class MigrationResult:
    """One expand or contract run (a Job) of the release as the Job watch shows it."""

    phase: str  # expand | contract
    commit: str
    color: Color
    job: str
    verdict: Verdict
    reason: str
    message: str
    uid: str = ""
    created_at: datetime | None = None
    """The Job's creationTimestamp (the API server's clock, like every other Job's)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class MigrationRun:
    """The migration a plan asks for (RUN_MIGRATION) or waits on: a phase of a commit for a colour."""

    phase: str
    commit: str
    color: Color
    rerun: bool = False
    """Delete the run's finished Job first: it no longer counts (a retry, or stale), so it runs again."""
    started_at: datetime | None = None
    """When the run's Job was created, if it exists (a failure's history entry starts then)."""


@dataclass(frozen=True)
class Observed:
    """Everything the planner may know about the cluster and the release's own status."""

    blue: ColorState
    green: ColorState
    service: ServiceState
    preview: ServiceState | None = None
    recorded_active: Color | None = None  # status.activeColor: used only while the desired template is unknown
    scale_down_at: datetime | None = None  # status.idleScaleDownAt
    pre_results: Mapping[str, CheckResult] = field(default_factory=dict)
    """The pre-promotion results of the candidate (the desired commit on the colour that runs its template)."""
    post_results: Mapping[str, CheckResult] = field(default_factory=dict)
    requests: Requests = field(default_factory=Requests)
    expand_runs: Mapping[Color, MigrationResult] = field(default_factory=dict)
    """The desired commit's expand runs, by the colour they ran for."""
    contract_runs: Mapping[Color, MigrationResult] = field(default_factory=dict)
    running_migrations: tuple[MigrationResult, ...] = ()
    """Every expand/contract Job of the release still running, whatever its commit."""
    last_contract_at: datetime | None = None
    """When the release's newest contract Job (any commit) was created: an expand run before it is stale."""
    previous_pods: int | None = None
    """Pods left of the colour that does not serve, counted only when the contract waits on nothing else."""

    def color(self, color: Color) -> ColorState:
        return self.blue if color is Color.BLUE else self.green

    def results(self, hook: Hook) -> Mapping[str, CheckResult]:
        return self.pre_results if hook is Hook.PRE_PROMOTION else self.post_results


@dataclass(frozen=True)
class Desired:
    """The release the git source asks for."""

    commit: str
    template_hash: str
    replicas: int


@dataclass(frozen=True)
class Settings:
    """The parts of the spec the planner needs."""

    scale_down_delay_seconds: int
    progress_deadline_seconds: int
    suspend: bool = False
    manual: bool = False
    """``spec.promotion.mode: Manual``: after the pre-promotion checks, wait for a promote request."""
    pre_checks: tuple[str, ...] = ()
    """The names of ``spec.checks.prePromotion``."""
    post_checks: tuple[str, ...] = ()
    expand: bool = False
    """``spec.migrations.expand`` is set."""
    contract: bool = False


@dataclass(frozen=True)
class Answer:
    """What became of a promote/abort/retry request: done (``accepted``) or refused (with why)."""

    kind: str
    commit: str
    accepted: bool
    message: str


@dataclass(frozen=True)
class Plan:
    """The next action and how to present it; ``scale_down_at`` is the value to keep in status."""

    action: Action
    reason: str
    message: str
    phase: Phase
    color: Color | None = None
    replicas: int | None = None
    requeue_after: float | None = None  # seconds until a time-based rule fires; None: wait for events
    scale_down_at: datetime | None = None
    active: Color | None = None  # the colour that serves (or is being made to serve) traffic after this plan
    stalled: bool = False
    """The release cannot go on without a change (in git, in the spec or in the cluster)."""
    serving: bool = False
    """The colour the Service selects runs the desired template (rule 3): the release has reached traffic."""
    details: dict[str, str] = field(default_factory=dict)
    hook: Hook | None = None
    """RUN_CHECKS: the hook whose checks run for the candidate (commit, ``color``)."""
    mark: str | None = None
    """ABANDON, FAIL, ROLLBACK: the reason the commit is marked with (``MarkReason``)."""
    awaiting: bool = False
    """The candidate passed its checks and waits for a promote (``status.awaitingPromotion``)."""
    answers: tuple[Answer, ...] = ()
    """The requests this plan handled (done or refused): the reconciler removes their annotations."""
    held: tuple[str, ...] = ()
    """Kinds of request this plan keeps for a later step (neither done nor refused): a retry waits for its expand."""
    migration: MigrationRun | None = None
    """RUN_MIGRATION: the run to create or wait for; a migration wait or failure: the run it is about."""
    expanded: str | None = None
    """APPLY, SCALE, RETRY after an expand: that Job's uid, recorded on the colour (``bluegreen.dev/expand-job``)."""

    @property
    def writes(self) -> bool:
        return self.action not in (Action.NONE, Action.WAIT, Action.RUN_CHECKS, Action.RUN_MIGRATION)

    @property
    def reconciling(self) -> bool:
        """A release, a rollback or a scale-down is under way: this step writes (apply, scale, switch, scale
        down), waits for a colour to become available, runs checks or a migration (or waits to), or waits for a
        promote. Waiting out the warm window is not progress."""
        return not self.stalled and (self.writes or self.action in (Action.RUN_CHECKS, Action.RUN_MIGRATION)
                                     or self.awaiting or self.reason in PROGRESS_WAITS)


WAITING_FOR_AVAILABILITY = "WaitingForAvailability"
MIGRATION_WAITING = "MigrationWaiting"
"""A migration waits for another one of the release to finish (one at a time)."""
WAITING_FOR_OLD_PODS = "WaitingForOldPods"
"""The contract waits for the last pods of the previous colour to be gone."""
PROGRESS_WAITS = frozenset({WAITING_FOR_AVAILABILITY, MIGRATION_WAITING, WAITING_FOR_OLD_PODS})
AWAITING_PROMOTION = "AwaitingPromotion"


def all_passed(names: tuple[str, ...], results: Mapping[str, CheckResult]) -> bool:
    """Every named check has passed (vacuously true for none)."""
    return all(name in results and results[name].verdict is Verdict.PASSED for name in names)


def first_failure(names: tuple[str, ...], results: Mapping[str, CheckResult]) -> CheckResult | None:
    """The first named check that failed, in spec order."""
    return next((results[n] for n in names if n in results and results[n].verdict is Verdict.FAILED), None)
