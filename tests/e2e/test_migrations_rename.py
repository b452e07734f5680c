"""Database migrations through the operator, on a real PostgreSQL, under a continuous load of reads
(``GET /db/items``) and writes (``POST /db/items``; each 201's ``id`` is an acknowledgement) sent through the
Service from the first release to the end: the column ``name`` is renamed to ``display_name`` in three releases
(``tests/app/renamecolumn.py``), each a git commit of the Deployment manifest and its expand and contract Jobs.

1. R1, v1 on ``name``; its expand creates the table.
2. R2, v2 dual-writes; its expand adds ``display_name`` and backfills. Then a warm rollback (``git revert`` of
   R2 while v1 is warm: instant, no Job runs) and R2 again (the revert reverted).
3. R3, v3 on ``display_name``; its expand backfills again; its contract drops ``name``, and must start only
   once no v2 pod is left.
4. A cold rollback after the contract (revert R3): the expand of the commit it goes back to runs first and puts
   ``name`` back, then v2's colour is scaled up and takes the traffic.

Asserted: zero failed requests, reads and writes alike, and the versions in the answers change exactly as the
releases say; every acknowledged write is in the table at the end with its value in ``display_name``; each
expand finished before its colour was created or changed; the contract Job was created after the last v2 pod
was gone (ordered by etcd revision, see kubewatch.py); the warm rollback created no Job. A second test: a
failing expand under load never brings up the new colour (``Stalled``, reason ``MigrationFailed``, a Warning
Event, traffic untouched), a fixed commit goes through, and a failing expand of a later release leaves the
warm idle colour as it was. Figures (requests, writes, rows, phases, Job durations) are printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from kubewatch import NamespaceRecorder
from migrationapp import (
    MIGRATIONS,
    Database,
    DatabaseLoad,
    Timeline,
    colour_changed,
    commit_release,
    create_database_secret,
    job_created,
    job_finished,
    last_deleted,
    migration_jobs,
    switched_to,
    version_pods_alive_at,
)
from waiting import wait_until
from zerodowntime import service_url, wait_answering

from conftest import Cluster, GitRepo, Operator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import postgres
from renamecolumn import FAILING_EXPAND, V1, V2, V3

postgres_server = postgres.postgres_server  # the fixtures, used by name
postgres_dsn = postgres.postgres_dsn

SCALE_DOWN_DELAY = 15
"""Seconds the previous colour stays warm: room for the warm rollback, short for the contract's wait."""


def _release(cluster: Cluster, repo: GitRepo, dsn: str, **spec: object) -> str:
    cluster.create_service()
    create_database_secret(cluster.core, cluster.namespace, dsn)
    v1 = commit_release(repo, V1, message="R1: v1 on name")
    cluster.create_release(repo, migrations=MIGRATIONS, progressDeadlineSeconds=90, **spec)
    return v1


def _job_lines(events: NamespaceRecorder) -> list[str]:
    """One line per migration Job: hook, commit, and how long from its creation to its verdict (seen)."""
    lines = []
    for name, (hook, commit) in migration_jobs(events).items():
        created = job_created(events, hook, commit)
        done = job_finished(events, hook, commit) or job_finished(events, hook, commit, "Failed")
        took = f"{done.at - created.at:.2f}s" if created and done else "unfinished"
        verdict = "Failed" if done and job_finished(events, hook, commit) is None else "Complete" if done else "-"
        lines.append(f"  {name}: {hook} of {commit[:10]}, created -> {verdict} in {took} (as seen by a watch)")
    return lines


def _expand_before_colour(events: NamespaceRecorder, commit: str, color: str, after: int) -> str:
    """Assert the expand Job of ``commit`` completed before ``color`` was created or changed for it; return
    the timing line of this release (commit -> Job -> colour -> switch)."""
    done = job_finished(events, "expand", commit)
    created = job_created(events, "expand", commit)
    assert created is not None and done is not None, f"the expand Job of {commit[:10]} ran and completed"
    changed = colour_changed(events, color, after, commit)
    switch = switched_to(events, color, after)
    assert changed is not None and switch is not None
    assert created.revision > after and done.revision < changed.revision, \
        f"expand completed (rev {done.revision}) before shop-{color} changed (rev {changed.revision})"
    return (f"Job created {created.at - events.mark_at(after):.2f}s after the commit was checked, ran "
            f"{done.at - created.at:.2f}s, {color} changed {changed.at - done.at:.2f}s later, switched "
            f"{switch.at - changed.at:.2f}s after that")


@pytest.mark.timeout(600)
def test_rename_a_column_in_three_releases_under_load(
        cluster: Cluster, repo: GitRepo, operator: Operator, postgres_server: postgres.PostgresServer,
        postgres_dsn: str) -> None:
    db = Database(postgres_server, postgres_dsn)
    times = Timeline([])
    releases: dict[str, str] = {}
    with NamespaceRecorder(cluster.api, cluster.namespace) as events:
        times.mark("R1 committed, release created")
        start = events.checkpoint()
        v1 = _release(cluster, repo, postgres_dsn, scaleDownDelaySeconds=SCALE_DOWN_DELAY)
        ip = str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)
        wait_answering(ip)
        with DatabaseLoad(service_url(ip)) as load:
            load.phase("R1 v1", ["v1"])
            cluster.wait_serving(v1, "blue", timeout=90)
            releases["R1"] = _expand_before_colour(events, v1, "blue", start)
            load.wait_more("v1", 100)
            times.mark(f"v1 serving; table: {db.state()}")

            load.phase("R2 expand, switch to v2", ["v1", "v2"])
            r2 = commit_release(repo, V2, message="R2: v2 dual-writes name and display_name")
            mark = events.checkpoint()
            cluster.check_now()
            cluster.wait_serving(r2, "green", timeout=90)
            releases["R2"] = _expand_before_colour(events, r2, "green", mark)
            load.wait_more("v2", 100)
            times.mark(f"v2 serving; table: {db.state()}")

            load.phase("warm rollback to v1", ["v2", "v1"])
            jobs_before = set(migration_jobs(events))
            reverted = repo.revert()
            mark = events.checkpoint()
            cluster.check_now()
            cluster.wait_serving(reverted, "blue", timeout=30)
            rollback = switched_to(events, "blue", mark)
            assert rollback is not None
            load.wait_more("v1", 100)
            assert set(migration_jobs(events)) == jobs_before, "the warm rollback ran no migration Job"
            times.mark(f"v1 serving again, {rollback.at - events.mark_at(mark):.2f}s after the revert was checked")

            load.phase("R2 again", ["v1", "v2"])
            again = repo.revert()
            mark = events.checkpoint()
            cluster.check_now()
            cluster.wait_serving(again, "green", timeout=60)
            load.wait_more("v2", 100)
            expand_again = "ran" if job_created(events, "expand", again) else "did not run"
            times.mark(f"v2 serving again (its expand {expand_again}); table: {db.state()}")

            load.phase("R3 expand, switch to v3", ["v2", "v3"])
            r3 = commit_release(repo, V3, message="R3: v3 on display_name; contract drops name")
            mark = events.checkpoint()
            cluster.check_now()
            cluster.wait_serving(r3, "blue", timeout=90)
            releases["R3"] = _expand_before_colour(events, r3, "blue", mark)
            load.wait_more("v3", 100)
            times.mark(f"v3 serving; table: {db.state()}")

            load.phase("scale-down of v2, contract", ["v3"])
            contract = wait_until(lambda: job_finished(events, "contract", r3), timeout=SCALE_DOWN_DELAY + 60,
                                  interval=0.05, what="R3's contract Job completed")
            created = job_created(events, "contract", r3)
            assert created is not None
            alive = version_pods_alive_at(events, "v2", created.revision)
            assert not alive, f"v2 pods still existed when the contract Job was created: {alive}"
            r3_expand = job_created(events, "expand", r3)
            assert r3_expand is not None and version_pods_alive_at(events, "v2", r3_expand.revision), \
                "the check can fail: v2 pods were alive when R3's expand was created"
            gone = last_deleted(events, "v2", created.revision)
            assert gone is not None, "v2 pods were seen, and deleted"
            load.wait_more("v3", 100)
            assert db.columns() == ("id", "display_name")
            times.mark(f"contract done: created {created.at - gone.at:.2f}s after the last v2 pod was gone, ran "
                       f"{contract.at - created.at:.2f}s; table: {db.state()}")

            load.phase("cold rollback to v2", ["v3", "v2"])
            cold = repo.revert()
            mark = events.checkpoint()
            cluster.check_now()
            cluster.wait_serving(cold, "green", timeout=90)
            releases["cold rollback"] = _expand_before_colour(events, cold, "green", mark)
            load.wait_more("v2", 100)
            times.mark(f"v2 serving after the cold rollback; table: {db.state()}")
    lines = load.verdict("migrations")

    reads, reads_failed, writes, writes_failed = load.counts()
    acks = load.acknowledged()
    found = db.values("display_name")
    lost = {i: (v, found.get(i)) for i, v in acks.items() if found.get(i) != v}
    print(f"migrations: reads {reads} sent, {reads_failed} failed; writes {writes} sent, {writes_failed} failed; "
          f"{len(acks)} writes acknowledged, {len(acks) - len(lost)} found with their value in display_name; "
          f"table: {db.state()}")
    print("migrations, phases:\n" + "\n".join(times.lines()))
    print("migrations, per release:\n" + "\n".join(f"  {k}: {v}" for k, v in releases.items()))
    print("migrations, Jobs:\n" + "\n".join(_job_lines(events)))
    assert lines and not lost, f"{len(lost)} acknowledged writes lost or changed (id: (sent, found)): " \
                               f"{dict(list(lost.items())[:10])}"
    assert db.columns() == ("id", "display_name", "name"), "the cold rollback's expand put name back"
    history = [(h["revision"], h["outcome"]) for h in cluster.status()["history"]]
    assert (reverted, "RolledBack") in history and (cold, "RolledBack") in history, history


@pytest.mark.timeout(300)
def test_a_failing_expand_never_brings_up_the_new_colour(
        cluster: Cluster, repo: GitRepo, operator: Operator, postgres_server: postgres.PostgresServer,
        postgres_dsn: str) -> None:
    db = Database(postgres_server, postgres_dsn)
    with NamespaceRecorder(cluster.api, cluster.namespace) as events:
        v1 = _release(cluster, repo, postgres_dsn, scaleDownDelaySeconds=300)
        cluster.wait_serving(v1, "blue", timeout=90)
        ip = str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)
        with DatabaseLoad(service_url(ip), max_seconds=240) as load:
            load.phase("failing expand of R2", ["v1"])
            load.wait_more("v1", 50)
            broken = commit_release(repo, V2, message="R2 with a broken expand", expand=FAILING_EXPAND)
            cluster.check_now()
            wait_until(lambda: cluster.condition("Stalled").get("reason") == "MigrationFailed", timeout=60,
                       what="Stalled, reason MigrationFailed")
            load.wait_more("v1", 100)
            assert not events.of("deployment", lambda e: e.name == "shop-green"), "green was never created"
            stalled = cluster.condition("Stalled")
            job = job_finished(events, "expand", broken, "Failed")
            assert job is not None and stalled["status"] == "True" and job.name in stalled["message"], stalled
            assert 'type "no_such_type" does not exist' in stalled["message"], "the message quotes the Job's log"
            assert [e.type for e in cluster.events("MigrationFailed")] == ["Warning"]
            assert cluster.status()["history"][0]["outcome"] == "Failed"
            assert cluster.color() == "blue" and db.columns() == ("id", "name"), "nothing of it was committed"

            load.phase("R2 fixed", ["v1", "v2"])
            fixed = commit_release(repo, V2, message="R2 fixed")
            cluster.check_now()
            cluster.wait_serving(fixed, "green", timeout=90)
            load.wait_more("v2", 100)
            assert cluster.condition("Stalled").get("status") != "True"

            load.phase("failing expand of R3", ["v2"])
            blue = cluster.deployment("blue")
            assert blue is not None and blue.spec.replicas, "blue is still warm"
            mark = events.checkpoint()
            broken3 = commit_release(repo, V3, message="R3 with a broken expand", expand=FAILING_EXPAND)
            cluster.check_now()
            wait_until(lambda: job_finished(events, "expand", broken3, "Failed") and
                       cluster.condition("Stalled").get("reason") == "MigrationFailed", timeout=60,
                       what="R3's expand failed, Stalled")
            load.wait_more("v2", 100)
            after = cluster.deployment("blue")
            assert after is not None and colour_changed(events, "blue", mark, broken3) is None, "blue was not changed"
            assert (after.metadata.generation, after.metadata.annotations) == \
                   (blue.metadata.generation, blue.metadata.annotations)
    load.verdict("failing expand")
    reads, reads_failed, writes, writes_failed = load.counts()
    print(f"failing expand: reads {reads} sent, {reads_failed} failed; writes {writes} sent, {writes_failed} "
          f"failed; Stalled message: {stalled['message']}\nJobs:\n" + "\n".join(_job_lines(events)))
