"""What a look at a release's status says happened since the previous look (``bluegreen.metrics.releases``):
statuses made by the real history rules (``core.history.record``), so the follower reads what passes write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bluegreen.core.history import record
from bluegreen.core.planner import Action, MarkReason, Phase, Plan
from bluegreen.core.spec import Color
from bluegreen.metrics.releases import (
    OUTCOMES,
    Changes,
    CheckVerdict,
    Look,
    Switch,
    conditions,
    follow,
    info_labels,
    newer,
)

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
V1, V2, V3 = "1" * 40, "2" * 40, "3" * 40


class Releases:
    """A release's status as successive passes write it: history through ``core.history.record``."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.version = 100
        self.now = T0

    def step(self, action: Action, reason: str, color: Color, commit: str, mark: str | None = None) -> dict[str, Any]:
        self.now += timedelta(seconds=5)
        plan = Plan(action, reason, "", Phase.PROGRESSING, color=color, mark=mark)
        self.history = record(self.history, plan, commit=commit, summary="s", author="a", now=self.now)
        return self.status()

    def status(self) -> dict[str, Any]:
        self.version += 1
        return {"history": self.history, "checks": self.checks}


def look(before: Look | None, status: dict[str, Any], version: int) -> tuple[Look, Changes]:
    followed = follow(before, status, str(version))
    assert followed is not None
    return followed


def test_the_first_look_takes_note_and_counts_nothing() -> None:
    release = Releases()
    release.step(Action.APPLY, "Release", Color.BLUE, V1)
    status = release.step(Action.SWITCH, "Promote", Color.BLUE, V1)
    first, changes = look(None, status, release.version)
    assert changes == Changes()
    assert first.ended, "what had ended is remembered"
    _, again = look(first, status, release.version)
    assert again == Changes(), "nothing new since"


def test_a_release_promoted_is_one_success_and_one_switch() -> None:
    release = Releases()
    seen, _ = look(None, release.status(), release.version)
    seen, changes = look(seen, release.step(Action.APPLY, "Release", Color.BLUE, V1), release.version)
    assert changes == Changes(), "in progress: no outcome yet"
    seen, changes = look(seen, release.step(Action.SWITCH, "Promote", Color.BLUE, V1), release.version)
    assert changes.outcomes == ("Succeeded",)
    assert changes.switches == (Switch("blue", V1, "Succeeded"),)
    _, changes = look(seen, release.status(), release.version)
    assert changes == Changes(), "the same status seen again (watch event after the patch) counts once"


def test_a_warm_revert_is_a_rollback_and_a_switch_and_a_superseded_release_no_switch() -> None:
    release = Releases()
    seen, _ = look(None, release.status(), release.version)
    for step in ((Action.APPLY, "Release", Color.BLUE, V1), (Action.SWITCH, "Promote", Color.BLUE, V1),
                 (Action.APPLY, "Release", Color.GREEN, V2)):
        seen, _ = look(seen, release.step(*step), release.version)
    seen, changes = look(seen, release.step(Action.APPLY, "Release", Color.GREEN, V3), release.version)
    assert changes.outcomes == ("Superseded",) and changes.switches == ()
    seen, changes = look(seen, release.step(Action.SWITCH, "Promote", Color.GREEN, V3), release.version)
    assert changes.switches == (Switch("green", V3, "Succeeded"),)
    _, changes = look(seen, release.step(Action.SWITCH, "Rollback", Color.BLUE, V1), release.version)
    assert changes.outcomes == ("RolledBack",)
    assert changes.switches == (Switch("blue", V1, "RolledBack"),)


@pytest.mark.parametrize(("action", "mark", "outcome"), [
    (Action.ABANDON, MarkReason.PROGRESS_DEADLINE_EXCEEDED, "Abandoned"),
    (Action.FAIL, MarkReason.PRE_PROMOTION_CHECK_FAILED, "Failed"),
    (Action.FAIL, MarkReason.ABORTED, "Aborted"),
])
def test_a_release_that_never_reached_traffic_has_an_outcome_and_no_switch(action: Action, mark: str,
                                                                           outcome: str) -> None:
    release = Releases()
    seen, _ = look(None, release.status(), release.version)
    seen, _ = look(seen, release.step(Action.APPLY, "Release", Color.GREEN, V2), release.version)
    _, changes = look(seen, release.step(action, str(mark), Color.GREEN, V2, mark=mark), release.version)
    assert changes == Changes(outcomes=(outcome,))


def test_a_post_promotion_rollback_counts_the_switch_back_as_rolled_back_but_not_as_a_switch() -> None:
    release = Releases()
    seen, _ = look(None, release.status(), release.version)
    seen, _ = look(seen, release.step(Action.APPLY, "Release", Color.GREEN, V2), release.version)
    seen, changes = look(seen, release.step(Action.SWITCH, "Promote", Color.GREEN, V2), release.version)
    assert changes.outcomes == ("Succeeded",)
    mark = MarkReason.POST_PROMOTION_CHECK_FAILED
    _, changes = look(seen, release.step(Action.ROLLBACK, str(mark), Color.BLUE, V2, mark=mark), release.version)
    assert changes == Changes(outcomes=("RolledBack",)), "v2 never reached traffic again: no switch latency"


def test_an_older_status_is_ignored_and_versions_that_do_not_compare_are_not() -> None:
    release = Releases()
    release.step(Action.APPLY, "Release", Color.BLUE, V1)
    older = release.status()
    newest = release.step(Action.SWITCH, "Promote", Color.BLUE, V1)
    seen, _ = look(None, {"history": []}, 100)
    seen, changes = look(seen, newest, 110)
    assert changes.outcomes == ("Succeeded",)
    assert follow(seen, older, "105") is None, "a watch event older than the patched status"
    assert follow(seen, newest, "110") is not None, "the same version again is looked at (and counts nothing)"
    assert newer("", "110") and newer("abc", "1") and newer("111", "110") and not newer("109", "110")


def test_entries_that_left_the_bounded_history_are_forgotten() -> None:
    release = Releases()
    seen, _ = look(None, release.status(), release.version)
    for n in range(25):
        commit = f"{n:040x}"
        release.step(Action.APPLY, "Release", Color.BLUE if n % 2 else Color.GREEN, commit)
        seen, _ = look(seen, release.step(Action.SWITCH, "Promote", Color.BLUE if n % 2 else Color.GREEN, commit),
                       release.version)
    assert len(seen.ended) == 20, "memory is bounded by the status"


def test_check_verdicts_count_once_each_when_decided() -> None:
    release = Releases()
    seen, _ = look(None, release.status(), release.version)
    running = {"name": "smoke", "hook": "prePromotion", "commit": V2, "color": "green", "verdict": "Running",
               "startedAt": "2026-12-01T12:00:05Z"}
    release.checks = [running]
    seen, changes = look(seen, release.status(), release.version)
    assert changes.verdicts == ()
    release.checks = [{**running, "verdict": "Passed"},
                      {**running, "name": "jobs", "verdict": "Failed"}]
    seen, changes = look(seen, release.status(), release.version)
    assert sorted(changes.verdicts, key=str) == [CheckVerdict("prePromotion", "jobs", "Failed"),
                                                 CheckVerdict("prePromotion", "smoke", "Passed")]
    _, changes = look(seen, release.status(), release.version)
    assert changes.verdicts == ()
    release.checks = [{**running, "verdict": "Passed", "startedAt": "2026-12-01T12:01:00Z"}]  # a retry runs again
    _, changes = look(seen, release.status(), release.version)
    assert changes.verdicts == (CheckVerdict("prePromotion", "smoke", "Passed"),)


def test_malformed_statuses_are_read_as_empty() -> None:
    seen, changes = look(None, {"history": "nonsense", "checks": [1, None, {"verdict": "Passed"}]}, 1)
    assert changes == Changes()
    assert seen.decided == {("", "", "", "", "", "Passed")}, "fields that are missing read as empty"
    assert follow(seen, {"history": [{"outcome": "Exploded"}, 3]}, "2") == (Look("2"), Changes())


def test_info_and_conditions() -> None:
    status = {"activeColor": "blue", "activeRevision": V1, "phase": "Healthy",
              "conditions": [{"type": "Ready", "status": "True"}, {"type": "Stalled", "status": "False"},
                             {"status": "True"}]}
    assert info_labels(status) == ("blue", V1, "Healthy")
    assert info_labels({}) == ("", "", "")
    assert conditions(status) == {("Ready", "True"), ("Stalled", "False")}
    assert conditions({"conditions": None}) == frozenset()


def test_the_outcomes_are_the_history_outcomes() -> None:
    assert set(OUTCOMES) == {"Succeeded", "RolledBack", "Failed", "Aborted", "Abandoned", "Superseded"}
