"""Reconcile passes with expand/contract migrations, against the recording cluster and the real hook-Job runner
(``HookJobs``) over an in-memory JobCluster: the Job is created before the colour, the contract after the last
pod, retries, rollbacks, a restart, status.migrations, Events and history; and what a pass costs."""

from __future__ import annotations

from typing import Any

from fake_jobs import FakeJobs
from recording_cluster import Harness, RecordingCluster

from bluegreen.core.spec import ReleaseRef
from bluegreen.hooks.hook_jobs import HookJobs

EXPAND_JOB = b"""apiVersion: batch/v1
kind: Job
metadata: {name: expand}
spec:
  template:
    spec:
      containers: [{name: migrate, image: local/python:3, command: [python3, -c, "print('expand')"]}]
"""
CONTRACT_JOB = EXPAND_JOB.replace(b"expand", b"contract")
EXPAND_ANNOTATION = "bluegreen.dev/expand-job"


class Wakes(list[ReleaseRef]):
    def __call__(self, release: ReleaseRef) -> None:
        self.append(release)


def harness(*, delay: int = 60, contract: bool = True) -> tuple[Harness, FakeJobs]:
    h = Harness(cluster=RecordingCluster())
    jobs = FakeJobs(lambda: h.now)
    hook_jobs = HookJobs(jobs, Wakes(), clock=lambda: h.now)
    jobs.on_gone = hook_jobs.gone
    h.hook_jobs = hook_jobs
    h.__post_init__()  # rebuild the reconciler with the runner
    migrations: dict[str, Any] = {"expand": {"path": "db/expand.yaml"}}
    h.source.files["db/expand.yaml"] = EXPAND_JOB
    if contract:
        migrations["contract"] = {"path": "db/contract.yaml", "timeoutSeconds": 60}
        h.source.files["db/contract.yaml"] = CONTRACT_JOB
    h.spec.update(migrations=migrations, scaleDownDelaySeconds=delay)
    return h, jobs


def settle(h: Harness, passes: int = 4) -> None:
    for _ in range(passes):
        h.run()
        h.cluster.roll_out()


def job(jobs: FakeJobs, phase: str, sha: str, color: str) -> str:
    name = f"shop-{phase}-{sha[:10]}-{color}"
    assert name in jobs.bodies, (name, list(jobs.bodies))
    return name


def condition(h: Harness, kind: str) -> tuple[str, str]:
    found = h.cluster.condition(kind)
    return found["status"], found["reason"]


def first_release(h: Harness, jobs: FakeJobs) -> str:
    sha = h.source.commit("v1")
    h.check_git_now()
    h.run()
    jobs.finish(job(jobs, "expand", sha, "blue"))
    settle(h)
    jobs.finish(job(jobs, "contract", sha, "blue"))
    settle(h, 2)
    assert h.cluster.status["activeRevision"] == sha and h.cluster.statuses() == ("True", "False", "False")
    return sha


def test_the_expand_runs_before_the_first_colour_and_the_contract_after_it_serves() -> None:
    h, jobs = harness()
    sha = h.source.commit("v1")
    h.check_git_now()
    h.run()
    expand = job(jobs, "expand", sha, "blue")
    assert jobs.created == [expand] and h.cluster.deployments == {}, "the Job first, no Deployment yet"
    assert condition(h, "Reconciling") == ("True", "ExpandRunning")
    [entry] = h.cluster.status["migrations"]
    assert (entry["phase"], entry["commit"], entry["color"], entry["job"], entry["verdict"]) == \
        ("expand", sha, "blue", expand, "Running")
    assert [e[:2] for e in h.cluster.events] == [("Normal", "ExpandRunning")]
    assert f"Job {expand} created" in h.cluster.events[0][2]
    mark, events = len(h.cluster.writes), len(h.cluster.events)
    settle(h, 2)
    assert h.writes_since(mark) == [] and len(h.cluster.events) == events and jobs.created == [expand]

    jobs.finish(expand)
    h.run()
    applied = h.cluster.deployments["shop-blue"]
    uid = jobs.bodies[expand]["metadata"]["uid"]
    assert applied["metadata"]["annotations"][EXPAND_ANNOTATION] == uid, "the colour records the expand it follows"
    settle(h, 3)
    contract = job(jobs, "contract", sha, "blue")
    assert h.cluster.selectors["shop"]["bluegreen.dev/color"] == "blue"
    assert h.cluster.pod_counts == [], "a first release has no previous colour to count"
    assert condition(h, "Ready") == ("True", "ContractRunning") and condition(h, "Reconciling")[0] == "True"
    jobs.finish(contract)
    settle(h, 2)
    assert h.cluster.statuses() == ("True", "False", "False")
    assert [(e["phase"], e["verdict"]) for e in h.cluster.status["migrations"]] == \
        [("expand", "Passed"), ("contract", "Passed")]
    assert h.cluster.status["history"][0]["outcome"] == "Succeeded"
    mark, patches = len(h.cluster.writes), len(h.cluster.status_patches)
    settle(h, 3)
    assert (h.writes_since(mark), len(h.cluster.status_patches), len(jobs.created)) == ([], patches, 2)
    assert h.cluster.pod_counts == [], "a settled release makes no API request"


def test_the_contract_waits_for_the_last_pod_of_the_previous_colour() -> None:
    h, jobs = harness(delay=60)
    first_release(h, jobs)
    v2 = h.source.commit("v2")
    h.check_git_now()
    h.run()
    assert "shop-green" not in h.cluster.deployments
    jobs.finish(job(jobs, "expand", v2, "green"))
    settle(h, 3)
    assert h.cluster.selectors["shop"]["bluegreen.dev/color"] == "green"
    assert h.cluster.pod_counts == [], "no count while blue is warm"
    h.wait(61)
    h.run()  # scales blue to 0; its Deployment still reports 3 pods
    assert h.cluster.deployments["shop-blue"]["spec"]["replicas"] == 0
    assert condition(h, "Reconciling") == ("True", "WaitingForOldPods") and h.cluster.pod_counts == []
    h.cluster.roll_out()  # the Deployment reports 0; two pods are still terminating
    h.cluster.pods["blue"] = 2
    due = h.run()
    assert h.cluster.pod_counts == ["blue"] and due == 1.0
    assert "2 of its pods are still terminating" in h.cluster.condition("Reconciling")["message"]
    assert not [n for n in jobs.created if "contract" in n and v2[:10] in n]
    h.cluster.pods["blue"] = 0
    h.run()
    contract = job(jobs, "contract", v2, "green")
    assert h.cluster.pod_counts == ["blue", "blue"], "one count per pass while waiting, none after"
    jobs.finish(contract)
    settle(h, 3)
    assert h.cluster.pod_counts == ["blue", "blue"] and h.cluster.statuses() == ("True", "False", "False")


def test_a_failed_expand_brings_nothing_up_and_a_retry_runs_it_again() -> None:
    h, jobs = harness()
    first_release(h, jobs)
    v2 = h.source.commit("v2")
    h.check_git_now()
    h.run()
    expand = job(jobs, "expand", v2, "green")
    jobs.finish(expand, ok=False, log="ERROR: relation \"items\" does not exist")
    mark, events = len(h.cluster.writes), len(h.cluster.events)
    settle(h, 3)
    assert h.writes_since(mark) == [] and "shop-green" not in h.cluster.deployments, "nothing brought up"
    assert h.cluster.selectors["shop"]["bluegreen.dev/color"] == "blue", "traffic untouched"
    assert h.cluster.statuses() == ("False", "False", "True") and condition(h, "Stalled")[1] == "MigrationFailed"
    message = h.cluster.condition("Stalled")["message"]
    assert expand in message and 'relation "items" does not exist' in message
    assert [e[:2] for e in h.cluster.events[events:]] == [("Warning", "MigrationFailed")], "exactly one Warning"
    history = h.cluster.status["history"]
    assert (history[0]["revision"], history[0]["outcome"], history[0]["reason"]) == (v2, "Failed", "MigrationFailed")
    assert len(history) == 2

    h.cluster.annotations["bluegreen.dev/retry"] = v2
    h.run()
    assert jobs.deleted == [expand], "the failed Job is deleted so it runs again"
    assert h.cluster.annotations.get("bluegreen.dev/retry") == v2, "the retry waits until the new run exists"
    jobs.deliver()
    h.run()
    assert jobs.created.count(expand) == 2 and "bluegreen.dev/retry" not in h.cluster.annotations
    assert h.cluster.status["migrations"][0]["verdict"] == "Running"
    jobs.finish(expand)
    settle(h, 3)
    assert h.cluster.selectors["shop"]["bluegreen.dev/color"] == "green"
    assert [(e["revision"], e["outcome"]) for e in h.cluster.status["history"][:2]] == \
        [(v2, "Succeeded"), (v2, "Failed")]


def test_an_operator_restart_adopts_the_running_expand() -> None:
    h, jobs = harness()
    sha = h.source.commit("v1")
    h.check_git_now()
    h.run()
    expand = job(jobs, "expand", sha, "blue")
    h.hook_jobs = HookJobs(jobs, Wakes(), clock=lambda: h.now)  # a new process: nothing in memory
    h.__post_init__()
    h.check_git_now()
    h.run()
    assert jobs.created == [expand] and h.cluster.deployments == {}, "adopted, not run twice"
    assert condition(h, "Reconciling") == ("True", "ExpandRunning")
    jobs.finish(expand)
    h.run()
    assert "shop-blue" in h.cluster.deployments


def test_a_warm_rollback_creates_no_job() -> None:
    h, jobs = harness(delay=300)
    first_release(h, jobs)
    v2 = h.source.commit("v2")
    h.check_git_now()
    h.run()
    jobs.finish(job(jobs, "expand", v2, "green"))
    settle(h, 3)
    created = list(jobs.created)
    h.source.commit("v1", summary="Revert v2")
    h.check_git_now()
    mark = len(h.cluster.writes)
    h.run()
    assert ("switch", "shop", "blue") in h.writes_since(mark)
    assert jobs.created == created, "a warm rollback runs no migration"


def test_a_cold_rollback_runs_the_expand_of_the_commit_it_goes_back_to_again() -> None:
    h, jobs = harness(delay=0)
    v1 = first_release(h, jobs)
    v1_head = h.source.head
    v2 = h.source.commit("v2")
    h.check_git_now()
    h.run()
    jobs.finish(job(jobs, "expand", v2, "green"))
    settle(h, 4)  # green serves, blue goes to 0, the contract of v2 runs
    jobs.finish(job(jobs, "contract", v2, "green"))
    settle(h, 2)
    assert h.cluster.deployments["shop-blue"]["spec"]["replicas"] == 0
    old_expand = job(jobs, "expand", v1, "blue")
    h.wait(5)
    h.source.head = v1_head  # the branch is reset to v1 (blue still runs its template, at 0)
    h.check_git_now()
    h.run()
    assert jobs.deleted == [old_expand] and h.cluster.deployments["shop-blue"]["spec"]["replicas"] == 0
    jobs.deliver()
    h.run()
    assert jobs.created.count(old_expand) == 2, "the expand of v1 runs again"
    assert h.cluster.deployments["shop-blue"]["spec"]["replicas"] == 0, "blue stays at 0 until it passed"
    jobs.finish(old_expand)
    h.run()
    blue = h.cluster.deployments["shop-blue"]
    assert blue["spec"]["replicas"] == 2
    assert blue["metadata"]["annotations"][EXPAND_ANNOTATION] == jobs.bodies[old_expand]["metadata"]["uid"]


def test_migrations_run_one_at_a_time() -> None:
    h, jobs = harness()
    sha = h.source.commit("v1")
    h.check_git_now()
    h.run()
    jobs.finish(job(jobs, "expand", sha, "blue"))
    settle(h, 4)
    contract = job(jobs, "contract", sha, "blue")
    v2 = h.source.commit("v2")
    h.check_git_now()
    h.run()
    assert condition(h, "Reconciling") == ("True", "MigrationWaiting") and contract in \
        h.cluster.condition("Reconciling")["message"]
    assert not [n for n in jobs.created if n.startswith("shop-expand-") and v2[:10] in n]
    jobs.finish(contract)
    h.run()
    job(jobs, "expand", v2, "green")


def test_without_a_job_runner_a_migration_fails_and_nothing_comes_up() -> None:
    h = Harness(cluster=RecordingCluster())
    h.spec.update(migrations={"expand": {"path": "db/expand.yaml"}})
    h.source.files["db/expand.yaml"] = EXPAND_JOB
    h.source.commit("v1")
    h.check_git_now()
    settle(h, 2)
    assert h.cluster.deployments == {} and condition(h, "Stalled") == ("True", "MigrationFailed")
    assert "no hook-Job runner" in h.cluster.condition("Stalled")["message"]


def test_without_migrations_the_status_has_no_migrations_field() -> None:
    h = Harness(cluster=RecordingCluster())
    h.released("v1")
    assert "migrations" not in h.cluster.status and h.cluster.pod_counts == []
