"""Expand/contract migrations through the running operator, on the real local cluster: the migration Jobs come
from the same commit as the Deployment manifest and run as real processes on the node (``migrationjobs.py``).

- the expand of a commit runs to its end before the colour it brings up is created; the contract only once the
  last pod of the previous colour is gone (the API server's own order: etcd revisions of the watch events);
- a failing expand brings nothing up (no Deployment change, the Service's Endpoints untouched under load),
  stalls the release with the Job's log and one Warning Event; ``bluegreen retry`` runs it again;
- a warm rollback runs no Job; a cold rollback runs the expand of the commit it goes back to again;
- an operator killed while an expand runs adopts that Job after its restart (it runs once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from migrationjobs import CONTRACT_PATH, EXPAND_PATH, Recorder, migration_job, migration_jobs, ran
from waiting import wait_until
from zerodowntime import PhasedLoad, service_url, wait_answering

from conftest import Cluster, EndpointsRecorder, GitRepo, Operator

MIGRATIONS = {"expand": {"path": EXPAND_PATH, "timeoutSeconds": 60},
              "contract": {"path": CONTRACT_PATH, "timeoutSeconds": 60}}


def commit_jobs(repo: GitRepo, record: Path, *, contract: bool = True, **expand: Any) -> None:
    repo.write(migration_job("expand", record, **expand), path=EXPAND_PATH, message="the expand Job")
    if contract:
        repo.write(migration_job("contract", record), path=CONTRACT_PATH, message="the contract Job")


def created(obj: Any) -> float:
    return float(obj.metadata.creation_timestamp.timestamp())


def passed(cluster: Cluster, phase: str, commit: str, color: str) -> dict[str, Any] | None:
    for entry in cluster.status().get("migrations") or []:
        if (entry["phase"], entry["commit"], entry["color"], entry["verdict"]) == (phase, commit, color, "Passed"):
            return dict(entry)
    return None


def test_the_expand_runs_before_the_colour_and_the_contract_after_the_last_old_pod(
        cluster: Cluster, repo: GitRepo, operator: Operator, tmp_path: Path) -> None:
    record = tmp_path / "migrations.log"
    cluster.create_service()
    commit_jobs(repo, record)
    v1 = repo.release_app("v1")
    started = time.monotonic()
    cluster.create_release(repo, migrations=MIGRATIONS, scaleDownDelaySeconds=2)
    cluster.wait_serving(v1, "blue", timeout=120)
    [expand_v1] = migration_jobs(cluster, "expand")
    blue = cluster.deployment("blue")
    assert blue is not None and expand_v1.status.completion_time is not None
    assert expand_v1.status.completion_time <= blue.metadata.creation_timestamp, \
        "blue was created only after its expand had completed"
    assert (expand_v1.metadata.labels["bluegreen.dev/color"], expand_v1.metadata.annotations["bluegreen.dev/commit"]) \
        == ("blue", v1)
    assert blue.metadata.annotations["bluegreen.dev/expand-job"] == expand_v1.metadata.uid
    wait_until(lambda: passed(cluster, "contract", v1, "blue"), timeout=60, what="the first release's contract")
    first = time.monotonic() - started
    assert ran(record) == [("expand", v1, "blue"), ("contract", v1, "blue")]

    with Recorder(cluster.api, cluster.namespace, "pods", "bluegreen.dev/release=shop,bluegreen.dev/color=blue") \
            as pods, Recorder(cluster.api, cluster.namespace, "jobs", "bluegreen.dev/hook=contract") as jobs:
        v2 = repo.release_app("v2")
        cluster.check_now()
        began = time.monotonic()
        cluster.wait_serving(v2, "green", timeout=120)
        switched = time.monotonic() - began
        wait_until(lambda: passed(cluster, "contract", v2, "green"), timeout=90, what="v2's contract")
        contracted = time.monotonic() - began
    [_, expand_v2] = migration_jobs(cluster, "expand")
    green = cluster.deployment("green")
    assert green is not None and expand_v2.status.completion_time <= green.metadata.creation_timestamp
    gone = pods.revision("DELETED")
    assert len(gone) == 2, f"both blue pods were deleted: {pods.events}"
    [contract_added] = jobs.revision("ADDED", f"shop-contract-{v2[:10]}")
    assert contract_added > max(gone), f"the contract Job came after the last blue pod was gone: {jobs.events} " \
                                       f"vs {pods.events}"
    contract_v2 = next(j for j in migration_jobs(cluster, "contract") if j.metadata.name.endswith("-green"))
    print(f"\nmigrations: first release with expand+contract {first:.1f}s; v2 switched {switched:.1f}s after the "
          f"commit, contract {contracted:.1f}s after it (blue's last pod deleted at revision {max(gone)}, the "
          f"contract Job created at revision {contract_added}, {created(contract_v2) - created(expand_v2):.0f}s "
          "after v2's expand)")
    assert ran(record)[2:] == [("expand", v2, "green"), ("contract", v2, "green")]
    assert cluster.condition("Reconciling")["status"] == "False"


def test_a_failing_expand_brings_nothing_up_and_a_retry_runs_it_again(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints: Callable[..., EndpointsRecorder],
        tmp_path: Path) -> None:
    record, flag = tmp_path / "migrations.log", tmp_path / "broken"
    cluster.create_service()
    commit_jobs(repo, record, contract=False, fail_while=flag)
    v1 = repo.release_app("v1")
    cluster.create_release(repo, migrations={"expand": MIGRATIONS["expand"]})
    cluster.wait_serving(v1, "blue", timeout=120)
    ip = str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)
    wait_answering(ip)
    before = cluster.deployment("blue")
    assert before is not None
    blue_pods = frozenset(cluster.pod_ips("blue"))
    flag.write_text("the expand fails while this file exists")
    with PhasedLoad(service_url(ip)) as load:
        load.phase("a failing expand", ["v1"])
        with endpoints() as recorded:
            v2 = repo.release_app("v2")
            cluster.check_now()
            stalled = wait_until(lambda: (c := cluster.condition("Stalled")).get("reason") == "MigrationFailed" and c,
                                 timeout=90, what="the release stalled by its failing expand")
            load.wait_more("v1", 240)  # a few seconds more of traffic on the stalled release
        load.phase("the retried expand and the cut-over", ["v1", "v2"])
        assert cluster.deployment("green") is None, "nothing was brought up"
        after = cluster.deployment("blue")
        assert after is not None and after.metadata.resource_version == before.metadata.resource_version
        assert cluster.color() == "blue" and recorded.distinct_sets() == [blue_pods], recorded.distinct_sets()
        [failed] = [j for j in migration_jobs(cluster, "expand") if v2 in j.metadata.annotations.values()]
        assert failed.metadata.name in stalled["message"] and "already exists" in stalled["message"], stalled
        assert [e.type for e in cluster.events("MigrationFailed")] == ["Warning"]
        [warning] = [r for r in operator.lines()
                     if r.get("reason") == "MigrationFailed" and r.get("level") == "warning"]
        assert v2[:12] in warning["event"]
        entry = cluster.status()["history"][0]
        assert (entry["revision"], entry["outcome"], entry["reason"]) == (v2, "Failed", "MigrationFailed")

        flag.unlink()
        cluster.patch_release({"metadata": {"annotations": {"bluegreen.dev/retry": v2}}})
        cluster.wait_serving(v2, "green", timeout=120)
        load.wait_more("v2", 50)
    load.verdict("migrations")
    [retried] = [j for j in migration_jobs(cluster, "expand") if v2 in j.metadata.annotations.values()]
    assert retried.metadata.uid != failed.metadata.uid and retried.metadata.name == failed.metadata.name
    assert ran(record) == [("expand", v1, "blue"), ("expand", v2, "green")], "the failed run wrote nothing"
    assert "bluegreen.dev/retry" not in (cluster.release()["metadata"].get("annotations") or {})
    assert [e["outcome"] for e in cluster.status()["history"][:2]] == ["Succeeded", "Failed"]


def test_a_warm_rollback_runs_no_job_and_a_cold_one_runs_the_expand_again(
        cluster: Cluster, repo: GitRepo, operator: Operator, tmp_path: Path) -> None:
    record = tmp_path / "migrations.log"
    cluster.create_service()
    commit_jobs(repo, record, contract=False)
    v1 = repo.release_app("v1")
    cluster.create_release(repo, migrations={"expand": MIGRATIONS["expand"]}, scaleDownDelaySeconds=20)
    cluster.wait_serving(v1, "blue", timeout=120)
    v2 = repo.release_app("v2")
    cluster.check_now()
    cluster.wait_serving(v2, "green", timeout=120)
    jobs = [j.metadata.uid for j in migration_jobs(cluster)]
    assert len(jobs) == 2

    revert = repo.revert()
    cluster.check_now()
    cluster.wait_serving(revert, "blue", timeout=60)
    assert [j.metadata.uid for j in migration_jobs(cluster)] == jobs, "a warm rollback runs no migration"

    wait_until(lambda: (g := cluster.deployment("green")) is not None and g.spec.replicas == 0, timeout=60,
               what="green scaled down after its warm window")
    [old] = [j for j in migration_jobs(cluster) if j.metadata.name.endswith(f"{v2[:10]}-green")]
    repo.git("reset", "-q", "--hard", v2)  # the branch goes back to v2: green runs its template, at 0
    cluster.check_now()
    cluster.wait_serving(v2, "green", timeout=120)
    [again] = [j for j in migration_jobs(cluster) if j.metadata.name == old.metadata.name]
    assert again.metadata.uid != old.metadata.uid, "the cold rollback ran v2's expand again"
    green = cluster.deployment("green")
    assert green is not None and green.metadata.annotations["bluegreen.dev/expand-job"] == again.metadata.uid
    assert ran(record) == [("expand", v1, "blue"), ("expand", v2, "green"), ("expand", v2, "green")]


def test_an_operator_restart_while_the_expand_runs_adopts_it(
        cluster: Cluster, repo: GitRepo, operator: Operator, tmp_path: Path) -> None:
    record = tmp_path / "migrations.log"
    cluster.create_service()
    commit_jobs(repo, record, contract=False, pause=6)
    v1 = repo.release_app("v1")
    cluster.create_release(repo, migrations={"expand": MIGRATIONS["expand"]})
    wait_until(lambda: (jobs := migration_jobs(cluster)) and jobs[0].status.active, timeout=90,
               what="the expand Job running")
    operator.kill()
    [job] = migration_jobs(cluster)
    assert not job.status.succeeded and cluster.deployment("blue") is None, "killed before the expand finished"
    operator.start()
    cluster.wait_serving(v1, "blue", timeout=120)
    [after] = migration_jobs(cluster)
    assert after.metadata.uid == job.metadata.uid and after.status.succeeded == 1, "the same Job, run once"
    assert ran(record) == [("expand", v1, "blue")]
    assert operator.text().count('"operator started"') == 2
