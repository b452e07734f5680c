"""Reconcile passes against a recording fake cluster: which writes a pass makes, in which order, and what the
status says after each (conditions, history, lastHandledReconcileAt). A pure unit: no cluster, no git."""

from __future__ import annotations

from typing import Any

import pytest
from recording_cluster import Harness

ROLLOUT = "bluegreen.dev/rollout-started-at"
ABANDONED = "bluegreen.dev/abandoned-commit"
FAILED_COMMIT, FAILED_REASON, FAILED_MESSAGE = ("bluegreen.dev/failed-commit", "bluegreen.dev/failed-reason",
                                                "bluegreen.dev/failed-message")
UNMARK = {FAILED_COMMIT: None, FAILED_REASON: None, FAILED_MESSAGE: None, ABANDONED: None}
COMMIT = "bluegreen.dev/commit"


@pytest.fixture
def release() -> Harness:
    return Harness()


def reasons(statuses: list[dict[str, Any]], kind: str = "Reconciling") -> list[tuple[str, str]]:
    """(status, reason) of one condition in each status patch."""
    return [(c["status"], c["reason"]) for s in statuses for c in s.get("conditions", []) if c["type"] == kind]


def test_first_release_applies_then_switches_once_available(release: Harness) -> None:
    v1 = release.source.commit("v1")
    release.run()
    assert release.cluster.writes == [("apply", "shop-blue", v1, 2)]
    assert release.cluster.statuses() == ("False", "True", "False")
    assert release.cluster.condition("Reconciling")["reason"] == "WaitingForAvailability"
    release.run()
    assert release.cluster.writes == [("apply", "shop-blue", v1, 2)], "waiting writes nothing"

    release.cluster.roll_out()
    release.run()
    assert release.cluster.writes == [("apply", "shop-blue", v1, 2), ("switch", "shop", "blue")]
    assert release.cluster.selectors["shop"] == {"app": "shop", "bluegreen.dev/color": "blue"}
    assert release.cluster.statuses() == ("True", "False", "False")
    status = release.cluster.status
    assert (status["activeColor"], status["activeRevision"], status["phase"]) == ("blue", v1, "Healthy")
    assert [(h["revision"], h["outcome"], h["color"]) for h in status["history"]] == [(v1, "Succeeded", "blue")]
    assert [reason for _, reason, _ in release.cluster.events] == ["NewRelease", "Promote"]


def test_new_commit_apply_wait_switch_warm_then_scale_down(release: Harness) -> None:
    v1 = release.released("v1")
    mark = len(release.cluster.writes)
    v2 = release.source.commit("v2")
    release.check_git_now()
    release.run()
    assert release.writes_since(mark) == [("apply", "shop-green", v2, 2)]
    assert release.cluster.statuses() == ("False", "True", "False")
    assert release.cluster.status["activeColor"] == "blue", "traffic stays until green is available"

    release.wait(5)
    release.run()
    assert release.writes_since(mark) == [("apply", "shop-green", v2, 2)]
    assert release.cluster.condition("Reconciling")["reason"] == "WaitingForAvailability"

    release.cluster.roll_out()
    release.wait(5)
    switched_at = "2026-11-22T12:00:10Z"
    patches = len(release.cluster.status_patches)
    release.run()
    assert release.writes_since(mark) == [("apply", "shop-green", v2, 2), ("switch", "shop", "green")]
    assert reasons(release.cluster.status_patches[patches:]) == [("False", "PreviousColorWarm")], \
        "one status patch per pass: the summary after its last step"
    assert release.cluster.statuses() == ("True", "False", "False"), "settled while blue stays warm"
    ready = release.cluster.condition("Ready")
    assert (ready["reason"], ready["lastTransitionTime"]) == ("PreviousColorWarm", switched_at)
    assert release.cluster.status["idleScaleDownAt"] == "2026-11-22T12:05:10Z"
    assert release.cluster.deployments["shop-blue"]["spec"]["replicas"] == 2, "the previous colour stays warm"

    release.wait(100)
    release.run()
    assert len(release.cluster.writes) == mark + 2, "the warm window writes nothing"

    release.wait(201)
    patches = len(release.cluster.status_patches)
    release.run()
    assert release.writes_since(mark) == [("apply", "shop-green", v2, 2), ("switch", "shop", "green"),
                                          ("scale", "shop-blue", 0, {ROLLOUT: None})]
    assert reasons(release.cluster.status_patches[patches:]) == [("False", "Released")]
    assert reasons(release.cluster.status_patches[patches:], "Ready") == [("True", "Released")]
    assert release.cluster.statuses() == ("True", "False", "False")
    assert release.cluster.condition("Ready")["lastTransitionTime"] == switched_at, \
        "Ready stayed True: its transition time is the switch's"
    assert "idleScaleDownAt" not in release.cluster.status, "removed (merge patch null)"
    history = release.cluster.status["history"]
    assert [(h["revision"], h["outcome"]) for h in history] == [(v2, "Succeeded"), (v1, "Succeeded")]


def test_a_settled_release_writes_nothing_at_all(release: Harness) -> None:
    release.released("v1")
    writes, patches, events = (len(release.cluster.writes), len(release.cluster.status_patches),
                               len(release.cluster.events))
    for _ in range(3):
        release.wait(60)
        release.run()
    assert len(release.cluster.writes) == writes
    assert len(release.cluster.status_patches) == patches, "an unchanged status is not patched again"
    assert len(release.cluster.events) == events


def test_a_restarted_operator_does_not_patch_a_status_the_release_already_shows(release: Harness) -> None:
    release.released("v1")
    release.wait(301)
    release.run()  # the previous colour is scaled down: settled
    writes, patches, events = (len(release.cluster.writes), len(release.cluster.status_patches),
                               len(release.cluster.events))
    release.__post_init__()  # a new Reconciler: nothing in memory, as after a restart
    release.run()
    release.run()
    assert len(release.cluster.status_patches) == patches, "the release's status already says it all"
    assert (len(release.cluster.writes), len(release.cluster.events)) == (writes, events)


def test_a_status_changed_behind_the_operators_back_is_written_again(release: Harness) -> None:
    release.released("v1")
    release.cluster.status["phase"] = "Edited"
    release.__post_init__()
    patches = len(release.cluster.status_patches)
    release.run()
    assert len(release.cluster.status_patches) == patches + 1
    assert release.cluster.status["phase"] != "Edited"


def test_warm_rollback_is_one_switch_and_a_rolled_back_entry(release: Harness) -> None:
    release.released("v1")
    v2 = release.released("v2")
    mark = len(release.cluster.writes)
    revert = release.source.commit("v1", summary='Revert "release v2"')
    release.check_git_now()
    release.run()
    assert release.writes_since(mark) == [("switch", "shop", "blue")], "only the selector moves"
    history = release.cluster.status["history"]
    assert (history[0]["revision"], history[0]["outcome"], history[0]["color"]) == (revert, "RolledBack", "blue")
    assert history[0]["message"] == 'Revert "release v2"'
    assert history[1]["revision"] == v2 and history[1]["outcome"] == "Succeeded"
    assert (release.cluster.status["activeColor"], release.cluster.status["activeRevision"]) == ("blue", revert)
    assert release.cluster.statuses() == ("True", "False", "False")
    assert release.cluster.events[-1][:2] == ("Normal", "Rollback")


def test_cold_rollback_scales_up_waits_then_switches(release: Harness) -> None:
    release.released("v1")
    release.released("v2")
    release.wait(301)
    release.run()
    mark = len(release.cluster.writes)
    assert release.cluster.deployments["shop-blue"]["spec"]["replicas"] == 0
    revert = release.source.commit("v1")
    release.check_git_now()
    release.run()
    assert release.writes_since(mark) == [("scale", "shop-blue", 2, {ROLLOUT: "2026-11-22T12:05:01Z",
                                                                     **UNMARK, COMMIT: revert})]
    assert release.cluster.statuses() == ("False", "True", "False")
    assert release.cluster.status["history"][0] == {
        "revision": revert, "message": "release v1", "author": "Dev <dev@example.com>", "color": "blue",
        "startedAt": "2026-11-22T12:05:01Z", "outcome": "InProgress", "reason": "ColdRollback"}
    release.cluster.roll_out()
    release.wait(3)
    release.run()
    assert release.writes_since(mark)[1:] == [("switch", "shop", "blue")]
    entry = release.cluster.status["history"][0]
    assert (entry["outcome"], entry["finishedAt"]) == ("RolledBack", "2026-11-22T12:05:04Z")


def test_a_never_ready_commit_is_abandoned_and_marked(release: Harness) -> None:
    release.released("v1")
    release.wait(400)
    mark = len(release.cluster.writes)
    v2 = release.source.commit("v2-never-ready")
    release.check_git_now()
    release.run()
    assert release.writes_since(mark) == [("apply", "shop-green", v2, 2)]
    release.wait(599)
    release.run()
    assert len(release.cluster.writes) == mark + 1, "not abandoned before the deadline"
    release.wait(1)
    release.run()
    [(kind, name, replicas, marked)] = release.writes_since(mark)[1:]
    assert (kind, name, replicas) == ("scale", "shop-green", 0)
    assert marked == {**UNMARK, FAILED_COMMIT: v2, FAILED_REASON: "ProgressDeadlineExceeded",
                      FAILED_MESSAGE: marked[FAILED_MESSAGE]}
    assert "did not become available within 600s" in marked[FAILED_MESSAGE]
    assert release.cluster.statuses() == ("False", "False", "True")
    stalled = release.cluster.condition("Stalled")
    assert stalled["reason"] == "ProgressDeadlineExceeded" and v2[:12] in stalled["message"]
    assert release.cluster.selectors["shop"]["bluegreen.dev/color"] == "blue"
    assert release.cluster.status["history"][0]["outcome"] == "Abandoned"
    assert ("Warning", "ProgressDeadlineExceeded") in [e[:2] for e in release.cluster.events]

    release.check_git_now("again")
    release.wait(30)
    release.run()
    assert len(release.cluster.writes) == mark + 2, "an abandoned commit is not tried again"
    v3 = release.source.commit("v3")
    release.check_git_now()
    release.run()
    assert release.writes_since(mark)[2:] == [("apply", "shop-green", v3, 2), ("scale", "shop-green", 2, UNMARK)]
    release.cluster.roll_out()
    release.run()
    assert release.cluster.statuses() == ("True", "False", "False")
    assert release.cluster.status["activeRevision"] == v3


def test_a_new_commit_with_the_abandoned_template_retries_as_a_release(release: Harness) -> None:
    release.released("v1")
    v2 = release.source.commit("v2")
    release.check_git_now()
    release.run()
    release.wait(601)
    release.run()  # abandoned
    retry = release.source.commit("v2", summary="retry v2")
    release.check_git_now()
    mark = len(release.cluster.writes)
    release.run()
    assert release.writes_since(mark) == [("scale", "shop-green", 2, {ROLLOUT: "2026-11-22T12:10:01Z",
                                                                      **UNMARK, COMMIT: retry})]
    release.cluster.roll_out()
    release.run()
    history = release.cluster.status["history"]
    assert [(h["revision"], h["outcome"]) for h in history[:2]] == [(retry, "Succeeded"), (v2, "Abandoned")]


def test_the_status_names_the_generation_and_the_handled_check(release: Harness) -> None:
    release.source.commit("v1")
    release.generation = 3
    release.check_git_now("2026-11-22T12:00:00.5Z")
    release.run()
    status = release.cluster.status
    assert status["observedGeneration"] == 3
    assert {c["observedGeneration"] for c in status["conditions"]} == {3}
    assert status["lastHandledReconcileAt"] == "2026-11-22T12:00:00.5Z"
    patches = len(release.cluster.status_patches)
    release.check_git_now("second")
    release.run()
    assert release.cluster.status["lastHandledReconcileAt"] == "second"
    assert len(release.cluster.status_patches) == patches + 1, "a handled check is reported even if nothing else is"


def test_no_handled_check_before_one_is_asked_for(release: Harness) -> None:
    release.source.commit("v1")
    release.run()
    assert "lastHandledReconcileAt" not in release.cluster.status
