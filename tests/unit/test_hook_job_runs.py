"""Unit tests of the hook-Job runners (bluegreen.hooks.hook_jobs, bluegreen.hooks.job_checks) and the Jobs of the
view, over an in-memory JobCluster that keeps its Jobs in a real ClusterView (the e2e tests run real Jobs)."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bluegreen.core.checks import CheckRun, CheckSpec, Hook, HttpProbe, JobProbe, Verdict
from bluegreen.core.errors import ClusterError
from bluegreen.core.hook_jobs import HookJobRun
from bluegreen.core.job_status import JobRecord
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.hooks.hook_jobs import DEADLINE_GRACE, HookJobs
from bluegreen.hooks.job_checks import JobCheckRunner
from bluegreen.kube.view import ClusterView

SHA1, SHA2, SHA3, SHA4 = (c * 40 for c in "1234")
SHOP = ReleaseRef("ns", "shop", "uid-shop")
MANIFEST: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
    "containers": [{"name": "c", "image": "local/python:3"}]}}}}


class Jobs:
    """A JobCluster: Jobs kept in a real ClusterView; the test plays the Job controller and the watch."""

    def __init__(self) -> None:
        self.view = ClusterView()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.logs: dict[str, str | None] = {}
        self.log_reads: list[str] = []
        self.refuse: ClusterError | None = None
        self.log_error: Exception | None = None
        self._versions = itertools.count(1)
        self._seconds = itertools.count(0)
        self.now = datetime.now(UTC).replace(microsecond=0)
        """Jobs are created from this moment on, one second apart (a runner's clock may run from it)."""

    # the Protocol
    def job(self, namespace: str, name: str) -> JobRecord | None:
        return self.view.job(namespace, name)

    def release_jobs(self, namespace: str, release: str) -> Sequence[JobRecord]:
        return self.view.release_jobs(namespace, release)

    def create_job(self, body: Mapping[str, Any]) -> JobRecord:
        if self.refuse is not None:
            raise self.refuse
        name = body["metadata"]["name"]
        if name not in self.bodies:  # else: AlreadyExists, the same run
            self.created.append(name)
            stored = copy.deepcopy(dict(body))
            created = self.now + timedelta(seconds=next(self._seconds))
            stored["metadata"].update(uid=f"uid-{name}-{len(self.created)}",
                                      creationTimestamp=created.strftime("%Y-%m-%dT%H:%M:%SZ"))
            self.bodies[name] = stored
            self._store(name)
        record = self.view.job(body["metadata"]["namespace"], name)
        assert record is not None
        return record

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)

    def job_log_tail(self, job: JobRecord, lines: int) -> str | None:
        self.log_reads.append(job.name)
        if self.log_error is not None:
            raise self.log_error
        assert lines == 20
        return self.logs.get(job.name)

    # the Job controller and the watch
    def _store(self, name: str) -> None:
        self.bodies[name]["metadata"]["resourceVersion"] = str(next(self._versions))
        self.view.observe_job(self.bodies[name])

    def finish(self, name: str, kind: str = "Complete", reason: str = "") -> None:
        self.bodies[name]["status"] = {"conditions": [{"type": kind, "status": "True", "reason": reason}]}
        self._store(name)

    def gone(self, name: str) -> JobRecord | None:
        body = self.bodies.pop(name)
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        return self.view.job_gone(body)


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


class Wakes(list[ReleaseRef]):
    def __call__(self, release: ReleaseRef) -> None:
        self.append(release)


def run(commit: str = SHA1, color: Color = Color.GREEN, hook: str = "prePromotion", check: str | None = "smoke",
        release: ReleaseRef = SHOP) -> HookJobRun:
    return HookJobRun(release, hook, commit, color, check, "shop-preview")


# ---- HookJobs -----------------------------------------------------------------------------------------------
def test_ensure_creates_the_job_once_and_reports_it_running(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    assert hook_jobs.outcome(run()) is None, "not started"
    first = hook_jobs.ensure(run(), MANIFEST, timeout_seconds=30)
    second = hook_jobs.ensure(run(), MANIFEST, timeout_seconds=30)
    assert jobs.created == ["shop-pre-smoke-1111111111-green"]
    assert first == second and first.verdict is Verdict.RUNNING and first.reason == "Running"
    assert first.job == "shop-pre-smoke-1111111111-green"
    assert first.message == "Job shop-pre-smoke-1111111111-green: running: 0 active, 0 succeeded, 0 failed"
    body = jobs.bodies[first.job]
    assert body["spec"]["activeDeadlineSeconds"] == 30
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-shop"
    assert hook_jobs.outcome(run()) == first


def test_no_owner_reference_without_the_release_uid_or_when_turned_off(jobs: Jobs) -> None:
    HookJobs(jobs, Wakes()).ensure(run(release=ReleaseRef("ns", "shop")), MANIFEST)
    HookJobs(jobs, Wakes(), owners=False).ensure(run(SHA2), MANIFEST)
    assert all("ownerReferences" not in body["metadata"] for body in jobs.bodies.values())


def test_a_new_runner_adopts_the_job_of_an_earlier_one(jobs: Jobs) -> None:
    HookJobs(jobs, Wakes()).ensure(run(), MANIFEST)
    restarted = HookJobs(jobs, Wakes())
    assert restarted.outcome(run()) is not None, "read from the view"
    jobs.finish("shop-pre-smoke-1111111111-green")
    outcome = restarted.ensure(run(), MANIFEST)
    assert outcome.verdict is Verdict.PASSED and outcome.reason == "Passed"
    assert outcome.message == "Job shop-pre-smoke-1111111111-green completed"
    assert jobs.created == ["shop-pre-smoke-1111111111-green"], "a finished run is not run again"


def test_a_job_of_that_name_for_another_commit_is_not_the_runs(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    hook_jobs.ensure(run(), MANIFEST)
    jobs.bodies["shop-pre-smoke-1111111111-green"]["metadata"]["annotations"]["bluegreen.dev/commit"] = SHA2
    jobs._store("shop-pre-smoke-1111111111-green")
    assert hook_jobs.outcome(run()) is None


def test_a_failure_names_the_job_and_quotes_its_log_read_once(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    name = hook_jobs.ensure(run(), MANIFEST).job
    jobs.logs[name] = "step 1\nAssertionError: 500\n"
    jobs.finish(name, "Failed", "BackoffLimitExceeded")
    outcome = hook_jobs.outcome(run())
    assert outcome is not None and outcome.verdict is Verdict.FAILED and outcome.reason == "JobFailed"
    assert outcome.message == (f"Job {name} failed (BackoffLimitExceeded); the last lines of its pod's log:\n"
                               "step 1\nAssertionError: 500")
    assert hook_jobs.outcome(run()) == outcome
    assert hook_jobs.ensure(run(), MANIFEST) == outcome
    assert jobs.log_reads == [name], "read once per failed Job"


def test_a_deadline_without_a_log(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    name = hook_jobs.ensure(run(), MANIFEST).job
    jobs.finish(name, "Failed", "DeadlineExceeded")
    outcome = hook_jobs.outcome(run())
    assert outcome is not None and outcome.reason == "JobDeadlineExceeded"
    assert outcome.message == f"Job {name} failed (DeadlineExceeded)"
    hook_jobs.outcome(run())
    assert jobs.log_reads == [name], "no log is an answer too"


def test_a_long_log_keeps_its_end(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    name = hook_jobs.ensure(run(), MANIFEST).job
    jobs.logs[name] = "x" * 3000 + "END\n"
    jobs.finish(name, "Failed", "BackoffLimitExceeded")
    outcome = hook_jobs.outcome(run())
    assert outcome is not None and outcome.message.endswith("x" * 1997 + "END")
    assert len(outcome.message.split("\n", 1)[1]) == 2000


def test_a_log_that_cannot_be_read_is_tried_again(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    name = hook_jobs.ensure(run(), MANIFEST).job
    jobs.finish(name, "Failed", "BackoffLimitExceeded")
    jobs.log_error = TimeoutError("read timed out")
    first = hook_jobs.outcome(run())
    assert first is not None and first.message == f"Job {name} failed (BackoffLimitExceeded)"
    jobs.log_error = None
    jobs.logs[name] = "boom\n"
    second = hook_jobs.outcome(run())
    assert second is not None and second.message.endswith("log:\nboom")
    assert jobs.log_reads == [name, name]


def test_a_refused_job_fails_the_run_and_is_not_created_again(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    jobs.refuse = ClusterError("InvalidJobManifest", "the API server refused Job 'x': bad")
    outcome = hook_jobs.ensure(run(), MANIFEST)
    assert (outcome.verdict, outcome.reason, outcome.message) == (
        Verdict.FAILED, "InvalidJobManifest", "the API server refused Job 'x': bad")
    jobs.refuse = None
    assert hook_jobs.ensure(run(), MANIFEST) == outcome and hook_jobs.outcome(run()) == outcome
    assert jobs.created == []
    hook_jobs.rerun(run())
    assert hook_jobs.ensure(run(), MANIFEST).verdict is Verdict.RUNNING, "a rerun forgets the refusal"


def test_other_errors_reach_the_caller(jobs: Jobs) -> None:
    class Down(Jobs):
        def create_job(self, body: Mapping[str, Any]) -> JobRecord:
            raise ConnectionError("API server unreachable")

    with pytest.raises(ConnectionError):
        HookJobs(Down(), Wakes()).ensure(run(), MANIFEST)


def test_cancel_deletes_the_unfinished_jobs_of_other_runs_of_the_given_hooks(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    keep = hook_jobs.ensure(run(SHA2), MANIFEST).job
    older = hook_jobs.ensure(run(SHA1), MANIFEST).job
    done = hook_jobs.ensure(run(SHA1, check="e2e"), MANIFEST).job
    migration = hook_jobs.ensure(run(SHA1, hook="expand", check=None), MANIFEST).job
    other_release = hook_jobs.ensure(run(SHA1, release=ReleaseRef("ns", "cart")), MANIFEST).job
    jobs.finish(done)
    deleted = hook_jobs.cancel(SHOP, hooks=frozenset({"prePromotion"}), keep=lambda r: r.commit == SHA2)
    assert deleted == [older] and jobs.deleted == [older]
    assert keep not in jobs.deleted and migration not in jobs.deleted and other_release not in jobs.deleted
    assert hook_jobs.outcome(run(SHA1)) is None, "a cancelled run is not started any more"
    assert hook_jobs.cancel(SHOP, hooks=frozenset({"prePromotion"}), keep=lambda r: r.commit == SHA2) == [], \
        "deleted once"


def test_a_cancelled_run_started_again_waits_for_its_job_to_go(jobs: Jobs) -> None:
    wakes = Wakes()
    hook_jobs = HookJobs(jobs, wakes)
    name = hook_jobs.ensure(run(), MANIFEST).job
    hook_jobs.cancel(SHOP, hooks=frozenset({"prePromotion"}), keep=lambda r: False)
    waiting = hook_jobs.ensure(run(), MANIFEST)
    assert (waiting.verdict, waiting.reason) == (Verdict.RUNNING, "Waiting")
    assert jobs.created == [name]
    gone = jobs.gone(name)
    assert gone is not None
    hook_jobs.gone(gone)
    assert wakes == [ReleaseRef("ns", "shop")]
    assert hook_jobs.ensure(run(), MANIFEST).reason == "Running"
    assert jobs.created == [name, name], "created anew"


def test_rerun_deletes_a_finished_run_so_that_it_runs_again(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    name = hook_jobs.ensure(run(), MANIFEST).job
    jobs.finish(name, "Failed", "BackoffLimitExceeded")
    hook_jobs.rerun(run())
    assert jobs.deleted == [name]
    assert hook_jobs.outcome(run()) is None
    hook_jobs.rerun(run())
    assert jobs.deleted == [name], "deleted once"
    hook_jobs.rerun(run(SHA2))
    assert jobs.deleted == [name], "nothing to delete"


def test_cleanup_keeps_the_newest_finished_runs_of_each_hook(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes(), keep_runs=2)
    unfinished = hook_jobs.ensure(run(SHA1, color=Color.BLUE), MANIFEST).job
    names = {}
    for sha in (SHA2, SHA3):
        for check in ("smoke", "e2e"):
            names[sha, check] = hook_jobs.ensure(run(sha, check=check), MANIFEST).job
            jobs.finish(names[sha, check])
    assert jobs.deleted == [], "an unfinished run counts as a run but is never deleted by the cleanup"
    migration = hook_jobs.ensure(run(SHA1, hook="expand", check=None), MANIFEST).job
    jobs.finish(migration)
    hook_jobs.ensure(run(SHA4), MANIFEST)  # runs now: SHA1/blue (unfinished), SHA2, SHA3, SHA4
    assert sorted(jobs.deleted) == sorted([names[SHA2, "smoke"], names[SHA2, "e2e"]]), \
        "beyond the two newest runs of prePromotion, every finished Job goes"
    assert migration not in jobs.deleted and unfinished not in jobs.deleted
    jobs.deleted.clear()
    for name in (names[SHA2, "smoke"], names[SHA2, "e2e"]):
        gone = jobs.gone(name)
        assert gone is not None
        hook_jobs.gone(gone)
    hook_jobs.ensure(run(SHA4, check="e2e"), MANIFEST)
    assert jobs.deleted == [], "deleted once; the Jobs of a run count once"
    hook_jobs.ensure(run(SHA1, color=Color.GREEN), MANIFEST)  # runs: SHA1/blue, SHA3, SHA4, SHA1/green
    assert sorted(jobs.deleted) == sorted([names[SHA3, "smoke"], names[SHA3, "e2e"]])
    with pytest.raises(ValueError):
        HookJobs(jobs, Wakes(), keep_runs=0)


def test_the_watch_wakes_the_release_when_a_verdict_changes(jobs: Jobs) -> None:
    wakes = Wakes()
    hook_jobs = HookJobs(jobs, wakes)
    name = hook_jobs.ensure(run(), MANIFEST).job
    hook_jobs.observed("ns", name)
    assert wakes == [ReleaseRef("ns", "shop")], "a new Job"
    jobs.bodies[name]["status"] = {"active": 1}
    jobs._store(name)
    hook_jobs.observed("ns", name)
    assert len(wakes) == 1, "still running: no change of verdict"
    jobs.finish(name, "Failed", "DeadlineExceeded")
    hook_jobs.observed("ns", name)
    hook_jobs.observed("ns", name)
    assert len(wakes) == 2
    hook_jobs.observed("ns", "not-in-the-view")
    assert len(wakes) == 2


# ---- JobCheckRunner -----------------------------------------------------------------------------------------
def check(name: str, path: str | None = "checks/job.yaml", hook: Hook = Hook.PRE_PROMOTION) -> CheckSpec:
    if path is None:
        return CheckSpec(name, hook, http=HttpProbe(service="shop-preview"))
    return CheckSpec(name, hook, job=JobProbe(path), timeout_seconds=120)


CHECK_RUN = CheckRun(SHOP, Hook.PRE_PROMOTION, SHA1, Color.GREEN, "shop-preview")


def test_the_check_runner_runs_the_job_checks_only(jobs: Jobs) -> None:
    runner = JobCheckRunner(HookJobs(jobs, Wakes()))
    checks = [check("smoke"), check("http", path=None), check("missing", path="checks/gone.yaml")]
    assert runner.results(CHECK_RUN, checks) == {}
    results = runner.ensure(CHECK_RUN, checks, {"checks/job.yaml": MANIFEST})
    assert set(results) == {"smoke", "missing"}
    smoke = results["smoke"]
    assert (smoke.name, smoke.verdict, smoke.reason) == ("smoke", Verdict.RUNNING, "Running")
    assert smoke.message.startswith("check 'smoke': Job shop-pre-smoke-1111111111-green: running")
    missing = results["missing"]
    assert (missing.verdict, missing.reason) == (Verdict.FAILED, "InvalidJobManifest")
    assert "'checks/gone.yaml' was not read from commit 1111111" in missing.message
    body = jobs.bodies["shop-pre-smoke-1111111111-green"]
    assert body["spec"]["activeDeadlineSeconds"] == 120
    env = {v["name"]: v["value"] for v in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BLUEGREEN_PREVIEW_SERVICE"] == "shop-preview" and env["BLUEGREEN_COLOR"] == "green"
    assert set(runner.results(CHECK_RUN, checks)) == {"smoke"}, "results start nothing and skip unstarted checks"
    jobs.finish("shop-pre-smoke-1111111111-green")
    passed = runner.results(CHECK_RUN, checks)["smoke"]
    assert passed.verdict is Verdict.PASSED and passed.finished_at is None and passed.message == (
        "check 'smoke': Job shop-pre-smoke-1111111111-green completed")


def test_the_check_runner_cancels_check_jobs_only_and_keeps_the_given_run(jobs: Jobs) -> None:
    hook_jobs = HookJobs(jobs, Wakes())
    runner = JobCheckRunner(hook_jobs)
    runner.ensure(CHECK_RUN, [check("smoke")], {"checks/job.yaml": MANIFEST})
    other_colour = CheckRun(SHOP, Hook.PRE_PROMOTION, SHA1, Color.BLUE)
    post = CheckRun(SHOP, Hook.POST_PROMOTION, SHA1, Color.GREEN)
    runner.ensure(other_colour, [check("smoke")], {"checks/job.yaml": MANIFEST})
    runner.ensure(post, [check("smoke", hook=Hook.POST_PROMOTION)], {"checks/job.yaml": MANIFEST})
    migration = hook_jobs.ensure(run(hook="expand", check=None), MANIFEST).job
    runner.cancel(SHOP, keep=CHECK_RUN)
    assert sorted(jobs.deleted) == ["shop-post-smoke-1111111111-green", "shop-pre-smoke-1111111111-blue"]
    assert migration not in jobs.deleted
    runner.cancel(SHOP)
    assert jobs.deleted[-1] == "shop-pre-smoke-1111111111-green"


def test_the_check_runner_reruns_a_runs_job_checks(jobs: Jobs) -> None:
    runner = JobCheckRunner(HookJobs(jobs, Wakes()))
    checks = [check("smoke"), check("http", path=None)]
    runner.ensure(CHECK_RUN, checks, {"checks/job.yaml": MANIFEST})
    runner.rerun(CHECK_RUN, checks)
    assert jobs.deleted == ["shop-pre-smoke-1111111111-green"]


# ---- the view's Jobs ----------------------------------------------------------------------------------------
def job_body(name: str, release: str | None, version: int, created: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    labels = {"bluegreen.dev/release": release} if release else {}
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": str(version),
                         "creationTimestamp": created, "labels": labels}}


def test_the_view_indexes_jobs_by_release_oldest_first() -> None:
    view = ClusterView()
    assert view.observe_job(job_body("b", "shop", 1, "2026-12-01T10:00:05Z"))
    assert view.observe_job(job_body("a", "shop", 2, "2026-12-01T10:00:05Z"))
    assert view.observe_job(job_body("c", "shop", 3, "2026-12-01T10:00:01Z"))
    assert view.observe_job(job_body("d", "cart", 4))
    assert not view.observe_job(job_body("e", None, 5)), "not ours"
    assert [r.name for r in view.release_jobs("ns", "shop")] == ["c", "a", "b"]
    assert not view.observe_job(job_body("a", "shop", 1)), "an older version changes nothing"
    assert view.observe_job(job_body("a", "cart", 6)), "relabelled"
    assert [r.name for r in view.release_jobs("ns", "shop")] == ["c", "b"]
    assert [r.name for r in view.release_jobs("ns", "cart")] == ["a", "d"]
    assert view.observe_job(job_body("b", None, 7)), "lost the label"
    gone = view.job_gone(job_body("c", "shop", 8))
    assert gone is not None and gone.name == "c"
    assert view.release_jobs("ns", "shop") == [] and view.job("ns", "c") is None
    assert view.job_gone(job_body("c", "shop", 9)) is None, "gone already"
    assert not view.observe_job(job_body("c", "shop", 8)), "a stale body does not bring it back"
    assert view.release_jobs("other", "cart") == []


def test_a_job_still_running_past_its_timeout_and_the_grace_fails_and_wakes_its_release(jobs: Jobs) -> None:
    """The backstop for a Job controller that misses activeDeadlineSeconds (kube-controller-manager 1.20)."""
    clock = [jobs.now]
    wakes = Wakes()
    hook_jobs = HookJobs(jobs, wakes, clock=lambda: clock[0])
    first = hook_jobs.ensure(run(), MANIFEST, timeout_seconds=1.5)
    assert first.verdict is Verdict.RUNNING
    assert hook_jobs._timers == {("ns", first.job)}, "a timer wakes the release when the time is up"
    clock[0] = jobs.now + timedelta(seconds=2 + DEADLINE_GRACE - 0.1)  # the timeout rounds up, as the Job's does
    assert hook_jobs.outcome(run(), timeout_seconds=1.5).verdict is Verdict.RUNNING  # type: ignore[union-attr]
    assert hook_jobs.outcome(run()).verdict is Verdict.RUNNING, "no timeout given: the Job's own word"  # type: ignore[union-attr]
    clock[0] = jobs.now + timedelta(seconds=2 + DEADLINE_GRACE)
    late = hook_jobs.outcome(run(), timeout_seconds=1.5)
    assert late is not None and (late.verdict, late.reason) == (Verdict.FAILED, "JobDeadlineExceeded")
    assert "DeadlineExceeded" in late.message and "timeoutSeconds of 1.5 s" in late.message and late.job in late.message
    assert hook_jobs.ensure(run(), MANIFEST, timeout_seconds=1.5) == late, "ensure says the same, creates nothing"
    assert jobs.created == [first.job]


def test_the_deadline_timer_wakes_the_release(jobs: Jobs) -> None:
    wakes = Wakes()
    clock = [jobs.now + timedelta(seconds=1 + DEADLINE_GRACE - 0.2)]  # 0.2 s before the time is up
    hook_jobs = HookJobs(jobs, wakes, clock=lambda: clock[0])
    hook_jobs.ensure(run(), MANIFEST, timeout_seconds=1)
    deadline = time.monotonic() + 5
    while not wakes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(w.namespace, w.name) for w in wakes] == [("ns", "shop")] and hook_jobs._timers == set()
