"""The release history, as a table: which steps start, finish or leave an entry, with which outcome; its bound."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bluegreen.core.history import IN_PROGRESS, MAX_ENTRIES, record
from bluegreen.core.planner import Action, MarkReason, Phase, Plan
from bluegreen.core.spec import Color

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
STAMP = "2026-11-22T12:00:00Z"
EARLIER = "2026-11-22T11:00:00Z"
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
BLUE, GREEN = Color.BLUE, Color.GREEN


def step(action: Action, reason: str, color: Color | None = GREEN, mark: str | None = None) -> Plan:
    return Plan(action, reason, f"{action} {reason}", Phase.PROGRESSING, color=color, mark=mark)


def entry(commit: str, outcome: str, color: str = "blue", finished: str | None = EARLIER,
          started: str = EARLIER) -> dict[str, Any]:
    body = {"revision": commit, "message": f"release {commit[0]}", "author": "Dev <dev@example.com>",
            "color": color, "startedAt": started, "outcome": outcome}
    if finished is not None:
        body["finishedAt"] = finished
    return body


def new(commit: str, outcome: str, color: str = "green", finished: str | None = STAMP) -> dict[str, Any]:
    """An entry written by this step (summary and author of the commit being recorded)."""
    body = {"revision": commit, "message": "the summary", "author": "Ann <ann@example.com>", "color": color,
            "startedAt": STAMP, "outcome": outcome}
    if finished is not None:
        body["finishedAt"] = finished
    return body


SETTLED = [entry(C1, "Succeeded")]
OPEN_C2 = [entry(C2, IN_PROGRESS, color="green", finished=None), entry(C1, "Succeeded")]

# (id, history before, step, commit recorded, history after)
CASES = [
    ("apply-starts-an-entry", SETTLED, step(Action.APPLY, "NewRelease"), C2,
     [new(C2, IN_PROGRESS, finished=None), *SETTLED]),
    ("apply-supersedes-a-release-under-way", OPEN_C2, step(Action.APPLY, "NewRelease"), C3,
     [new(C3, IN_PROGRESS, finished=None), {**OPEN_C2[0], "outcome": "Superseded", "finishedAt": STAMP}, *SETTLED]),
    ("promote-finishes-the-open-entry", OPEN_C2, step(Action.SWITCH, "Promote"), C2,
     [{**OPEN_C2[0], "outcome": "Succeeded", "finishedAt": STAMP}, *SETTLED]),
    ("promote-names-the-colour-switched-to", [entry(C2, IN_PROGRESS, color="blue", finished=None)],
     step(Action.SWITCH, "Promote", GREEN), C2,
     [{**entry(C2, IN_PROGRESS, finished=None), "outcome": "Succeeded", "finishedAt": STAMP, "color": "green"}]),
    ("promote-without-an-open-entry-is-recorded-at-once", SETTLED, step(Action.SWITCH, "Promote"), C2,
     [new(C2, "Succeeded"), *SETTLED]),
    ("warm-rollback-is-one-entry-rolled-back", SETTLED, step(Action.SWITCH, "Rollback", BLUE), C3,
     [new(C3, "RolledBack", color="blue"), *SETTLED]),
    ("warm-rollback-supersedes-a-release-under-way", OPEN_C2, step(Action.SWITCH, "Rollback", BLUE), C3,
     [new(C3, "RolledBack", color="blue"), {**OPEN_C2[0], "outcome": "Superseded", "finishedAt": STAMP},
      *SETTLED]),
    ("cold-rollback-starts-an-entry", SETTLED, step(Action.SCALE, "ColdRollback", BLUE), C3,
     [new(C3, IN_PROGRESS, color="blue", finished=None), *SETTLED]),
    ("cold-rollback-finishes-rolled-back", [entry(C3, IN_PROGRESS, finished=None), *SETTLED],
     step(Action.SWITCH, "Rollback", BLUE), C3,
     [{**entry(C3, IN_PROGRESS, finished=None), "outcome": "RolledBack", "finishedAt": STAMP}, *SETTLED]),
    ("retry-of-an-abandoned-template-starts-an-entry", SETTLED, step(Action.SCALE, "Retry"), C3,
     [new(C3, IN_PROGRESS, finished=None), *SETTLED]),
    ("abandon-finishes-the-open-entry", OPEN_C2, step(Action.ABANDON, "ProgressDeadlineExceeded"), C2,
     [{**OPEN_C2[0], "outcome": "Abandoned", "finishedAt": STAMP}, *SETTLED]),
    ("abandon-leaves-other-commits-open", OPEN_C2, step(Action.ABANDON, "ProgressDeadlineExceeded"), C3, OPEN_C2),
    ("promote-of-another-commit-supersedes-the-open-one", OPEN_C2, step(Action.SWITCH, "Promote"), C3,
     [new(C3, "Succeeded"), {**OPEN_C2[0], "outcome": "Superseded", "finishedAt": STAMP}, *SETTLED]),
    ("replica-change-is-not-a-release", SETTLED, step(Action.SCALE, "ReplicasChanged"), C2, SETTLED),
    ("selector-drift-is-not-a-release", OPEN_C2, step(Action.SWITCH, "SelectorDrift"), C2, OPEN_C2),
    ("preview-switch-is-not-a-release", OPEN_C2, step(Action.SWITCH_PREVIEW, "PreviewSwitch"), C2, OPEN_C2),
    ("scale-down-is-not-a-release", SETTLED, step(Action.SCALE_DOWN, "ScaleDownDelayPassed", BLUE), C2, SETTLED),
    ("a-wait-changes-nothing", OPEN_C2, step(Action.WAIT, "WaitingForAvailability"), C2, OPEN_C2),
    ("nothing-to-do-changes-nothing", SETTLED, step(Action.NONE, "Released", None), C1, SETTLED),
    # The gates (reasons are compared where the expected entry names one).
    ("pre-check-failure-finishes-failed", OPEN_C2,
     step(Action.FAIL, "PrePromotionCheckFailed", mark=MarkReason.PRE_PROMOTION_CHECK_FAILED), C2,
     [{**OPEN_C2[0], "outcome": "Failed", "reason": "PrePromotionCheckFailed", "finishedAt": STAMP}, *SETTLED]),
    ("abort-before-the-switch-finishes-aborted", OPEN_C2, step(Action.FAIL, "Aborted", mark=MarkReason.ABORTED), C2,
     [{**OPEN_C2[0], "outcome": "Aborted", "reason": "Aborted", "finishedAt": STAMP}, *SETTLED]),
    ("abandon-names-its-reason", OPEN_C2,
     step(Action.ABANDON, "ProgressDeadlineExceeded", mark=MarkReason.PROGRESS_DEADLINE_EXCEEDED), C2,
     [{**OPEN_C2[0], "outcome": "Abandoned", "reason": "ProgressDeadlineExceeded", "finishedAt": STAMP}, *SETTLED]),
    ("post-check-failure-turns-the-success-into-a-rollback", [entry(C2, "Succeeded", color="green"), *SETTLED],
     step(Action.ROLLBACK, "PostPromotionCheckFailed", BLUE, mark=MarkReason.POST_PROMOTION_CHECK_FAILED), C2,
     [{**entry(C2, "Succeeded", color="green"), "outcome": "RolledBack", "reason": "PostPromotionCheckFailed",
       "finishedAt": STAMP}, *SETTLED]),
    ("abort-after-the-switch-is-a-rollback-aborted", [entry(C2, "Succeeded", color="green"), *SETTLED],
     step(Action.ROLLBACK, "Aborted", BLUE, mark=MarkReason.ABORTED), C2,
     [{**entry(C2, "Succeeded", color="green"), "outcome": "RolledBack", "reason": "Aborted",
       "finishedAt": STAMP}, *SETTLED]),
    ("rollback-leaves-other-commits-alone", SETTLED,
     step(Action.ROLLBACK, "PostPromotionCheckFailed", BLUE, mark=MarkReason.POST_PROMOTION_CHECK_FAILED), C2,
     [{**new(C2, "RolledBack", color="green"), "reason": "PostPromotionCheckFailed"}, *SETTLED]),
    ("retry-starts-an-entry", SETTLED, step(Action.RETRY, "Retry"), C2,
     [{**new(C2, IN_PROGRESS, finished=None), "reason": "Retry"}, *SETTLED]),
    ("cold-rollback-promoted-through-the-gates-is-rolled-back",
     [{**entry(C3, IN_PROGRESS, finished=None), "reason": "ColdRollback"}, *SETTLED],
     step(Action.SWITCH, "Promote", BLUE), C3,
     [{**entry(C3, IN_PROGRESS, finished=None), "outcome": "RolledBack", "reason": "Promote", "finishedAt": STAMP},
      *SETTLED]),
    ("run-checks-changes-nothing", OPEN_C2, step(Action.RUN_CHECKS, "PrePromotionChecks"), C2, OPEN_C2),
    ("finished-entries-keep-their-outcome", [entry(C2, "Abandoned"), entry(C1, "Succeeded")],
     step(Action.APPLY, "NewRelease"), C3,
     [new(C3, IN_PROGRESS, finished=None), entry(C2, "Abandoned"), entry(C1, "Succeeded")]),
]


@pytest.mark.parametrize(("before", "performed", "commit", "after"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_history_after_a_step(before: list[dict[str, Any]], performed: Plan, commit: str,
                              after: list[dict[str, Any]]) -> None:
    snapshot = [dict(e) for e in before]
    result = record(before, performed, commit=commit, summary="the summary", author="Ann <ann@example.com>",
                    now=NOW)
    # An entry's reason is compared where the expected entry names one (the older cases do not).
    compared = [{k: v for k, v in got.items() if k != "reason" or "reason" in want}
                for got, want in zip(result, after, strict=False)] + result[len(after):]
    assert compared == after
    assert before == snapshot, "the history given is not modified"


def full(count: int) -> list[dict[str, Any]]:
    return [entry(f"{i:040d}", "Succeeded") for i in range(count)]


@pytest.mark.parametrize(("kept", "performed", "length"), [
    pytest.param(19, step(Action.APPLY, "NewRelease"), 20, id="grows-to-the-bound"),
    pytest.param(20, step(Action.APPLY, "NewRelease"), 20, id="a-start-drops-the-oldest"),
    pytest.param(20, step(Action.SWITCH, "Rollback", BLUE), 20, id="a-warm-rollback-drops-the-oldest"),
    pytest.param(25, step(Action.WAIT, "WaitingForAvailability"), 20, id="a-longer-history-is-cut"),
])
def test_history_is_bounded(kept: int, performed: Plan, length: int) -> None:
    before = full(kept)
    result = record(before, performed, commit=C3, summary="s", author="a", now=NOW)
    assert len(result) == length == min(MAX_ENTRIES, len(result))
    if performed.writes:
        assert result[0]["revision"] == C3, "newest first"
        assert result[1:] == before[:length - 1], "the oldest entries are the ones dropped"
    else:
        assert result == before[:length]


def test_the_bound_is_the_crd_limit() -> None:
    assert MAX_ENTRIES == 20  # crds/: status.history maxItems 20
