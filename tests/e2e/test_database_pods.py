"""The pieces the migration tests and demo rely on, on the real local node without the operator: the web app
with ``DATABASE_URL`` (from a Secret) as ``local/python:3`` pods reaching the test PostgreSQL on 127.0.0.1,
``tests/app/migrate.py`` as a Job's command (committed, or failed with nothing committed and the server's error
in its log), and the app's pooled connections surviving a contract (``DROP COLUMN``) under load, while a pod of
the version that still uses the dropped column starts failing: exactly why a contract must wait for the old pods
to be gone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from migrationapp import MIGRATE, SECRET, Database, DatabaseLoad, create_database_secret, db_app_manifest
from nodepods import get
from waiting import wait_until
from zerodowntime import service_url, wait_answering

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import postgres
from renamecolumn import FAILING_EXPAND, V1, V2, V3, migration_job

postgres_server = postgres.postgres_server  # the fixtures, used by name
postgres_dsn = postgres.postgres_dsn


def run_job(kube: client.ApiClient, namespace: str, name: str, statements: tuple[str, ...]) -> tuple[str, str]:
    """Create a migration Job, wait until it finished; (Complete or Failed, its pod's log)."""
    batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
    body = yaml.safe_load(migration_job(name, statements, str(MIGRATE), secret=SECRET))
    batch.create_namespaced_job(namespace, body)

    def finished() -> str | None:
        conditions = batch.read_namespaced_job_status(name, namespace).status.conditions or []
        return next((c.type for c in conditions if c.status == "True" and c.type in ("Complete", "Failed")), None)
    verdict = wait_until(finished, timeout=60, what=f"Job {name} finished")
    [pod] = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return str(verdict), str(core.read_namespaced_pod_log(pod.metadata.name, namespace))


def deploy(kube: client.ApiClient, namespace: str, manifest: str) -> str:
    """Create the Deployment; wait until all its replicas are ready; return its name."""
    apps = client.AppsV1Api(kube)
    body: dict[str, Any] = yaml.safe_load(manifest)
    apps.create_namespaced_deployment(namespace, body)
    name = body["metadata"]["name"]
    wait_until(lambda: (apps.read_namespaced_deployment(name, namespace).status.ready_replicas or 0)
               == body["spec"]["replicas"], timeout=60, what=f"{name} ready")
    return str(name)


def post_item(ip: str, value: str) -> tuple[int, dict[str, Any]]:
    import http.client

    connection = http.client.HTTPConnection(ip, 8080, timeout=5)
    try:
        connection.request("POST", "/db/items", json.dumps({"value": value}), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_app_and_migration_jobs_on_postgresql_in_pods(
        kube_client: client.ApiClient, namespace: str, postgres_server: postgres.PostgresServer,
        postgres_dsn: str) -> None:
    core = client.CoreV1Api(kube_client)
    db = Database(postgres_server, postgres_dsn)
    create_database_secret(core, namespace, postgres_dsn)

    verdict, log = run_job(kube_client, namespace, "expand-v1", V1.expand)
    assert (verdict, log.strip()) == ("Complete", "migrate: 1 statement(s) committed"), log
    verdict, log = run_job(kube_client, namespace, "expand-v2", V2.expand)
    assert verdict == "Complete", log
    assert db.columns() == ("id", "name", "display_name")

    verdict, log = run_job(kube_client, namespace, "broken", FAILING_EXPAND)
    assert verdict == "Failed"
    assert "migrate: failed, nothing committed: 42704 type \"no_such_type\" does not exist" in log, log
    assert db.columns() == ("id", "name", "display_name"), "the failed Job's first statement was rolled back"

    # v2 (still writes `name`) as one pod outside the Service; v3 (display_name only) behind it.
    deploy(kube_client, namespace, db_app_manifest("v2", "name,display_name", replicas=1, name="old"))
    [old] = core.list_namespaced_pod(namespace, label_selector="app=old").items
    status, answer = post_item(old.status.pod_ip, "from v2")
    assert status == 201 and answer["written"] == {"name": "from v2", "display_name": "from v2"}, answer

    core.create_namespaced_service(namespace, {"metadata": {"name": "shop"}, "spec": {
        "selector": {"app": "shop"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    deploy(kube_client, namespace, db_app_manifest("v3", "display_name", replicas=2))
    ip = str(core.read_namespaced_service("shop", namespace).spec.cluster_ip)
    wait_answering(ip)
    with DatabaseLoad(service_url(ip), max_seconds=120) as load:
        load.phase("v3 before the contract", ["v3"])
        load.wait_more("v3", 100)  # every pod has pooled connections by now
        load.phase("the contract under load", ["v3"])
        verdict, log = run_job(kube_client, namespace, "contract-v3", V3.contract)
        assert verdict == "Complete", log
        load.wait_more("v3", 100)
    load.verdict("database pods")
    reads, reads_failed, writes, writes_failed = load.counts()
    acks = load.acknowledged()
    found = db.values("display_name")
    print(f"database pods: {reads} reads ({reads_failed} failed), {writes} writes ({writes_failed} failed), "
          f"{len(acks)} acknowledged, {sum(found.get(i) == v for i, v in acks.items())} found; "
          f"table after the contract: {db.state()}")
    assert db.columns() == ("id", "display_name")
    assert {i: found.get(i) for i in acks} == acks, "every acknowledged write is in the table"

    status, answer = post_item(old.status.pod_ip, "from v2 after the contract")
    assert (status, answer["error"]) == (500, '42703 column "name" of relation "items" does not exist'), answer
    status, body = get(old.status.pod_ip, "/db/items?limit=1")
    assert status == 500 and "42703" in body, body
