"""History -> notifications (``core.notifications.announce``): a table of every outcome move, superseded
entries, the restart baseline, duplicates and the fields each notification carries; then real reconcile passes
(the recording harness) feeding the hook, as the operator does."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from recording_cluster import Harness, RefusingVerifier

from bluegreen.core.notifications import Notification, announce, transition
from bluegreen.core.notify_spec import NotifyEvent
from bluegreen.core.spec import ReleaseRef
from bluegreen.runtime.reconciler import Reconciler

RELEASE = ReleaseRef("shop", "shop", "u-1")
V1, V2, V3 = "1" * 40, "2" * 40, "3" * 40
T0, T1, T2 = "2026-01-01T10:00:00Z", "2026-01-01T10:00:07Z", "2026-01-01T10:01:00Z"
STARTED, PROMOTED, ROLLED_BACK, FAILED = (NotifyEvent.STARTED, NotifyEvent.PROMOTED, NotifyEvent.ROLLED_BACK,
                                          NotifyEvent.FAILED)


def entry(revision: str, outcome: str, *, started: str = T0, finished: str | None = None, color: str = "green",
          reason: str = "NewRelease") -> dict[str, Any]:
    found = {"revision": revision, "message": f"release {revision[0]}", "author": "Dev <dev@example.com>",
             "color": color, "startedAt": started, "outcome": outcome, "reason": reason}
    if finished is not None:
        found["finishedAt"] = finished
    return found


def status(*entries: dict[str, Any], active: str | None = "blue", **fields: Any) -> dict[str, Any]:
    return {"activeColor": active, "history": list(entries), **fields}


def events(before: dict[str, Any] | None, after: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(n.event), n.revision) for n in announce(RELEASE, before, after)]


@pytest.mark.parametrize(("before", "after", "expected"), [
    pytest.param(None, "InProgress", (STARTED,), id="new-started"),
    pytest.param(None, "Succeeded", (STARTED, PROMOTED), id="new-applied-and-switched-in-one-pass"),
    pytest.param(None, "RolledBack", (ROLLED_BACK,), id="new-warm-rollback"),
    pytest.param(None, "Failed", (FAILED,), id="new-failed-before-any-colour"),
    pytest.param(None, "Aborted", (FAILED,), id="new-aborted"),
    pytest.param(None, "Abandoned", (FAILED,), id="new-abandoned"),
    pytest.param(None, "Superseded", (), id="new-superseded"),
    pytest.param("InProgress", "InProgress", (), id="still-in-progress"),
    pytest.param("InProgress", "Succeeded", (PROMOTED,), id="promoted"),
    pytest.param("InProgress", "RolledBack", (ROLLED_BACK,), id="cold-rollback-switched"),
    pytest.param("InProgress", "Failed", (FAILED,), id="pre-promotion-check-failed"),
    pytest.param("InProgress", "Aborted", (FAILED,), id="aborted-before-the-switch"),
    pytest.param("InProgress", "Abandoned", (FAILED,), id="progress-deadline"),
    pytest.param("InProgress", "Superseded", (), id="superseded-announces-nothing"),
    pytest.param("Succeeded", "RolledBack", (ROLLED_BACK,), id="post-promotion-failure-switched-back"),
    pytest.param("Succeeded", "Succeeded", (), id="settled"),
    pytest.param("Succeeded", "Superseded", (), id="succeeded-then-superseded"),
    pytest.param("RolledBack", "RolledBack", (), id="rolled-back-stays"),
    pytest.param("Failed", "Failed", (), id="failed-stays"),
    pytest.param("InProgress", "Exploded", (), id="unknown-outcome"),
    pytest.param(None, "Exploded", (), id="new-unknown-outcome"),
])
def test_each_outcome_move(before: str | None, after: str, expected: tuple[NotifyEvent, ...]) -> None:
    assert transition(before, after) == expected
    old = status(entry(V1, before)) if before is not None else status()
    new = status(entry(V1, after, finished=None if after == "InProgress" else T1))
    assert [n.event for n in announce(RELEASE, old, new)] == list(expected)


def test_a_release_from_start_to_rollback_as_successive_writes() -> None:
    writes = [
        status(),
        status(entry(V1, "InProgress")),
        status(entry(V1, "Succeeded", finished=T1, reason="Promote")),
        status(entry(V2, "InProgress", started=T2, color="blue"), entry(V1, "Succeeded", finished=T1)),
        status(entry(V2, "Succeeded", started=T2, finished=T2, color="blue", reason="Promote"),
               entry(V1, "Succeeded", finished=T1)),
        status(entry(V3, "RolledBack", started=T2, finished=T2, reason="Rollback"),
               entry(V2, "Superseded", started=T2, finished=T2, color="blue"), entry(V1, "Succeeded", finished=T1)),
    ]
    found = [events(before, after) for before, after in itertools.pairwise(writes)]
    assert found == [[("Started", V1)], [("Promoted", V1)], [("Started", V2)], [("Promoted", V2)],
                     [("RolledBack", V3)]]


def test_several_entries_in_one_write_are_announced_oldest_first() -> None:
    before = status(entry(V1, "InProgress"))
    after = status(entry(V2, "InProgress", started=T2), entry(V1, "Superseded", finished=T2))
    assert events(before, after) == [("Started", V2)]
    after = status(entry(V3, "InProgress", started=T2), entry(V2, "Failed", started=T1, finished=T2),
                   entry(V1, "Succeeded", finished=T1))
    assert events(status(), after) == [("Started", V1), ("Promoted", V1), ("Failed", V2), ("Started", V3)]


@pytest.mark.parametrize("history", [
    pytest.param([entry(V1, "InProgress")], id="in-progress"),
    pytest.param([entry(V2, "Succeeded", finished=T1), entry(V1, "Superseded", finished=T1)], id="finished"),
    pytest.param([entry(V2, "RolledBack", finished=T1), entry(V1, "Succeeded", finished=T0)], id="rolled-back"),
])
def test_restart_baseline_nothing_in_the_history_is_announced_again(history: list[dict[str, Any]]) -> None:
    """After a restart the first pass starts from the status as first seen: writing it again (or a status
    that only changes other fields) announces nothing."""
    seen = status(*history)
    assert announce(RELEASE, seen, seen) == []
    assert announce(RELEASE, seen, {**seen, "phase": "Healthy", "message": "another message"}) == []


def test_duplicates_are_told_apart_by_occurrence_and_announced_once() -> None:
    """A retried commit may restart in the same second: two entries with one identity are matched in order."""
    first = entry(V1, "Failed", finished=T0, reason="PrePromotionCheckFailed")
    again = entry(V1, "InProgress", reason="Retry")
    assert events(status(first), status(again, first)) == [("Started", V1)]
    assert events(status(again, first), status(again, first)) == []
    notes = announce(RELEASE, status(), status(again, first))
    assert [n.event for n in notes] == [FAILED, STARTED]
    assert len({n.id for n in notes}) == 2


def test_entries_trimmed_from_the_bounded_history_announce_nothing() -> None:
    before = status(entry(V2, "InProgress", started=T1), entry(V1, "Succeeded", finished=T0))
    assert events(before, status(entry(V2, "InProgress", started=T1))) == []


def test_a_status_without_history_or_with_junk_is_no_error() -> None:
    assert announce(RELEASE, None, {}) == []
    assert announce(RELEASE, {"history": "junk"}, {"history": [None, 3, entry(V1, "InProgress")]})[0].event is STARTED


def test_what_a_promotion_carries() -> None:
    [note] = announce(RELEASE, status(entry(V1, "InProgress")),
                      status(entry(V1, "Succeeded", finished=T1, reason="Promote"), active="green"))
    assert note == Notification(
        event=PROMOTED, release=RELEASE, revision=V1, author="Dev <dev@example.com>", message="release 1",
        color="green", active_color="green", outcome="Succeeded", reason="Promote", detail="", started_at=T0,
        finished_at=T1)
    assert (note.short_revision, note.duration_seconds) == (V1[:12], 7)
    assert len(note.id) == 32 and note.id != announce(RELEASE, status(), status(entry(V1, "InProgress")))[0].id


def test_a_start_has_no_duration_nor_finish() -> None:
    [started, promoted] = announce(RELEASE, status(), status(entry(V1, "Succeeded", finished=T1, reason="Promote")))
    assert (started.outcome, started.finished_at, started.duration_seconds, started.reason) == \
        ("InProgress", None, None, ""), "its start reason was overwritten by the switch in the same write"
    assert (promoted.outcome, promoted.duration_seconds) == ("Succeeded", 7)
    [alone] = announce(RELEASE, status(), status(entry(V1, "InProgress", reason="ColdRollback")))
    assert (alone.reason, alone.duration_seconds) == ("ColdRollback", None)


def test_the_id_is_stable_and_unique_per_release_entry_and_event() -> None:
    def first_id(release: ReleaseRef, started: str = T0, event_outcome: str = "InProgress") -> str:
        return announce(release, status(), status(entry(V1, event_outcome, started=started, finished=T1)))[0].id

    assert first_id(RELEASE) == first_id(RELEASE)
    assert len({first_id(RELEASE), first_id(ReleaseRef("shop", "shop", "u-2")), first_id(RELEASE, started=T1),
                first_id(RELEASE, event_outcome="RolledBack")}) == 4


def test_a_failure_carries_the_stalled_message_of_its_reason() -> None:
    stalled = {"type": "Stalled", "status": "True", "reason": "PrePromotionCheckFailed",
               "message": "check 'smoke' failed: HTTP 500"}
    after = status(entry(V1, "Failed", finished=T1, reason="PrePromotionCheckFailed"),
                   conditions=[{"type": "Ready", "status": "False", "reason": "X", "message": "no"}, stalled])
    [note] = announce(RELEASE, status(entry(V1, "InProgress")), after)
    assert (note.event, note.reason, note.detail, note.duration_seconds) == \
        (FAILED, "PrePromotionCheckFailed", "check 'smoke' failed: HTTP 500", 7)
    other = {**stalled, "reason": "Aborted"}
    [note] = announce(RELEASE, status(entry(V1, "InProgress")), {**after, "conditions": [other]})
    assert note.detail == "", "a Stalled condition about something else is not this entry's detail"
    [note] = announce(RELEASE, status(entry(V1, "InProgress")), {**after, "conditions": [{**stalled,
                                                                                          "status": "False"}]})
    assert note.detail == ""


def test_a_rollback_after_the_switch_names_both_colours() -> None:
    before = status(entry(V2, "Succeeded", finished=T1, color="green"), active="green")
    after = status(entry(V2, "RolledBack", finished=T2, color="green", reason="PostPromotionCheckFailed"),
                   active="blue")
    [note] = announce(RELEASE, before, after)
    assert (note.event, note.color, note.active_color, note.duration_seconds) == (ROLLED_BACK, "green", "blue", 60)


# ---- real passes feed the hook -------------------------------------------------------------------
class Heard:
    """The reconciler's on_status hook, announcing as the notifier does."""

    def __init__(self) -> None:
        self.notes: list[Notification] = []
        self.calls = 0

    def __call__(self, release: ReleaseRef, spec: Any, before: Any, after: Any) -> None:
        self.calls += 1
        self.notes += announce(release, before, after)

    def said(self) -> list[tuple[str, str, str | None]]:
        return [(str(n.event), n.revision, n.color) for n in self.notes]


def test_passes_announce_start_promotion_and_a_warm_revert_once_each() -> None:
    release = Harness()
    heard = release.reconciler.on_status = Heard()
    v1 = release.released("v1")
    v2 = release.released("v2")
    revert = release.source.commit("v1", summary='Revert "release v2"')
    release.check_git_now()
    for _ in range(4):
        release.run()
    assert release.cluster.status["activeRevision"] == revert
    assert heard.said() == [("Started", v1, "blue"), ("Promoted", v1, "blue"), ("Started", v2, "green"),
                            ("Promoted", v2, "green"), ("RolledBack", revert, "blue")]
    assert heard.notes[-1].author == "Dev <dev@example.com>" and heard.notes[-1].message == 'Revert "release v2"'
    calls = heard.calls
    for _ in range(3):
        release.run()
    assert heard.said()[5:] == [], "passes that change nothing announce nothing"
    assert heard.calls == calls, "a status not written calls no hook"


def test_a_restarted_reconciler_announces_nothing_it_did_not_write() -> None:
    release = Harness()
    release.released("v1")
    release.reconciler = Reconciler(release.cluster, release.source, RefusingVerifier(), clock=lambda: release.now,
                                    monotonic=lambda: release.monotonic)  # a new process: nothing in memory
    heard = release.reconciler.on_status = Heard()
    release.check_git_now()
    for _ in range(3):
        release.run()
    assert heard.notes == [], "the history as first seen is the baseline"
    v2 = release.released("v2")
    assert heard.said() == [("Started", v2, "green"), ("Promoted", v2, "green")]


def test_an_abandoned_release_is_a_failure() -> None:
    release = Harness()
    heard = release.reconciler.on_status = Heard()
    release.released("v1")
    v2 = release.source.commit("v2")
    release.check_git_now()
    release.run()
    release.wait(601)
    release.run()
    assert heard.said()[2:] == [("Started", v2, "green"), ("Failed", v2, "green")]
    failed = heard.notes[-1]
    assert failed.reason == "ProgressDeadlineExceeded" and "did not become available" in failed.detail
    assert failed.duration_seconds == 601
