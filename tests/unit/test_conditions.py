"""The status conditions, as a table: for each situation a release can be in (planned by the real planner from
an observed cluster), what Ready, Reconciling, Stalled and SourceReady say. Then how lastTransitionTime and
observedGeneration are kept. The kstatus reading (Current / InProgress / Failed) is in docs/conditions.md.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bluegreen.core.checks import Verdict
from bluegreen.core.conditions import (
    build_conditions,
    condition_rows,
    is_transient,
    source_pending,
    source_stalls,
    stamp_conditions,
)
from bluegreen.core.errors import Outcome
from bluegreen.core.planner import (
    Action,
    ColorState,
    Desired,
    MigrationResult,
    Observed,
    Phase,
    Plan,
    ServiceState,
    Settings,
    plan,
)
from bluegreen.core.spec import Color

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
BLUE, GREEN = Color.BLUE, Color.GREEN
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
SETTINGS = Settings(scale_down_delay_seconds=300, progress_deadline_seconds=600)
FETCHED = Outcome(True, "Fetched", "commit 2222222 ('release v2') on branch main of d.yaml", C2)
UNREACHABLE = Outcome(False, "RepositoryUnreachable", "cannot reach git.example.com", C2)
PATH_NOT_FOUND = Outcome(False, "PathNotFound", "d.yaml does not exist at commit 3333333", C3)
NOT_FETCHED = Outcome(False, "NotFetched", "git not read yet")
UNSIGNED = Outcome(False, "Unsigned", "commit 3333333 is not signed", C3)
VERIFIER_DOWN = Outcome(False, "VerifierUnavailable", "gpg did not finish within 10s", C3)


def up(color: Color, template: str, commit: str, replicas: int = 2, ready: int | None = None,
       age: timedelta = timedelta(minutes=30), **extra: Any) -> ColorState:
    """A colour's Deployment: ``ready`` of its ``replicas`` ready (all by default), its rollout begun ``age`` ago."""
    count = replicas if ready is None else ready
    fields: dict[str, Any] = dict(
        color=color, exists=True, template_hash=template, commit=commit, replicas=replicas, generation=1,
        observed_generation=1, status_replicas=replicas, updated_replicas=replicas, ready_replicas=count,
        available_replicas=count, rollout_started_at=NOW - age)
    fields.update(extra)
    return ColorState(**fields)


def seen(blue: ColorState | None = None, green: ColorState | None = None, selects: Color | None = None, *,
         service: bool = True, preview: Color | bool | None = False, recorded: Color | None = None,
         scale_down_at: datetime | None = None) -> Observed:
    return Observed(blue=blue or ColorState(BLUE), green=green or ColorState(GREEN),
                    service=ServiceState("shop", exists=service, color=selects),
                    preview=None if preview is False else ServiceState("shop-preview", True, preview or None),
                    recorded_active=recorded, scale_down_at=scale_down_at)


WARM = NOW + timedelta(seconds=120)
PAST = NOW - timedelta(seconds=1)
V2 = Desired(C2, "h2", 2)
REVERT = Desired(C3, "h1", 2)  # a commit whose manifest is the one blue still runs
SERVING_BLUE = seen(up(BLUE, "h1", C1), selects=BLUE, recorded=BLUE)

MIGRATING = replace(SETTINGS, expand=True, contract=True)
GREEN_SERVES_BLUE_GONE = seen(up(BLUE, "h1", C1, replicas=0), up(GREEN, "h2", C2), selects=GREEN)


def migration(phase: str, commit: str, color: Color, verdict: Verdict) -> MigrationResult:
    job = f"shop-{phase}-{commit[:10]}-{color}"
    return MigrationResult(phase, commit, color, job, verdict, str(verdict), f"Job {job}: {verdict}", uid=job,
                           created_at=NOW - timedelta(minutes=1))


# (id, desired, observed, settings, source, expected planner reason,
#  (Ready, Reconciling, Stalled) statuses, the reason of the condition that explains it)
CASES = [
    ("first-release-applies", Desired(C1, "h1", 2), seen(), SETTINGS, FETCHED, "NewRelease",
     ("False", "True", "False"), "NewRelease"),
    ("new-commit-applies-the-idle-colour", V2, SERVING_BLUE, SETTINGS, FETCHED, "NewRelease",
     ("False", "True", "False"), "NewRelease"),
    ("waiting-for-the-new-colour", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, ready=1, age=timedelta(0)),
                                           selects=BLUE), SETTINGS, FETCHED, "WaitingForAvailability",
     ("False", "True", "False"), "WaitingForAvailability"),
    ("switching-to-the-new-colour", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=BLUE), SETTINGS,
     FETCHED, "Promote", ("False", "True", "False"), "Promote"),
    ("previous-colour-warm-is-settled", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=GREEN,
                                                 scale_down_at=WARM), SETTINGS, FETCHED, "PreviousColorWarm",
     ("True", "False", "False"), "PreviousColorWarm"),
    ("scaling-the-previous-colour-down", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=GREEN,
                                                  scale_down_at=PAST), SETTINGS, FETCHED, "ScaleDownDelayPassed",
     ("True", "True", "False"), "ScaleDownDelayPassed"),
    ("released", V2, seen(up(BLUE, "h1", C1, replicas=0), up(GREEN, "h2", C2), selects=GREEN), SETTINGS, FETCHED,
     "Released", ("True", "False", "False"), "Released"),
    ("replica-change-of-the-serving-colour", replace(V2, replicas=4),
     seen(up(BLUE, "h1", C1, replicas=0), up(GREEN, "h2", C2), selects=GREEN), SETTINGS, FETCHED,
     "ReplicasChanged", ("True", "True", "False"), "ReplicasChanged"),
    ("preview-moved-after-the-switch", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=GREEN,
                                                preview=GREEN, scale_down_at=WARM), SETTINGS, FETCHED,
     "PreviewSwitch", ("True", "True", "False"), "PreviewSwitch"),
    ("preview-moved-before-the-switch", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, ready=0), selects=BLUE,
                                                 preview=BLUE), SETTINGS, FETCHED, "PreviewSwitch",
     ("False", "True", "False"), "PreviewSwitch"),
    ("warm-rollback-switch", REVERT, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=GREEN,
                                          scale_down_at=WARM), SETTINGS, FETCHED, "Rollback",
     ("False", "True", "False"), "Rollback"),
    ("cold-rollback-scale-up", REVERT, seen(up(BLUE, "h1", C1, replicas=0), up(GREEN, "h2", C2), selects=GREEN),
     SETTINGS, FETCHED, "ColdRollback", ("False", "True", "False"), "ColdRollback"),
    ("cold-rollback-waiting", REVERT, seen(up(BLUE, "h1", C1, ready=0, age=timedelta(0)), up(GREEN, "h2", C2),
                                           selects=GREEN), SETTINGS, FETCHED, "WaitingForAvailability",
     ("False", "True", "False"), "WaitingForAvailability"),
    ("hand-edited-selector-restored", V2, seen(up(BLUE, "h1", C1, replicas=0), up(GREEN, "h2", C2), selects=BLUE,
                                               recorded=GREEN), SETTINGS, FETCHED, "SelectorDrift",
     ("False", "True", "False"), "SelectorDrift"),
    ("deadline-missed-abandons", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, ready=0, age=timedelta(hours=1)),
                                          selects=BLUE), SETTINGS, FETCHED, "ProgressDeadlineExceeded",
     ("False", "False", "True"), "ProgressDeadlineExceeded"),
    ("abandoned-commit-waits-for-a-new-one", V2,
     seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, replicas=0, failed_commit=C2), selects=BLUE), SETTINGS,
     FETCHED, "ProgressDeadlineExceeded", ("False", "False", "True"), "ProgressDeadlineExceeded"),
    ("service-missing", V2, seen(service=False), SETTINGS, FETCHED, "ServiceNotFound",
     ("False", "False", "True"), "ServiceNotFound"),
    ("suspended", V2, SERVING_BLUE, replace(SETTINGS, suspend=True), FETCHED, "Suspended",
     ("False", "False", "False"), "Suspended"),
    ("suspended-with-a-broken-source", None, SERVING_BLUE, replace(SETTINGS, suspend=True), PATH_NOT_FOUND,
     "Suspended", ("False", "False", "False"), "Suspended"),
    ("manifest-gone-holds-and-stalls", None, SERVING_BLUE, SETTINGS, PATH_NOT_FOUND, "SourceNotReady",
     ("False", "False", "True"), "PathNotFound"),
    ("unsigned-commit-holds-and-stalls", None, SERVING_BLUE, SETTINGS, UNSIGNED, "SourceNotReady",
     ("False", "False", "True"), "Unsigned"),
    ("unreachable-git-retries-while-serving", V2,
     seen(up(BLUE, "h1", C1, replicas=0), up(GREEN, "h2", C2), selects=GREEN), SETTINGS, UNREACHABLE, "Released",
     ("False", "True", "False"), "RepositoryUnreachable"),
    ("verifier-unavailable-retries", None, SERVING_BLUE, SETTINGS, VERIFIER_DOWN, "SourceNotReady",
     ("False", "True", "False"), "VerifierUnavailable"),
    ("git-not-read-yet", None, seen(), SETTINGS, NOT_FETCHED, "SourceNotReady",
     ("False", "True", "False"), "NotFetched"),
    # the release gates (docs/gates.md)
    ("pre-promotion-checks-run", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=BLUE),
     replace(SETTINGS, pre_checks=("smoke",)), FETCHED, "PrePromotionChecks", ("False", "True", "False"),
     "PrePromotionChecks"),
    ("awaiting-promotion", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=BLUE),
     replace(SETTINGS, manual=True), FETCHED, "AwaitingPromotion", ("False", "True", "False"), "AwaitingPromotion"),
    ("post-promotion-checks-run", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=GREEN,
                                           scale_down_at=WARM), replace(SETTINGS, post_checks=("healthz",)),
     FETCHED, "PostPromotionChecks", ("True", "True", "False"), "PostPromotionChecks"),
    ("pre-check-failed-stalls", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, replicas=0, failed_commit=C2,
                                                                failed_reason="PrePromotionCheckFailed",
                                                                failed_message="check 'smoke' failed"),
                                         selects=BLUE), SETTINGS, FETCHED, "PrePromotionCheckFailed",
     ("False", "False", "True"), "PrePromotionCheckFailed"),
    ("rolled-back-after-a-post-check", V2, seen(up(BLUE, "h1", C1), up(
        GREEN, "h2", C2, replicas=0, failed_commit=C2, failed_reason="PostPromotionCheckFailed",
        failed_message="git's head is not what serves"), selects=BLUE), SETTINGS, FETCHED,
     "PostPromotionCheckFailed", ("False", "False", "True"), "PostPromotionCheckFailed"),
    ("aborted-stalls", V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, replicas=0, failed_commit=C2,
                                                       failed_reason="Aborted", failed_message="aborted"),
                                selects=BLUE), SETTINGS, FETCHED, "Aborted", ("False", "False", "True"), "Aborted"),
    # the migrations (docs/migrations.md)
    ("expand-runs-before-the-idle-colour", V2, SERVING_BLUE, MIGRATING, FETCHED, "ExpandRunning",
     ("False", "True", "False"), "ExpandRunning"),
    ("expand-waits-for-another-migration", V2, replace(SERVING_BLUE, running_migrations=(
        migration("contract", C1, BLUE, Verdict.RUNNING),)), MIGRATING, FETCHED, "MigrationWaiting",
     ("False", "True", "False"), "MigrationWaiting"),
    ("failed-expand-stalls", V2, replace(SERVING_BLUE, expand_runs={GREEN: migration("expand", C2, GREEN,
                                                                                     Verdict.FAILED)}),
     MIGRATING, FETCHED, "MigrationFailed", ("False", "False", "True"), "MigrationFailed"),
    ("contract-waits-for-the-old-pods", V2, replace(GREEN_SERVES_BLUE_GONE, previous_pods=2), MIGRATING, FETCHED,
     "WaitingForOldPods", ("True", "True", "False"), "WaitingForOldPods"),
    ("contract-runs", V2, replace(GREEN_SERVES_BLUE_GONE, previous_pods=0), MIGRATING, FETCHED, "ContractRunning",
     ("True", "True", "False"), "ContractRunning"),
    ("failed-contract-stalls-while-serving", V2, replace(GREEN_SERVES_BLUE_GONE, contract_runs={
        GREEN: migration("contract", C2, GREEN, Verdict.FAILED)}), MIGRATING, FETCHED, "ContractFailed",
     ("True", "False", "True"), "ContractFailed"),
    ("contract-passed-is-released", V2, replace(GREEN_SERVES_BLUE_GONE, contract_runs={
        GREEN: migration("contract", C2, GREEN, Verdict.PASSED)}), MIGRATING, FETCHED, "Released",
     ("True", "False", "False"), "Released"),
]


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


@pytest.mark.parametrize(("desired", "observed", "settings", "source", "planned", "statuses", "why"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_conditions_of_each_situation(desired: Desired | None, observed: Observed, settings: Settings,
                                      source: Outcome, planned: str, statuses: tuple[str, str, str],
                                      why: str) -> None:
    step = plan(desired, observed, settings, NOW)
    assert step.reason == planned, step
    conditions = by_type(build_conditions(step, source, 7, [], NOW))
    assert [c["type"] for c in build_conditions(step, source, 7, [], NOW)] == \
        ["Ready", "Reconciling", "Stalled", "SourceReady"]
    ready, reconciling, stalled = (conditions[k] for k in ("Ready", "Reconciling", "Stalled"))
    assert (ready["status"], reconciling["status"], stalled["status"]) == statuses
    # The condition that tells the story names the reason: Stalled when stalled, else Reconciling, else Ready.
    telling = stalled if statuses[2] == "True" else reconciling if statuses[1] == "True" else ready
    assert telling["reason"] == why
    assert ready["reason"] == (source.reason if not source.ok and step.phase is not Phase.SUSPENDED
                               else step.reason)
    assert conditions["SourceReady"]["status"] == ("True" if source.ok else "False")
    assert (conditions["SourceReady"]["reason"], conditions["SourceReady"]["message"]) == \
        (source.reason, source.message)
    if stalled["status"] == "False":
        assert (stalled["reason"], stalled["message"]) == ("NotStalled", "no error needs attention")
    for condition in conditions.values():
        assert condition["message"], condition
        assert condition["observedGeneration"] == 7
        assert condition["lastTransitionTime"] == "2026-11-22T12:00:00Z"


@pytest.mark.parametrize(("source", "serving", "expected"), [
    pytest.param(PATH_NOT_FOUND, BLUE, "d.yaml does not exist at commit 3333333 (blue keeps serving)",
                 id="names-the-serving-colour"),
    pytest.param(PATH_NOT_FOUND, None, "d.yaml does not exist at commit 3333333 (nothing was released yet)",
                 id="before-the-first-release"),
])
def test_a_failed_source_says_what_keeps_serving(source: Outcome, serving: Color | None, expected: str) -> None:
    step = Plan(Action.WAIT, "SourceNotReady", "held", Phase.DEGRADED, active=serving)
    assert by_type(build_conditions(step, source, 1, [], NOW))["Ready"]["message"] == expected


def test_a_retried_source_says_so_in_reconciling() -> None:
    step = Plan(Action.NONE, "Released", "green serves commit 2222", Phase.HEALTHY, active=GREEN, serving=True)
    reconciling = by_type(build_conditions(step, UNREACHABLE, 1, [], NOW))["Reconciling"]
    assert reconciling["message"] == "cannot reach git.example.com; retrying (green keeps serving)"


def test_settled_conditions_carry_the_step() -> None:
    step = Plan(Action.NONE, "Released", "green serves commit 2222", Phase.HEALTHY, active=GREEN, serving=True)
    conditions = by_type(build_conditions(step, FETCHED, 1, [], NOW))
    assert (conditions["Ready"]["reason"], conditions["Ready"]["message"]) == ("Released", "green serves commit 2222")
    assert (conditions["Reconciling"]["reason"], conditions["Reconciling"]["message"]) == \
        ("Released", "green serves commit 2222")


def test_a_stall_names_the_step_not_the_source() -> None:
    step = Plan(Action.WAIT, "ServiceNotFound", "Service 'shop' does not exist", Phase.DEGRADED, stalled=True)
    conditions = by_type(build_conditions(step, UNREACHABLE, 1, [], NOW))
    assert (conditions["Stalled"]["reason"], conditions["Stalled"]["message"]) == \
        ("ServiceNotFound", "Service 'shop' does not exist")
    assert conditions["Reconciling"]["status"] == "False", "a stalled release is not retried by itself"


@pytest.mark.parametrize(("verified", "expected"), [
    pytest.param(None, None, id="not-verifying"),
    pytest.param(Outcome(True, "Verified", "commit 2222 signed by dev", C2), ("True", "Verified"), id="verified"),
    pytest.param(Outcome(False, "UntrustedSigner", "commit 2222 signed by an unknown key", C2),
                 ("False", "UntrustedSigner"), id="untrusted"),
])
def test_source_verified_only_when_signatures_are_checked(verified: Outcome | None,
                                                          expected: tuple[str, str] | None) -> None:
    step = Plan(Action.NONE, "Released", "blue serves", Phase.HEALTHY, active=BLUE, serving=True)
    conditions = by_type(build_conditions(step, FETCHED, 1, [], NOW, verified=verified))
    if expected is None:
        assert "SourceVerified" not in conditions
    else:
        got = conditions["SourceVerified"]
        assert (got["status"], got["reason"], got["message"]) == (*expected, verified.message)  # type: ignore[union-attr]
        assert list(conditions)[-1] == "SourceVerified"


@pytest.mark.parametrize(("source", "transient", "pending", "stalls"), [
    pytest.param(FETCHED, False, False, False, id="fetched"),
    pytest.param(UNREACHABLE, True, True, False, id="unreachable"),
    pytest.param(Outcome(False, "FetchFailed", "x"), True, True, False, id="fetch-failed"),
    pytest.param(VERIFIER_DOWN, True, True, False, id="verifier-unavailable"),
    pytest.param(NOT_FETCHED, False, True, False, id="not-fetched"),
    pytest.param(PATH_NOT_FOUND, False, False, True, id="path-not-found"),
    pytest.param(UNSIGNED, False, False, True, id="unsigned"),
    pytest.param(Outcome(True, "RepositoryUnreachable", "odd but ok"), False, False, False, id="ok-is-never-failing"),
])
def test_source_outcomes_are_sorted(source: Outcome, transient: bool, pending: bool, stalls: bool) -> None:
    assert (is_transient(source), source_pending(source), source_stalls(source)) == (transient, pending, stalls)


# ---- lastTransitionTime and observedGeneration ---------------------------------------------------------
EARLIER = "2026-11-22T11:00:00Z"


def condition(kind: str, status: str, since: str | None = EARLIER, **extra: Any) -> dict[str, Any]:
    body = {"type": kind, "status": status, "reason": "Before", "message": "before", **extra}
    if since is not None:
        body["lastTransitionTime"] = since
    return body


@pytest.mark.parametrize(("previous", "row", "since"), [
    pytest.param([condition("Ready", "True")], ("True", "Released", "new message"), EARLIER,
                 id="same-status-keeps-the-time-even-with-a-new-reason"),
    pytest.param([condition("Ready", "False")], ("True", "Released", "m"), "2026-11-22T12:00:00Z",
                 id="changed-status-moves-the-time"),
    pytest.param([condition("Ready", "True", since=None)], ("True", "Released", "m"), "2026-11-22T12:00:00Z",
                 id="missing-time-is-set"),
    pytest.param([condition("Ready", "True", since="")], ("True", "Released", "m"), "2026-11-22T12:00:00Z",
                 id="empty-time-is-set"),
    pytest.param([condition("Stalled", "True")], ("True", "Released", "m"), "2026-11-22T12:00:00Z",
                 id="another-type-is-not-borrowed"),
    pytest.param([], ("True", "Released", "m"), "2026-11-22T12:00:00Z", id="first-time"),
])
def test_last_transition_time_moves_only_with_the_status(previous: list[dict[str, Any]], row: tuple[str, str, str],
                                                          since: str) -> None:
    (stamped,) = stamp_conditions([("Ready", row)], 4, previous, NOW)
    assert stamped == {"type": "Ready", "status": row[0], "reason": row[1], "message": row[2],
                       "lastTransitionTime": since, "observedGeneration": 4}


def test_conditions_over_passes_keep_their_times() -> None:
    """A release that goes from rolling out to settled and stays settled: each condition's time moves once."""
    rolling = plan(V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2, ready=0, age=timedelta(0)), selects=BLUE),
                   SETTINGS, NOW)
    first = build_conditions(rolling, FETCHED, 1, [], NOW)
    later = NOW + timedelta(seconds=30)
    settled = plan(V2, seen(up(BLUE, "h1", C1), up(GREEN, "h2", C2), selects=GREEN, scale_down_at=WARM), SETTINGS,
                   later)
    second = by_type(build_conditions(settled, FETCHED, 2, first, later))
    third = by_type(build_conditions(settled, FETCHED, 2, list(second.values()), later + timedelta(seconds=60)))
    moved = "2026-11-22T12:00:30Z"
    assert {k: c["lastTransitionTime"] for k, c in second.items()} == {
        "Ready": moved, "Reconciling": moved, "Stalled": "2026-11-22T12:00:00Z",
        "SourceReady": "2026-11-22T12:00:00Z"}
    assert third == second, "a pass that changes nothing changes no condition"
    assert {c["observedGeneration"] for c in third.values()} == {2}


def test_condition_rows_without_a_plan_step_that_writes() -> None:
    rows = dict(condition_rows(Plan(Action.WAIT, "PreviousColorWarm", "warm", Phase.HEALTHY, active=BLUE,
                                    serving=True), FETCHED))
    assert rows["Ready"] == ("True", "PreviousColorWarm", "warm")
    assert rows["Reconciling"] == ("False", "PreviousColorWarm", "warm")


def test_the_cli_lists_every_condition_with_its_time() -> None:
    from bluegreen.cli import condition_rows as cli_rows

    step = Plan(Action.NONE, "Released", "blue serves", Phase.HEALTHY, active=BLUE, serving=True)
    release = {"status": {"conditions": build_conditions(step, FETCHED, 1, [], NOW)}}
    rows = cli_rows(release)
    assert rows[0] == ("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE")
    assert [r[:4] for r in rows[1:]] == [("Ready", "True", "Released", "2026-11-22T12:00:00Z"),
                                         ("Reconciling", "False", "Released", "2026-11-22T12:00:00Z"),
                                         ("Stalled", "False", "NotStalled", "2026-11-22T12:00:00Z"),
                                         ("SourceReady", "True", "Fetched", "2026-11-22T12:00:00Z")]
    assert cli_rows({}) == rows[:1]
