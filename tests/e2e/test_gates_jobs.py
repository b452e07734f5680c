"""Job pre-promotion checks through the running operator, on the real local cluster: the check's batch/v1 Job
comes from the same commit as the Deployment manifest and runs as a real process on the node; it calls the
preview Service (found through the Service environment variables kubelet gives every pod) and asserts on what
the idle colour answers. A passing Job lets the release switch; a failing one leaves traffic where it was under
load and names the Job and its last log lines; an operator killed while a check Job runs adopts that Job after
its restart instead of running the check again.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

from kubernetes import client
from waiting import wait_until
from zerodowntime import PhasedLoad, service_url, wait_answering

from conftest import Cluster, EndpointsRecorder, GitRepo, Operator

GOOD, BROKEN = "smoke-ok", "smoke-broken"
JOB_PATH = "checks/smoke-job.yaml"
CHECK_SCRIPT = """
import os, sys, time, urllib.request
time.sleep(float(os.environ.get("PAUSE", "0")))
address = os.environ["SHOP_PREVIEW_SERVICE_HOST"] + ":" + os.environ["SHOP_PREVIEW_SERVICE_PORT"]
body = urllib.request.urlopen("http://" + address + "/", timeout=5).read().decode()
print("checking", os.environ["BLUEGREEN_RELEASE"], os.environ["BLUEGREEN_COLOR"], os.environ["BLUEGREEN_COMMIT"])
print("preview answered:", body.strip()[:200])
sys.exit(0 if os.environ["EXPECT"] in body else 3)
"""


def job_manifest(pause: float = 0) -> str:
    """A smoke-test Job: GET the preview Service, pass when the answer carries ``smoke-ok``."""
    script = textwrap.indent(CHECK_SCRIPT.strip(), " " * 14)
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: smoke
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: smoke
          image: local/python:3
          command:
            - python3
            - -c
            - |
{script}
          env:
            - {{name: EXPECT, value: {GOOD}}}
            - {{name: PAUSE, value: "{pause}"}}
"""


def check_jobs(cluster: Cluster) -> list[Any]:
    batch = client.BatchV1Api(cluster.core.api_client)
    listing = batch.list_namespaced_job(cluster.namespace, label_selector="bluegreen.dev/release=shop")
    return sorted(listing.items, key=lambda job: job.metadata.creation_timestamp)


def _mark(cluster: Cluster, color: str) -> tuple[str | None, str | None]:
    deployment = cluster.deployment(color)
    found = (deployment.metadata.annotations or {}) if deployment is not None else {}
    return found.get("bluegreen.dev/failed-commit"), found.get("bluegreen.dev/failed-reason")


def _release_with_job_check(cluster: Cluster, repo: GitRepo, pause: float = 0) -> str:
    cluster.create_service()
    cluster.create_service("shop-preview")
    repo.write(job_manifest(pause), path=JOB_PATH, message="the smoke-test Job")
    v1 = repo.release_app("v1", app_message=GOOD)
    cluster.create_release(repo, previewService="shop-preview", checks={"prePromotion": [
        {"name": "smoke", "job": {"path": JOB_PATH}, "timeoutSeconds": 60}]})
    return v1


def test_a_passing_job_check_switches_and_a_failing_one_leaves_traffic_untouched(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints: Callable[..., EndpointsRecorder]) -> None:
    v1 = _release_with_job_check(cluster, repo)
    cluster.wait_serving(v1, "blue", timeout=120)
    [check] = cluster.status()["checks"]
    assert (check["name"], check["commit"], check["color"], check["verdict"]) == ("smoke", v1, "blue", "Passed")
    [job] = check_jobs(cluster)
    labels, notes = job.metadata.labels, job.metadata.annotations
    assert (labels["bluegreen.dev/release"], labels["bluegreen.dev/hook"]) == ("shop", "prePromotion")
    assert notes["bluegreen.dev/commit"] == v1 and job.status.succeeded == 1
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert (env["BLUEGREEN_RELEASE"], env["BLUEGREEN_COLOR"], env["BLUEGREEN_COMMIT"],
            env["BLUEGREEN_PREVIEW_SERVICE"]) == ("shop", "blue", v1, "shop-preview")

    ip = str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)
    wait_answering(ip)
    blue = frozenset(cluster.pod_ips("blue"))
    with PhasedLoad(service_url(ip)) as load:
        load.phase("a failing Job check", ["v1"])
        with endpoints() as recorded:
            broken = repo.release_app("v2", app_message=BROKEN)
            cluster.check_now()
            wait_until(lambda: _mark(cluster, "green") == (broken, "PrePromotionCheckFailed"), timeout=120,
                       what="v2 marked failed by its Job check")
            load.wait_more("v1", 100)
        assert cluster.color() == "blue"
    load.verdict("job check")
    assert recorded.distinct_sets() == [blue], f"the Service's Endpoints moved: {recorded.distinct_sets()}"
    green = cluster.deployment("green")
    assert green is not None and green.spec.replicas == 0, "the failed colour is scaled to 0"
    stalled = cluster.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "PrePromotionCheckFailed"), stalled
    assert "'smoke'" in stalled["message"] and BROKEN in stalled["message"], \
        f"the message quotes the Job's log: {stalled['message']}"
    failed = [c for c in cluster.status()["checks"] if c["commit"] == broken]
    assert [(c["verdict"], c["reason"]) for c in failed] == [("Failed", "JobFailed")], failed
    assert cluster.status()["history"][0]["outcome"] == "Failed"
    assert [e.type for e in cluster.events("PrePromotionCheckFailed")] == ["Warning"]
    assert len(check_jobs(cluster)) == 2, "one Job per commit and colour"


def test_an_operator_restart_while_a_check_job_runs_adopts_it(
        cluster: Cluster, repo: GitRepo, operator: Operator) -> None:
    v1 = _release_with_job_check(cluster, repo, pause=6)
    wait_until(lambda: (jobs := check_jobs(cluster)) and jobs[0].status.active, timeout=90,
               what="the check Job running")
    operator.kill()
    [job] = check_jobs(cluster)
    assert not job.status.succeeded and cluster.color() is None, "the kill must come before the check's verdict"
    operator.start()
    cluster.wait_serving(v1, "blue", timeout=120)
    [after] = check_jobs(cluster)
    assert after.metadata.uid == job.metadata.uid and after.status.succeeded == 1, "the same Job, run once"
    assert operator.text().count('"operator started"') == 2
