"""Reconcile passes through the release gates, against the recording cluster and a fake check runner whose
verdicts the test gives: pre-promotion checks, the manual gate, promote/abort/retry requests (annotations
removed once handled), post-promotion checks with automatic rollback, warm reverts past every gate."""

from __future__ import annotations

from typing import Any

import pytest
from fake_checks import FakeChecks
from recording_cluster import Harness, RecordingCluster

from bluegreen.core.checks import Verdict

PRE, POST = "prePromotion", "postPromotion"
PROMOTE, ABORT, RETRY = "bluegreen.dev/promote", "bluegreen.dev/abort", "bluegreen.dev/retry"
FAILED_COMMIT, FAILED_REASON = "bluegreen.dev/failed-commit", "bluegreen.dev/failed-reason"


def harness(*, pre: bool = True, post: bool = False, manual: bool = False, delay: int = 300) -> Harness:
    checks: dict[str, Any] = {}
    if pre:
        checks["prePromotion"] = [{"name": "smoke", "http": {"service": "shop-preview", "path": "/healthz"}}]
    if post:
        checks["postPromotion"] = [{"name": "healthz", "http": {"service": "shop", "path": "/healthz"},
                                    "durationSeconds": 30}]
    h = Harness(cluster=RecordingCluster(services=("shop", "shop-preview")), checks=FakeChecks())
    h.spec.update(previewService="shop-preview", checks=checks, scaleDownDelaySeconds=delay,
                  promotion={"mode": "Manual" if manual else "Auto"})
    return h


def fake(h: Harness) -> FakeChecks:
    assert isinstance(h.checks, FakeChecks)
    return h.checks


def settle(h: Harness, passes: int = 4) -> None:
    for _ in range(passes):
        h.run()
        h.cluster.roll_out()


def selects(h: Harness, service: str = "shop") -> str | None:
    return h.cluster.selectors[service].get("bluegreen.dev/color")


def release_through_pre(h: Harness, image: str) -> str:
    """Commit ``image`` and run passes until its pre-promotion check runs; return the commit."""
    sha = h.source.commit(image)
    h.check_git_now()
    settle(h)
    assert (PRE, sha, "smoke") in [(s[0], s[1], s[3]) for s in fake(h).started], "the pre-promotion check started"
    return sha


def first_release(h: Harness) -> str:
    sha = release_through_pre(h, "v1")
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    settle(h, 2)
    assert selects(h) == "blue" and h.cluster.status["activeRevision"] == sha
    return sha


def stalled(h: Harness) -> dict[str, Any]:
    return h.cluster.condition("Stalled")


def test_a_passing_pre_check_gates_the_switch() -> None:
    h = harness()
    sha = release_through_pre(h, "v1")
    assert "shop" not in [w[1] for w in h.cluster.writes if w[0] == "switch"], "no switch while the check runs"
    assert h.cluster.statuses() == ("False", "True", "False")
    assert h.cluster.condition("Reconciling")["reason"] == "PrePromotionChecks"
    [entry] = h.cluster.status["checks"]
    assert (entry["name"], entry["hook"], entry["commit"], entry["color"], entry["verdict"]) == \
        ("smoke", PRE, sha, "blue", "Running")
    mark = len(h.cluster.writes)
    h.run()
    assert h.writes_since(mark) == [], "a pass while the check runs writes nothing"
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    h.run()
    assert ("switch", "shop", "blue") in h.writes_since(mark)
    assert h.cluster.status["checks"][0]["verdict"] == "Passed"
    assert h.cluster.status["history"][0]["outcome"] == "Succeeded"


def test_a_failing_pre_check_scales_the_idle_colour_down_and_marks_the_commit() -> None:
    h = harness()
    first_release(h)
    v2 = release_through_pre(h, "v2")
    fake(h).finish(PRE, "smoke", Verdict.FAILED, "GET http://127.0.0.9:80/healthz: HTTP 500 (expected 2xx): boom")
    mark = len(h.cluster.writes)
    h.run()
    [(kind, name, replicas, annotations)] = [w for w in h.writes_since(mark) if w[0] != "annotate"]
    assert (kind, name, replicas) == ("scale", "shop-green", 0)
    assert (annotations[FAILED_COMMIT], annotations[FAILED_REASON]) == (v2, "PrePromotionCheckFailed")
    assert selects(h) == "blue", "traffic is never touched"
    assert h.cluster.statuses() == ("False", "False", "True")
    assert stalled(h)["reason"] == "PrePromotionCheckFailed"
    assert "'smoke'" in stalled(h)["message"] and "HTTP 500" in stalled(h)["message"]
    assert ("Warning", "PrePromotionCheckFailed") in [e[:2] for e in h.cluster.events]
    entry = h.cluster.status["history"][0]
    assert (entry["revision"], entry["outcome"], entry["reason"]) == (v2, "Failed", "PrePromotionCheckFailed")
    assert h.cluster.status["checks"][0]["verdict"] == "Failed", "what failed stays in status"
    h.cluster.roll_out()
    mark = len(h.cluster.writes)
    settle(h, 3)
    assert h.writes_since(mark) == [], "a failed commit is not tried again"
    assert stalled(h)["reason"] == "PrePromotionCheckFailed" and "HTTP 500" in stalled(h)["message"]
    assert [e[:2] for e in h.cluster.events].count(("Warning", "PrePromotionCheckFailed")) == 1, \
        "one Warning Event for the failure, not one more for the wait after it"


def test_retry_clears_the_mark_and_runs_the_checks_again() -> None:
    h = harness()
    first_release(h)
    v2 = release_through_pre(h, "v2")
    fake(h).finish(PRE, "smoke", Verdict.FAILED)
    settle(h, 2)
    h.cluster.annotations[RETRY] = "ffffffff"  # not the head: refused
    mark = len(h.cluster.writes)
    h.run()
    assert h.writes_since(mark) == [("annotate", "shop", {RETRY: None})]
    assert ("Warning", "RetryRefused") in [e[:2] for e in h.cluster.events]
    h.cluster.annotations[RETRY] = v2[:7]  # an abbreviation names the commit too
    mark = len(h.cluster.writes)
    h.run()
    writes = h.writes_since(mark)
    assert writes[0][:3] == ("scale", "shop-green", 2) and writes[0][3][FAILED_COMMIT] is None
    assert ("annotate", "shop", {RETRY: None}) in writes
    assert h.cluster.status["history"][0]["outcome"] == "InProgress"
    assert h.cluster.status["checks"] == [], "the failed results are gone"
    assert (PRE, v2, "green") in fake(h).rerun_of, "the runner forgets the run (a check Job is deleted)"
    started = len(fake(h).started)
    settle(h, 2)
    assert fake(h).started[started:] == [(PRE, v2, "green", "smoke")], "the check runs again"
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    h.run()
    assert selects(h) == "green"


def test_manual_promotion_waits_refuses_another_commit_and_switches_on_promote() -> None:
    h = harness(manual=True)
    release_through_pre(h, "v1")
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    settle(h, 2)
    status = h.cluster.status
    assert selects(h) is None and status["phase"] == "AwaitingPromotion"
    assert h.cluster.statuses() == ("False", "True", "False")
    assert h.cluster.condition("Reconciling")["reason"] == "AwaitingPromotion"
    sha = h.source.head[0] if h.source.head else ""
    assert status["awaitingPromotion"]["revision"] == sha and status["awaitingPromotion"]["color"] == "blue"
    assert selects(h, "shop-preview") == "blue", "the preview points at the waiting colour"
    assert [e[:2] for e in h.cluster.events].count(("Normal", "AwaitingPromotion")) == 1
    since = status["awaitingPromotion"]["since"]
    h.wait(10)
    h.run()
    assert h.cluster.status["awaitingPromotion"]["since"] == since

    h.cluster.annotations[PROMOTE] = "0" * 40
    mark = len(h.cluster.writes)
    h.run()
    assert h.writes_since(mark) == [("annotate", "shop", {PROMOTE: None})]
    refusal = next(e for e in h.cluster.events if e[1] == "PromoteRefused")
    assert refusal[0] == "Warning" and sha[:12] in refusal[2], "the refusal names the commit that waits"
    assert selects(h) is None

    h.cluster.annotations[PROMOTE] = sha
    mark = len(h.cluster.writes)
    h.run()
    assert h.writes_since(mark)[:2] == [("switch", "shop", "blue"), ("annotate", "shop", {PROMOTE: None})]
    assert h.cluster.status.get("awaitingPromotion") is None
    assert h.cluster.statuses() == ("True", "False", "False")

    h.run()  # the release is seen without the annotation
    h.cluster.annotations[PROMOTE] = sha  # again: it already serves
    h.run()
    assert [e[1] for e in h.cluster.events].count("PromoteRefused") == 2


def test_a_handled_request_acts_once_even_before_its_removal_is_seen() -> None:
    h = harness(manual=True)
    release_through_pre(h, "v1")
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    settle(h, 2)
    sha = h.cluster.status["awaitingPromotion"]["revision"]
    h.cluster.annotations[PROMOTE] = sha
    h.run()
    body_with_old_annotation = {**h.cluster.annotations, PROMOTE: sha}
    h.cluster.annotations.update(body_with_old_annotation)  # the removal's watch event is late
    mark, events = len(h.cluster.writes), len(h.cluster.events)
    h.run()
    assert h.writes_since(mark) == [] and len(h.cluster.events) == events, "not refused a second time"


def test_abort_before_the_switch_scales_down_and_marks_aborted() -> None:
    h = harness(manual=True)
    first = release_through_pre(h, "v1")
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    settle(h, 2)
    h.cluster.annotations[PROMOTE] = first
    settle(h, 2)
    v2 = release_through_pre(h, "v2")
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    settle(h, 2)
    assert h.cluster.status["phase"] == "AwaitingPromotion"
    h.cluster.annotations[ABORT] = v2
    mark = len(h.cluster.writes)
    h.run()
    writes = h.writes_since(mark)
    assert writes[0][:3] == ("scale", "shop-green", 0) and writes[0][3][FAILED_REASON] == "Aborted"
    assert ("annotate", "shop", {ABORT: None}) in writes
    assert selects(h) == "blue"
    assert stalled(h)["reason"] == "Aborted"
    entry = h.cluster.status["history"][0]
    assert (entry["revision"], entry["outcome"], entry["reason"]) == (v2, "Aborted", "Aborted")


def test_abort_with_nothing_under_way_is_refused_and_changes_nothing() -> None:
    h = harness()
    sha = first_release(h)
    h.cluster.annotations[ABORT] = sha
    mark = len(h.cluster.writes)
    h.run()
    assert h.writes_since(mark) == [("annotate", "shop", {ABORT: None})]
    assert ("Warning", "AbortRefused") in [e[:2] for e in h.cluster.events]
    assert selects(h) == "blue"


def post_release(h: Harness) -> tuple[str, str]:
    """v1 serves on blue, v2 was just switched to green and its post-promotion check runs."""
    v1 = first_release(h)
    assert not [s for s in fake(h).started if s[0] == POST], "no post-promotion check without a colour to go back to"
    v2 = release_through_pre(h, "v2")
    fake(h).finish(PRE, "smoke", Verdict.PASSED)
    h.run()
    assert selects(h) == "green"
    assert (POST, v2, "green", "healthz") in fake(h).started
    return v1, v2


def test_a_failing_post_check_switches_back_marking_first_then_scales_the_failed_colour_down() -> None:
    h = harness(post=True)
    v1, v2 = post_release(h)
    assert h.cluster.condition("Reconciling")["reason"] == "PostPromotionChecks"
    fake(h).finish(POST, "healthz", Verdict.FAILED, "GET http://127.0.0.5:80/healthz: HTTP 503: unhealthy")
    mark = len(h.cluster.writes)
    h.run()
    writes = h.writes_since(mark)
    assert [w[:3] for w in writes] == [("scale", "shop-green", 2), ("switch", "shop", "blue"),
                                       ("scale", "shop-green", 0)], "mark, switch back, then scale down"
    assert (writes[0][3][FAILED_COMMIT], writes[0][3][FAILED_REASON]) == (v2, "PostPromotionCheckFailed")
    entry = h.cluster.status["history"][0]
    assert (entry["revision"], entry["outcome"], entry["reason"]) == (v2, "RolledBack", "PostPromotionCheckFailed")
    assert h.cluster.status["activeColor"] == "blue" and h.cluster.status["activeRevision"] == v1
    message = stalled(h)["message"]
    assert stalled(h)["reason"] == "PostPromotionCheckFailed"
    assert f"Git's head (commit {v2[:12]}) is not what serves" in message and f"blue serves commit {v1[:12]}" in message
    assert "revert it in git or push a fix" in message
    assert ("Warning", "PostPromotionCheckFailed") in [e[:2] for e in h.cluster.events]
    assert h.cluster.statuses()[0] == "False"


def test_the_previous_colour_stays_warm_until_the_post_checks_pass_past_its_delay() -> None:
    h = harness(post=True, delay=0)
    post_release(h)
    h.wait(400)
    mark = len(h.cluster.writes)
    h.run()
    assert h.writes_since(mark) == [], "no scale-down while the post-promotion check runs"
    assert h.cluster.statuses() == ("True", "True", "False")
    fake(h).finish(POST, "healthz", Verdict.PASSED)
    h.run()
    assert h.writes_since(mark)[0][:3] == ("scale", "shop-blue", 0)


def test_abort_during_the_post_promotion_window_switches_back_at_once() -> None:
    h = harness(post=True)
    _, v2 = post_release(h)
    h.cluster.annotations[ABORT] = v2
    mark = len(h.cluster.writes)
    h.run()
    assert [w[:3] for w in h.writes_since(mark)][:2] == [("scale", "shop-green", 2), ("switch", "shop", "blue")]
    entry = h.cluster.status["history"][0]
    assert (entry["outcome"], entry["reason"]) == ("RolledBack", "Aborted")


def test_a_crash_between_the_mark_and_the_switch_back_cannot_promote_again() -> None:
    h = harness(post=True)
    _, v2 = post_release(h)
    annotations = h.cluster.deployments["shop-green"]["metadata"]["annotations"]
    annotations.update({FAILED_COMMIT: v2, FAILED_REASON: "PostPromotionCheckFailed"})  # the mark got written
    h.run()
    assert selects(h) == "blue"
    assert h.cluster.deployments["shop-green"]["spec"]["replicas"] == 0


def test_a_warm_revert_passes_no_gate() -> None:
    h = harness(post=True)
    post_release(h)
    fake(h).finish(POST, "healthz", Verdict.PASSED)
    h.run()
    started = len(fake(h).started)
    h.source.commit("v1")  # git revert: blue still runs v1's template and is warm
    h.check_git_now()
    mark = len(h.cluster.writes)
    h.run()
    assert ("switch", "shop", "blue") in h.writes_since(mark)
    assert fake(h).started[started:] == [], "no pre- or post-promotion check for a warm rollback"
    assert h.cluster.status["history"][0]["outcome"] == "RolledBack"


def test_a_newer_commit_supersedes_the_one_under_check() -> None:
    h = harness()
    first_release(h)
    release_through_pre(h, "v2")
    cancelled = len(fake(h).cancelled)
    v3 = h.source.commit("v3")
    h.check_git_now()
    h.run()
    assert len(fake(h).cancelled) > cancelled, "the checks of v2 are cancelled"
    settle(h, 3)
    assert (PRE, v3, "green", "smoke") in fake(h).started


@pytest.mark.parametrize("job_runner", [False])
def test_a_job_check_without_a_job_runner_fails_the_release(job_runner: bool) -> None:
    h = Harness(cluster=RecordingCluster(services=("shop",)))
    h.spec.update(checks={"prePromotion": [{"name": "e2e", "job": {"path": "checks/job.yaml"}}]})
    h.source.files["checks/job.yaml"] = JOB
    h.source.commit("v1")
    h.check_git_now()
    settle(h)
    assert stalled(h)["reason"] == "PrePromotionCheckFailed"
    assert "no Job check runner" in stalled(h)["message"]
    assert h.cluster.status["checks"][0]["reason"] == "JobChecksUnavailable"


JOB = b"""apiVersion: batch/v1
kind: Job
metadata: {name: smoke}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: smoke, image: local/python:3, command: [python3, -c, "pass"]}]
"""


def test_a_missing_check_job_file_holds_the_commit_back_and_traffic_stays() -> None:
    h = harness()
    first_release(h)
    h.spec.update(checks={"prePromotion": [{"name": "e2e", "job": {"path": "checks/job.yaml"}}]})
    h.generation += 1
    mark = len(h.cluster.writes)
    h.source.commit("v2")
    h.check_git_now()
    settle(h, 2)
    assert h.writes_since(mark) == [], "nothing is applied while the commit's Job manifest is missing"
    source = h.cluster.condition("SourceReady")
    assert (source["status"], source["reason"]) == ("False", "InvalidJobManifest")
    assert "checks/job.yaml" in source["message"]
    assert selects(h) == "blue"


def test_after_a_restart_what_failed_stays_in_status_and_the_commit_stays_failed() -> None:
    h = harness()
    first_release(h)
    v2 = release_through_pre(h, "v2")
    fake(h).finish(PRE, "smoke", Verdict.FAILED, "HTTP 500: boom")
    settle(h, 2)
    restarted = Harness(cluster=h.cluster, source=h.source, now=h.now, monotonic=h.monotonic, spec=h.spec,
                        checks=FakeChecks())
    restarted.check_git_now()
    mark = len(h.cluster.writes)
    settle(restarted, 2)
    assert h.cluster.writes[mark:] == [], "nothing is retried after a restart"
    [entry] = h.cluster.status["checks"]
    assert (entry["commit"], entry["verdict"], entry["message"]) == (v2, "Failed", "HTTP 500: boom")
    assert stalled(h)["reason"] == "PrePromotionCheckFailed" and "HTTP 500: boom" in stalled(h)["message"]
    assert fake(restarted).started == []


def test_a_deleted_release_cancels_its_checks() -> None:
    h = harness()
    release_through_pre(h, "v1")
    h.reconciler.forget("shop", "shop")
    assert fake(h).cancelled[-1] == ("shop", None) and fake(h).runs == {}
