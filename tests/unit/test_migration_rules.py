"""The migration rules of the planner (bluegreen.core.migrations) as tables of named cases: expand before a colour
is brought up, contract once no pod of the previous colour is left, one migration at a time, retry, warm and
cold rollbacks; the conditions and history entries they produce."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bluegreen.core.checks import Verdict
from bluegreen.core.conditions import condition_rows
from bluegreen.core.errors import Outcome
from bluegreen.core.history import record
from bluegreen.core.migrations import POD_POLL_SECONDS, pods_to_count
from bluegreen.core.planner import (
    Action,
    ColorState,
    Desired,
    MigrationResult,
    MigrationRun,
    Observed,
    Phase,
    Plan,
    Requests,
    ServiceState,
    Settings,
    plan,
)
from bluegreen.core.spec import Color

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
H1, H2, H3 = "hash1", "hash2", "hash3"
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
BLUE, GREEN = Color.BLUE, Color.GREEN
BOTH = Settings(scale_down_delay_seconds=300, progress_deadline_seconds=600, expand=True, contract=True)
NONE = replace(BOTH, expand=False, contract=False)
EXPAND_ONLY = replace(BOTH, contract=False)
CONTRACT_ONLY = replace(BOTH, expand=False)
EARLY, LATER = NOW - timedelta(minutes=20), NOW - timedelta(minutes=5)


def ready(color: Color, template: str, commit: str, replicas: int = 3, **extra: Any) -> ColorState:
    fields: dict[str, Any] = dict(
        color=color, exists=True, template_hash=template, commit=commit, replicas=replicas, generation=2,
        observed_generation=2, status_replicas=replicas, updated_replicas=replicas, ready_replicas=replicas,
        available_replicas=replicas, rollout_started_at=NOW - timedelta(minutes=30))
    fields.update(extra)
    return ColorState(**fields)


def cold(color: Color, template: str, commit: str, **extra: Any) -> ColorState:
    return ready(color, template, commit, replicas=0, **extra)


def rolling(color: Color, template: str, commit: str, replicas: int = 3, **extra: Any) -> ColorState:
    return ready(color, template, commit, replicas, ready_replicas=1, available_replicas=1,
                 rollout_started_at=NOW - timedelta(seconds=20), **extra)


def run(phase: str, commit: str, color: Color, verdict: Verdict = Verdict.PASSED, *, uid: str | None = None,
        created: datetime = EARLY, message: str = "") -> MigrationResult:
    reason = {Verdict.PASSED: "Passed", Verdict.RUNNING: "Running", Verdict.FAILED: "JobFailed"}[verdict]
    job = f"shop-{phase}-{commit[:10]}-{color}"
    return MigrationResult(phase, commit, color, job, verdict, reason, message or f"Job {job}: {verdict}",
                           uid=uid or f"uid-{phase}-{commit[:3]}-{color}", created_at=created)


def expand(commit: str, color: Color, verdict: Verdict = Verdict.PASSED, **kw: Any) -> MigrationResult:
    return run("expand", commit, color, verdict, **kw)


def contract(commit: str, color: Color, verdict: Verdict = Verdict.PASSED, **kw: Any) -> MigrationResult:
    return run("contract", commit, color, verdict, **kw)


def seen(blue: ColorState | None = None, green: ColorState | None = None, selects: Color | None = None, *,
         expands: tuple[MigrationResult, ...] = (), contracts: tuple[MigrationResult, ...] = (),
         running: tuple[MigrationResult, ...] = (), last_contract: datetime | None = None,
         pods: int | None = None, scale_down_at: datetime | None = None, requests: Requests | None = None,
         recorded: Color | None = None) -> Observed:
    return Observed(blue=blue or ColorState(color=BLUE), green=green or ColorState(color=GREEN),
                    service=ServiceState("shop", exists=True, color=selects), recorded_active=recorded,
                    scale_down_at=scale_down_at, requests=requests or Requests(),
                    expand_runs={r.color: r for r in expands}, contract_runs={r.color: r for r in contracts},
                    running_migrations=running, last_contract_at=last_contract, previous_pods=pods)


def want(template: str, commit: str, replicas: int = 3) -> Desired:
    return Desired(commit=commit, template_hash=template, replicas=replicas)


WARM_UNTIL = NOW + timedelta(minutes=3)
SERVING_C1 = ready(BLUE, H1, C1)
RUNNING_EXPAND_C2 = expand(C2, GREEN, Verdict.RUNNING)
RECORDED = "uid-recorded"

# (id, desired, observed, settings, action, colour, reason, the migration asked for or waited on (phase, rerun))
EXPAND_CASES = [
    ("first-release-runs-the-expand-before-anything-is-applied", want(H1, C1), seen(), BOTH,
     Action.RUN_MIGRATION, BLUE, "ExpandRunning", ("expand", False)),
    ("a-running-expand-is-waited-for", want(H1, C1), seen(expands=(expand(C1, BLUE, Verdict.RUNNING),),
                                                          running=(expand(C1, BLUE, Verdict.RUNNING),)), BOTH,
     Action.RUN_MIGRATION, BLUE, "ExpandRunning", ("expand", False)),
    ("a-passed-expand-lets-the-apply-go", want(H1, C1), seen(expands=(expand(C1, BLUE),)), BOTH,
     Action.APPLY, BLUE, "NewRelease", None),
    ("a-failed-expand-stalls-with-nothing-applied", want(H1, C1), seen(expands=(expand(C1, BLUE, Verdict.FAILED),)),
     BOTH, Action.WAIT, BLUE, "MigrationFailed", ("expand", False)),
    ("the-expand-of-a-new-commit-runs-for-the-idle-colour", want(H2, C2), seen(SERVING_C1, selects=BLUE), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", False)),
    ("an-expand-for-the-other-colour-does-not-count", want(H2, C2),
     seen(SERVING_C1, selects=BLUE, expands=(expand(C2, BLUE),)), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", False)),
    ("without-an-expand-the-apply-goes-at-once", want(H2, C2), seen(SERVING_C1, selects=BLUE), CONTRACT_ONLY,
     Action.APPLY, GREEN, "NewRelease", None),
    ("without-migrations-nothing-changes", want(H2, C2), seen(SERVING_C1, selects=BLUE), NONE,
     Action.APPLY, GREEN, "NewRelease", None),
    ("a-warm-rollback-runs-no-migration", want(H1, C3),
     seen(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, scale_down_at=WARM_UNTIL), BOTH,
     Action.SWITCH, BLUE, "Rollback", None),
    ("a-cold-rollback-runs-the-expand-again-though-it-passed-before", want(H1, C1),
     seen(cold(BLUE, H1, C1, expand_job="uid-expand-111-blue"), ready(GREEN, H2, C2), selects=GREEN,
          expands=(expand(C1, BLUE),)), BOTH,
     Action.RUN_MIGRATION, BLUE, "ExpandRunning", ("expand", True)),
    ("a-cold-rollback-scales-up-after-a-new-expand-run", want(H1, C1),
     seen(cold(BLUE, H1, C1, expand_job=RECORDED), ready(GREEN, H2, C2), selects=GREEN,
          expands=(expand(C1, BLUE, uid="uid-new"),)), BOTH,
     Action.SCALE, BLUE, "ColdRollback", None),
    ("a-cold-rollback-to-a-revert-commit-runs-its-expand", want(H1, C3),
     seen(cold(BLUE, H1, C1, expand_job=RECORDED), ready(GREEN, H2, C2), selects=GREEN), BOTH,
     Action.RUN_MIGRATION, BLUE, "ExpandRunning", ("expand", False)),
    ("an-expand-older-than-the-last-contract-runs-again", want(H2, C2),
     seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, created=EARLY),), last_contract=LATER), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", True)),
    ("an-expand-newer-than-the-last-contract-counts", want(H2, C2),
     seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, created=LATER),), last_contract=EARLY), BOTH,
     Action.APPLY, GREEN, "NewRelease", None),
    ("a-running-expand-is-never-stale", want(H2, C2),
     seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, Verdict.RUNNING, created=EARLY),),
          last_contract=LATER), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", False)),
    ("the-expand-waits-for-a-running-contract", want(H2, C2),
     seen(SERVING_C1, selects=BLUE, running=(contract(C1, BLUE, Verdict.RUNNING),)), BOTH,
     Action.WAIT, GREEN, "MigrationWaiting", ("expand", False)),
    ("a-newer-commit-waits-for-the-older-expand-running", want(H3, C3),
     seen(SERVING_C1, selects=BLUE, running=(RUNNING_EXPAND_C2,)), BOTH,
     Action.WAIT, GREEN, "MigrationWaiting", ("expand", False)),
    ("suspend-freezes-the-expand", want(H2, C2), seen(SERVING_C1, selects=BLUE), replace(BOTH, suspend=True),
     Action.NONE, None, "Suspended", None),
    ("a-replica-change-while-coming-up-runs-no-expand", want(H2, C3, replicas=5),
     seen(SERVING_C1, rolling(GREEN, H2, C2, expand_job="uid-expand-222-green"), selects=BLUE), BOTH,
     Action.SCALE, GREEN, "ReplicasChanged", None),
    ("a-warm-rollback-with-other-replicas-runs-no-migration", want(H1, C3, replicas=5),
     seen(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, scale_down_at=WARM_UNTIL), BOTH,
     Action.SCALE, BLUE, "ReplicasChanged", None),
    ("a-rolling-colour-is-not-gated-again", want(H2, C2), seen(SERVING_C1, rolling(GREEN, H2, C2), selects=BLUE),
     BOTH, Action.WAIT, GREEN, "WaitingForAvailability", None),
]

RETRY = Requests(retry=C2)
FAILED_MARK: dict[str, Any] = dict(failed_commit=C2, failed_reason="PrePromotionCheckFailed",
                                   failed_message="pre-promotion check 'smoke' failed")
RETRY_CASES = [
    ("a-retry-of-a-failed-expand-runs-it-again-and-waits", want(H2, C2),
     seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, Verdict.FAILED),), requests=RETRY), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", True)),
    ("a-retry-waits-while-the-old-job-goes", want(H2, C2), seen(SERVING_C1, selects=BLUE, requests=RETRY), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", False)),
    ("a-retry-of-a-marked-commit-at-zero-runs-the-expand-first", want(H2, C2),
     seen(SERVING_C1, cold(GREEN, H2, C2, expand_job="uid-expand-222-green", **FAILED_MARK), selects=BLUE,
          expands=(expand(C2, GREEN),), requests=RETRY), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", True)),
    ("a-marked-commit-retried-after-its-new-expand-passed", want(H2, C2),
     seen(SERVING_C1, cold(GREEN, H2, C2, expand_job=RECORDED, **FAILED_MARK), selects=BLUE,
          expands=(expand(C2, GREEN, uid="uid-new"),)), BOTH,
     Action.RETRY, GREEN, "Retry", None),
    ("a-marked-commit-whose-new-expand-failed-reports-it", want(H2, C2),
     seen(SERVING_C1, cold(GREEN, H2, C2, expand_job=RECORDED, **FAILED_MARK), selects=BLUE,
          expands=(expand(C2, GREEN, Verdict.FAILED, uid="uid-new"),)), BOTH,
     Action.WAIT, GREEN, "MigrationFailed", ("expand", False)),
    ("a-marked-commit-waits-for-its-new-expand", want(H2, C2),
     seen(SERVING_C1, cold(GREEN, H2, C2, expand_job=RECORDED, **FAILED_MARK), selects=BLUE,
          expands=(expand(C2, GREEN, Verdict.RUNNING, uid="uid-new"),), running=(RUNNING_EXPAND_C2,)), BOTH,
     Action.RUN_MIGRATION, GREEN, "ExpandRunning", ("expand", False)),
    ("a-marked-commit-without-retry-stays-stalled", want(H2, C2),
     seen(SERVING_C1, cold(GREEN, H2, C2, expand_job="uid-expand-222-green", **FAILED_MARK), selects=BLUE,
          expands=(expand(C2, GREEN),)), BOTH,
     Action.WAIT, None, "PrePromotionCheckFailed", None),
    ("a-retry-of-a-marked-colour-still-up-is-the-gates-retry", want(H2, C2),
     seen(SERVING_C1, ready(GREEN, H2, C2, **FAILED_MARK), selects=BLUE, expands=(expand(C2, GREEN),),
          requests=RETRY), BOTH,
     Action.RETRY, GREEN, "Retry", None),
    ("a-retry-without-an-expand-is-the-gates-retry", want(H2, C2),
     seen(SERVING_C1, cold(GREEN, H2, C2, **FAILED_MARK), selects=BLUE, requests=RETRY), CONTRACT_ONLY,
     Action.RETRY, GREEN, "Retry", None),
]

PREVIOUS_GONE = cold(GREEN, H2, C2)
CONTRACT_CASES = [
    ("first-release-contracts-once-it-serves", want(H1, C1), seen(SERVING_C1, selects=BLUE), BOTH,
     Action.RUN_MIGRATION, BLUE, "ContractRunning", ("contract", False)),
    ("no-contract-while-the-previous-colour-is-warm", want(H1, C1),
     seen(SERVING_C1, ready(GREEN, H2, C2), selects=BLUE, scale_down_at=WARM_UNTIL, pods=0), BOTH,
     Action.WAIT, None, "PreviousColorWarm", None),
    ("no-contract-while-its-deployment-reports-pods", want(H1, C1),
     seen(SERVING_C1, cold(GREEN, H2, C2, status_replicas=2), selects=BLUE, pods=0), BOTH,
     Action.WAIT, BLUE, "WaitingForOldPods", None),
    ("no-contract-before-the-controller-saw-the-scale-down", want(H1, C1),
     seen(SERVING_C1, cold(GREEN, H2, C2, generation=3), selects=BLUE, pods=0), BOTH,
     Action.WAIT, BLUE, "WaitingForOldPods", None),
    ("no-contract-while-one-pod-terminates", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=1),
     BOTH, Action.WAIT, BLUE, "WaitingForOldPods", None),
    ("no-contract-before-the-pods-were-counted", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE), BOTH,
     Action.WAIT, BLUE, "WaitingForOldPods", None),
    ("the-contract-runs-once-the-last-pod-is-gone", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=0), BOTH,
     Action.RUN_MIGRATION, BLUE, "ContractRunning", ("contract", False)),
    ("a-running-contract-is-waited-for", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE, Verdict.RUNNING),)), BOTH,
     Action.RUN_MIGRATION, BLUE, "ContractRunning", ("contract", False)),
    ("a-passed-contract-is-the-end", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE),)), BOTH,
     Action.NONE, None, "Released", None),
    ("a-failed-contract-stalls-but-traffic-stays", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE, Verdict.FAILED),)), BOTH,
     Action.WAIT, BLUE, "ContractFailed", ("contract", False)),
    ("a-retry-of-a-failed-contract-runs-it-again", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE, Verdict.FAILED),), pods=0,
          requests=Requests(retry=C1)), BOTH,
     Action.RUN_MIGRATION, BLUE, "ContractRunning", ("contract", True)),
    ("a-contract-older-than-the-commits-expand-runs-again", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE, created=EARLY),),
          expands=(expand(C1, BLUE, created=LATER),), pods=0), BOTH,
     Action.RUN_MIGRATION, BLUE, "ContractRunning", ("contract", True)),
    ("a-contract-newer-than-the-commits-expand-counts", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE, created=LATER),),
          expands=(expand(C1, BLUE, created=EARLY),), pods=0), BOTH,
     Action.NONE, None, "Released", None),
    ("the-contract-waits-for-another-migration", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=0, running=(expand(C2, GREEN, Verdict.RUNNING),)), BOTH,
     Action.WAIT, BLUE, "MigrationWaiting", ("contract", False)),
    ("without-a-contract-the-release-is-done", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=0),
     EXPAND_ONLY, Action.NONE, None, "Released", None),
    ("the-previous-colour-is-scaled-down-before-any-contract", want(H1, C1),
     seen(SERVING_C1, ready(GREEN, H2, C2), selects=BLUE, scale_down_at=NOW - timedelta(seconds=1)), BOTH,
     Action.SCALE_DOWN, GREEN, "ScaleDownDelayPassed", None),
]


def check(desired: Desired, observed: Observed, settings: Settings, action: Action, color: Color | None,
          reason: str, migration: tuple[str, bool] | None) -> Plan:
    step = plan(desired, observed, settings, NOW)
    assert (step.action, step.color, step.reason) == (action, color, reason), step
    if migration is None:
        assert step.migration is None
    else:
        assert step.migration is not None and (step.migration.phase, step.migration.rerun) == migration, step
        assert (step.migration.commit, step.migration.color) == (desired.commit, color)
    return step


@pytest.mark.parametrize(("desired", "observed", "settings", "action", "color", "reason", "migration"),
                         [pytest.param(*case[1:], id=case[0]) for case in EXPAND_CASES + RETRY_CASES + CONTRACT_CASES])
def test_migration_rules(desired: Desired, observed: Observed, settings: Settings, action: Action,
                         color: Color | None, reason: str, migration: tuple[str, bool] | None) -> None:
    check(desired, observed, settings, action, color, reason, migration)


# ---- what the steps carry ------------------------------------------------------------------------------------
def test_a_bring_up_after_an_expand_carries_the_jobs_uid() -> None:
    step = plan(want(H1, C1), seen(expands=(expand(C1, BLUE, uid="uid-7"),)), BOTH, NOW)
    assert step.expanded == "uid-7"
    cold_rollback = plan(want(H1, C1), seen(cold(BLUE, H1, C1, expand_job="uid-1"), ready(GREEN, H2, C2),
                                            selects=GREEN, expands=(expand(C1, BLUE, uid="uid-2"),)), BOTH, NOW)
    assert (cold_rollback.action, cold_rollback.expanded) == (Action.SCALE, "uid-2")
    assert plan(want(H1, C1), seen(), NONE, NOW).expanded is None


def test_the_expand_keeps_the_previous_colour_warm_and_traffic_where_it_is() -> None:
    step = plan(want(H2, C2), seen(SERVING_C1, ready(GREEN, H3, C3), selects=BLUE, scale_down_at=WARM_UNTIL), BOTH,
                NOW)
    assert (step.action, step.color, step.active, step.scale_down_at) == \
        (Action.RUN_MIGRATION, GREEN, BLUE, WARM_UNTIL)
    assert not step.writes and step.reconciling and not step.stalled and not step.serving
    assert "commit 222222222222" in step.message and "before green is brought up" in step.message


def test_a_failed_expand_names_the_job_and_what_it_printed() -> None:
    failure = expand(C2, GREEN, Verdict.FAILED, created=LATER, message=(
        "Job shop-expand-2222222222-green failed (BackoffLimitExceeded: Job has reached the specified backoff "
        "limit); the last lines of its pod's log:\nERROR: column \"name\" does not exist"))
    step = plan(want(H2, C2), seen(SERVING_C1, selects=BLUE, expands=(failure,)), BOTH, NOW)
    assert step.stalled and not step.writes and step.active is BLUE and step.phase is Phase.DEGRADED
    assert "shop-expand-2222222222-green failed" in step.message and 'column "name"' in step.message
    assert "traffic stays on blue" in step.message and "bluegreen retry" in step.message
    assert step.migration == MigrationRun("expand", C2, GREEN, started_at=LATER)
    first = plan(want(H1, C1), seen(expands=(expand(C1, BLUE, Verdict.FAILED),)), BOTH, NOW)
    assert "nothing serves yet" in first.message


def test_a_retry_waits_for_its_run_then_is_answered() -> None:
    failed = seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, Verdict.FAILED),), requests=RETRY)
    step = plan(want(H2, C2), failed, BOTH, NOW)
    assert step.held == ("retry",) and step.answers == (), "neither done nor refused while the old Job goes"
    again = plan(want(H2, C2), replace(failed, expand_runs={GREEN: expand(C2, GREEN, Verdict.RUNNING, uid="u2")}),
                 BOTH, NOW)
    [answer] = again.answers
    assert (answer.kind, answer.commit, answer.accepted, again.held) == ("retry", C2, True, ())
    assert again.action is Action.RUN_MIGRATION and not again.migration.rerun  # type: ignore[union-attr]
    waiting = plan(want(H2, C2), replace(failed, expand_runs={}, running_migrations=(contract(C1, BLUE,
                                                                                            Verdict.RUNNING),)),
                   BOTH, NOW)
    assert (waiting.reason, waiting.held, waiting.answers) == ("MigrationWaiting", ("retry",), ())


def test_a_retry_of_a_marked_commit_is_held_until_its_expand_runs() -> None:
    marked = seen(SERVING_C1, cold(GREEN, H2, C2, expand_job="uid-expand-222-green", **FAILED_MARK), selects=BLUE,
                  expands=(expand(C2, GREEN),), requests=RETRY)
    assert plan(want(H2, C2), marked, BOTH, NOW).held == ("retry",)
    running = replace(marked, expand_runs={GREEN: expand(C2, GREEN, Verdict.RUNNING, uid="uid-new")})
    step = plan(want(H2, C2), running, BOTH, NOW)
    assert step.action is Action.RUN_MIGRATION and [a.kind for a in step.answers if a.accepted] == ["retry"]
    passed = replace(marked, expand_runs={GREEN: expand(C2, GREEN, uid="uid-new")})
    retry = plan(want(H2, C2), passed, BOTH, NOW)
    assert (retry.action, retry.replicas, retry.expanded) == (Action.RETRY, 3, "uid-new")
    assert [a.kind for a in retry.answers if a.accepted] == ["retry"]


def test_an_unrelated_request_is_still_refused_during_a_migration() -> None:
    step = plan(want(H2, C2), seen(SERVING_C1, selects=BLUE, requests=Requests(retry=C1, promote=C2)), BOTH, NOW)
    assert step.action is Action.RUN_MIGRATION
    assert sorted((a.kind, a.accepted) for a in step.answers) == [("promote", False), ("retry", False)]


def test_an_abort_during_the_expand_is_refused_it_is_never_stopped_halfway() -> None:
    step = plan(want(H2, C2), seen(SERVING_C1, selects=BLUE, requests=Requests(abort=C2),
                                   expands=(expand(C2, GREEN, Verdict.RUNNING),)), BOTH, NOW)
    [answer] = step.answers
    assert (answer.kind, answer.accepted) == ("abort", False) and "never stopped halfway" in answer.message
    assert step.action is Action.RUN_MIGRATION


def test_the_contract_serves_and_says_how_many_pods_are_left() -> None:
    waiting = plan(want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=2), BOTH, NOW)
    assert waiting.serving and waiting.reconciling and waiting.requeue_after == POD_POLL_SECONDS
    assert "2 of its pods are still terminating" in waiting.message
    draining = plan(want(H1, C1), seen(SERVING_C1, cold(GREEN, H2, C2, status_replicas=2), selects=BLUE), BOTH, NOW)
    assert draining.requeue_after is None, "the Deployment's own events wake the release"
    failed = plan(want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                     contracts=(contract(C1, BLUE, Verdict.FAILED, message="Job x failed"),)), BOTH,
                  NOW)
    assert failed.serving and failed.stalled and failed.active is BLUE and "Job x failed" in failed.message
    assert "traffic is not touched" in failed.message


# ---- pods_to_count: the one API read of the contract --------------------------------------------------------
POD_CASES = [
    ("due", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE), BOTH, GREEN),
    ("no-contract", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE), EXPAND_ONLY, None),
    ("suspended", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE), replace(BOTH, suspend=True), None),
    ("no-desired", None, seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE), BOTH, None),
    ("nothing-serves", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE), BOTH, None),
    ("not-serving-the-desired-template", want(H3, C3), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE), BOTH, None),
    ("no-previous-colour", want(H1, C1), seen(SERVING_C1, selects=BLUE), BOTH, None),
    ("previous-warm", want(H1, C1), seen(SERVING_C1, ready(GREEN, H2, C2), selects=BLUE), BOTH, None),
    ("previous-still-reports-pods", want(H1, C1), seen(SERVING_C1, cold(GREEN, H2, C2, status_replicas=1),
                                                       selects=BLUE), BOTH, None),
    ("contract-passed", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                           contracts=(contract(C1, BLUE),)), BOTH, None),
    ("contract-running", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                            contracts=(contract(C1, BLUE, Verdict.RUNNING),)), BOTH, None),
    ("contract-failed", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                           contracts=(contract(C1, BLUE, Verdict.FAILED),)), BOTH, None),
    ("contract-failed-and-retried", want(H1, C1),
     seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, contracts=(contract(C1, BLUE, Verdict.FAILED),),
          requests=Requests(retry=C1)), BOTH, GREEN),
    ("contract-stale", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                          contracts=(contract(C1, BLUE, created=EARLY),),
                                          expands=(expand(C1, BLUE, created=LATER),)), BOTH, GREEN),
]


@pytest.mark.parametrize(("desired", "observed", "settings", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in POD_CASES])
def test_pods_are_counted_only_when_the_contract_is_due(desired: Desired | None, observed: Observed,
                                                        settings: Settings, expected: Color | None) -> None:
    assert pods_to_count(desired, observed, settings) is expected


# ---- conditions -----------------------------------------------------------------------------------------------
CONDITION_CASES = [
    ("expand-running", want(H2, C2), seen(SERVING_C1, selects=BLUE), ("False", "True", "False")),
    ("migration-waiting", want(H2, C2), seen(SERVING_C1, selects=BLUE, running=(contract(C1, BLUE,
                                                                                         Verdict.RUNNING),)),
     ("False", "True", "False")),
    ("migration-failed", want(H2, C2), seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, Verdict.FAILED),)),
     ("False", "False", "True")),
    ("waiting-for-old-pods", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=1),
     ("True", "True", "False")),
    ("contract-running", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE, pods=0),
     ("True", "True", "False")),
    ("contract-failed", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                           contracts=(contract(C1, BLUE, Verdict.FAILED),)),
     ("True", "False", "True")),
    ("contract-passed", want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                           contracts=(contract(C1, BLUE),)), ("True", "False", "False")),
]


@pytest.mark.parametrize(("desired", "observed", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in CONDITION_CASES])
def test_conditions_of_the_migration_steps(desired: Desired, observed: Observed,
                                           expected: tuple[str, str, str]) -> None:
    step = plan(desired, observed, BOTH, NOW)
    rows = dict(condition_rows(step, Outcome(True, "Fetched", "ok")))
    assert (rows["Ready"][0], rows["Reconciling"][0], rows["Stalled"][0]) == expected
    assert rows["Stalled" if expected[2] == "True" else "Reconciling"][1] == step.reason


# ---- history ---------------------------------------------------------------------------------------------------
def failed_step(started: datetime = LATER) -> Plan:
    return plan(want(H2, C2), seen(SERVING_C1, selects=BLUE, expands=(expand(C2, GREEN, Verdict.FAILED,
                                                                             created=started),)), BOTH, NOW)


def entry(**fields: Any) -> dict[str, Any]:
    return {"revision": C1, "message": "v1", "author": "dev", "color": "blue", "startedAt": "2026-11-22T11:00:00Z",
            "finishedAt": "2026-11-22T11:01:00Z", "outcome": "Succeeded", "reason": "Promote", **fields}


def record_failure(history: list[dict[str, Any]], step: Plan) -> list[dict[str, Any]]:
    return record(history, step, commit=C2, summary="v2", author="dev", now=NOW)


def test_a_failed_expand_makes_one_failed_entry_without_a_write() -> None:
    step = failed_step()
    assert not step.writes
    history = record_failure([entry()], step)
    assert history[0] == {"revision": C2, "message": "v2", "author": "dev", "color": "green",
                          "startedAt": "2026-11-22T11:55:00Z", "finishedAt": "2026-11-22T12:00:00Z",
                          "outcome": "Failed", "reason": "MigrationFailed"}
    assert history[1] == entry(), "the serving release's entry is untouched"
    assert record_failure(history, step) == history, "the same failure reported again adds nothing"
    again = record_failure(history, failed_step(started=NOW - timedelta(minutes=1)))
    assert len(again) == 3 and again[0]["startedAt"] == "2026-11-22T11:59:00Z", "a retried run that failed again"


def test_a_failed_expand_supersedes_an_open_release_and_closes_its_own() -> None:
    open_other = entry(revision=C3, outcome="InProgress", finishedAt=None)
    history = record_failure([open_other, entry()], failed_step())
    assert [(e["revision"], e["outcome"]) for e in history] == [(C2, "Failed"), (C3, "Superseded"), (C1, "Succeeded")]
    own = entry(revision=C2, outcome="InProgress", finishedAt=None, color="green")
    closed = record_failure([own, entry()], failed_step())
    assert [(e["revision"], e["outcome"], e["reason"]) for e in closed] == \
        [(C2, "Failed", "MigrationFailed"), (C1, "Succeeded", "Promote")]


def test_other_migration_steps_make_no_entry() -> None:
    history = [entry()]
    for step in (plan(want(H2, C2), seen(SERVING_C1, selects=BLUE), BOTH, NOW),
                 plan(want(H1, C1), seen(SERVING_C1, PREVIOUS_GONE, selects=BLUE,
                                         contracts=(contract(C1, BLUE, Verdict.FAILED),)), BOTH, NOW)):
        assert record(history, step, commit=C2, summary="v2", author="dev", now=NOW) == history
