"""Hook Jobs for real: the Job check runner (``bluegreen.hooks``) against the local control plane, whose Job
controller runs the Jobs and whose node runs their pods as real processes, with the operator's least-privilege
Role. A Job watch feeds the view and wakes the release as kopf's handlers do (``runtime.handlers``).

Printed: the time from ``ensure`` (the Job created) to the verdict reaching the runner through the watch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from waiting import wait_until

from bluegreen.core.checks import CheckResult, CheckRun, CheckSpec, Hook, JobProbe, Verdict
from bluegreen.core.hook_jobs import HookJobRun, parse_job_manifest
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.hooks.hook_jobs import HookJobs
from bluegreen.hooks.job_checks import JobCheckRunner, hook_job_run
from bluegreen.kube.client import RequestTimeouts, TimedApiClient
from bluegreen.kube.cluster import ClusterView, KubeCluster
from conftest import Cluster, GitRepo, Operator, operator_kubeconfig

IMAGE = "local/python:3"
SHA1, SHA2, SHA3 = "1a" * 20, "2b" * 20, "3c" * 20
PATH = "checks/job.yaml"
PRINT_ENV = ("import os; [print(k, '=', os.environ.get(k)) for k in ('BLUEGREEN_COLOR', 'BLUEGREEN_COMMIT', "
             "'BLUEGREEN_HOOK', 'BLUEGREEN_PREVIEW_SERVICE', 'BLUEGREEN_RELEASE')]; print('ok')")


def manifest(namespace: str, code: str, **spec: Any) -> dict[str, Any]:
    """A Job manifest as a commit would hold it, parsed by the operator's rules."""
    text = f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: from-git, labels: {{team: qa}}}}
spec:
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      containers:
        - name: check
          image: {IMAGE}
          command: [python3, -u, -c, {code!r}]
"""
    doc = parse_job_manifest(text, namespace=namespace, path=PATH)
    doc["spec"].update(spec)
    return doc


class Harness:
    """The view, the KubeCluster (the operator's ServiceAccount) and a Job watch feeding both to a runner."""

    def __init__(self, kube_client: client.ApiClient, namespace: str, kubeconfig: Path, *, keep_runs: int = 3) -> None:
        self.namespace = namespace
        self.batch = client.BatchV1Api(kube_client)
        self.core = client.CoreV1Api(kube_client)
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self.api = TimedApiClient(configuration, RequestTimeouts())
        self.view = ClusterView()
        self.cluster = KubeCluster(self.api, self.view)
        self.wakes: list[tuple[float, ReleaseRef]] = []
        self.woken = threading.Condition()
        self.hook_jobs = HookJobs(self.cluster, self._wake, keep_runs=keep_runs)
        self.runner = JobCheckRunner(self.hook_jobs)
        self._watch = watch.Watch()
        self._listed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _wake(self, release: ReleaseRef) -> None:
        with self.woken:
            self.wakes.append((time.monotonic(), release))
            self.woken.notify_all()

    def _run(self) -> None:
        """What kopf's index and event handlers for batch/v1 jobs do, with the operator's own client."""
        batch = client.BatchV1Api(self.api)
        selector = "bluegreen.dev/release"
        listing = json.loads(batch.list_namespaced_job(self.namespace, label_selector=selector,
                                                       _preload_content=False).data)
        for body in listing["items"]:
            self.view.observe_job(body)
            self.hook_jobs.observed(self.namespace, body["metadata"]["name"])
        self._listed.set()
        try:
            for event in self._watch.stream(batch.list_namespaced_job, self.namespace, label_selector=selector,
                                            resource_version=listing["metadata"]["resourceVersion"],
                                            timeout_seconds=300):
                body = event["raw_object"]  # the JSON as kopf hands it over
                if event["type"] == "DELETED":
                    gone = self.view.job_gone(body)
                    if gone is not None:
                        self.hook_jobs.gone(gone)
                else:
                    self.view.observe_job(body)
                    self.hook_jobs.observed(self.namespace, body["metadata"]["name"])
        except Exception:  # cut when the harness stops
            if self._listed.is_set() and not self._stopping:
                raise

    def __enter__(self) -> Harness:
        self._stopping = False
        self._thread.start()
        assert self._listed.wait(20), "the Job watch did not list"
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping = True
        self._watch.stop()
        self.api.close()

    def wait_result(self, run: CheckRun, checks: list[CheckSpec], name: str, *, timeout: float = 60) -> CheckResult:
        """Wait, on the runner's wake-ups only, until check ``name`` has a verdict; return its result."""
        deadline = time.monotonic() + timeout
        with self.woken:
            while True:
                result = self.runner.results(run, checks).get(name)
                if result is not None and result.verdict is not Verdict.RUNNING:
                    return result
                left = deadline - time.monotonic()
                assert left > 0, f"no verdict for {name} after {timeout}s: {result}"
                self.woken.wait(left)

    def api_jobs(self) -> list[client.V1Job]:
        return list(self.batch.list_namespaced_job(self.namespace).items)


@pytest.fixture
def harness(kube_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Harness]:
    kubeconfig = operator_kubeconfig(kube_client, namespace, tmp_path)
    with Harness(kube_client, namespace, kubeconfig) as made:
        yield made


def release(namespace: str) -> ReleaseRef:
    return ReleaseRef(namespace, "shop")


def job_check(name: str, timeout: float = 60) -> CheckSpec:
    return CheckSpec(name, Hook.PRE_PROMOTION, job=JobProbe(PATH), timeout_seconds=timeout)


def timed(what: str, start: float) -> None:
    print(f"\n[hook jobs] {what}: {time.monotonic() - start:.2f}s")


def test_a_passing_job_check_with_the_runs_environment(harness: Harness, namespace: str) -> None:
    run = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA1, Color.GREEN, "shop-preview")
    checks = [job_check("smoke")]
    start = time.monotonic()
    first = harness.runner.ensure(run, checks, {PATH: manifest(namespace, PRINT_ENV)})
    assert first["smoke"].verdict is Verdict.RUNNING
    result = harness.wait_result(run, checks, "smoke")
    timed("a passing Job check, created -> Passed", start)
    assert (result.verdict, result.reason) == (Verdict.PASSED, "Passed")
    name = "shop-pre-smoke-1a1a1a1a1a-green"
    assert result.message == f"check 'smoke': Job {name} completed"
    assert result.started_at is not None and result.finished_at is not None

    job = harness.batch.read_namespaced_job(name, namespace)
    assert job.metadata.labels == {"team": "qa", "bluegreen.dev/release": "shop", "bluegreen.dev/hook": "prePromotion",
                                   "bluegreen.dev/color": "green"}
    assert job.metadata.annotations["bluegreen.dev/commit"] == SHA1
    assert job.metadata.annotations["bluegreen.dev/check"] == "smoke"
    assert job.spec.active_deadline_seconds == 60 and job.spec.backoff_limit == 0
    pod = harness.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items[0]
    assert "bluegreen.dev/color" not in pod.metadata.labels, "a Job's pod never takes a colour's traffic"
    assert pod.metadata.labels["bluegreen.dev/release"] == "shop"
    log = harness.core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert log == (f"BLUEGREEN_COLOR = green\nBLUEGREEN_COMMIT = {SHA1}\nBLUEGREEN_HOOK = prePromotion\n"
                   "BLUEGREEN_PREVIEW_SERVICE = shop-preview\nBLUEGREEN_RELEASE = shop\nok\n")


def test_a_failing_job_check_quotes_the_last_lines_of_its_pods_log(harness: Harness, namespace: str) -> None:
    run = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA1, Color.BLUE)
    checks = [job_check("e2e")]
    code = "import sys; [print(f'line {n}') for n in range(30)]; print('FAILED: cart is empty'); sys.exit(3)"
    start = time.monotonic()
    harness.runner.ensure(run, checks, {PATH: manifest(namespace, code)})
    result = harness.wait_result(run, checks, "e2e")
    timed("a failing Job check, created -> Failed with its log", start)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "JobFailed")
    name = "shop-pre-e2e-1a1a1a1a1a-blue"
    head, log = result.message.split("\n", 1)
    assert head.startswith(f"check 'e2e': Job {name} failed (BackoffLimitExceeded"), head
    assert head.endswith("; the last lines of its pod's log:")
    assert log.splitlines() == [f"line {n}" for n in range(11, 30)] + ["FAILED: cart is empty"], "the last 20"
    assert harness.runner.results(run, checks)["e2e"] == result


def test_a_job_check_past_its_timeout_fails_on_the_deadline(harness: Harness, namespace: str) -> None:
    run = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA1, Color.GREEN)
    checks = [job_check("slow", timeout=2)]
    start = time.monotonic()
    harness.runner.ensure(run, checks, {PATH: manifest(namespace, "import time; print('waiting'); time.sleep(120)")})
    result = harness.wait_result(run, checks, "slow", timeout=90)
    timed("a Job check with timeoutSeconds 2, created -> JobDeadlineExceeded", start)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "JobDeadlineExceeded")
    assert "DeadlineExceeded" in result.message
    assert harness.batch.read_namespaced_job("shop-pre-slow-1a1a1a1a1a-green", namespace).spec \
        .active_deadline_seconds == 2


def test_ensure_twice_creates_one_job_and_a_restarted_runner_adopts_it(
        kube_client: client.ApiClient, harness: Harness, namespace: str, tmp_path: Path) -> None:
    marker = tmp_path / "go"
    code = f"import os, time\nwhile not os.path.exists({str(marker)!r}): time.sleep(0.1)\nprint('done')"
    run = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA2, Color.GREEN)
    checks = [job_check("smoke")]
    manifests = {PATH: manifest(namespace, code)}
    harness.runner.ensure(run, checks, manifests)
    harness.runner.ensure(run, checks, manifests)
    assert len(harness.api_jobs()) == 1
    uid = harness.api_jobs()[0].metadata.uid
    wait_until(lambda: harness.api_jobs()[0].status.active == 1, timeout=30, what="the Job's pod running")

    with Harness(kube_client, namespace, tmp_path / "operator.kubeconfig") as restarted:
        adopted = restarted.runner.results(run, checks)
        assert adopted["smoke"].verdict is Verdict.RUNNING, "found again from the listing"
        again = restarted.runner.ensure(run, checks, manifests)
        assert again["smoke"].verdict is Verdict.RUNNING
        assert [job.metadata.uid for job in restarted.api_jobs()] == [uid], "not created again"
        marker.write_text("go")
        result = restarted.wait_result(run, checks, "smoke")
        assert result.verdict is Verdict.PASSED
        restarted.runner.ensure(run, checks, manifests)
        assert [job.metadata.uid for job in restarted.api_jobs()] == [uid], "a finished run is not run again"


def test_cancel_deletes_a_running_job_with_its_pod(harness: Harness, namespace: str) -> None:
    old = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA1, Color.GREEN)
    new = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA2, Color.GREEN)
    checks = [job_check("smoke")]
    manifests = {PATH: manifest(namespace, "import time; time.sleep(300)")}
    harness.runner.ensure(old, checks, manifests)
    harness.runner.ensure(new, checks, manifests)
    wait_until(lambda: all(job.status.active == 1 for job in harness.api_jobs()), timeout=30, what="both running")
    woken = len(harness.wakes)
    harness.runner.cancel(release(namespace), keep=new)
    wait_until(lambda: [job.metadata.name for job in harness.api_jobs()] == ["shop-pre-smoke-2b2b2b2b2b-green"],
               timeout=30, what="the old run's Job deleted")
    wait_until(lambda: not harness.core.list_namespaced_pod(
        namespace, label_selector="job-name=shop-pre-smoke-1a1a1a1a1a-green").items, timeout=60, what="its pod gone")
    wait_until(lambda: len(harness.wakes) > woken, timeout=10, what="the release woken by the deletion")
    assert harness.runner.results(old, checks) == {}
    assert harness.runner.results(new, checks)["smoke"].verdict is Verdict.RUNNING


def test_old_finished_runs_are_deleted_keeping_the_newest(
        kube_client: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    kubeconfig = operator_kubeconfig(kube_client, namespace, tmp_path)
    with Harness(kube_client, namespace, kubeconfig, keep_runs=2) as harness:
        checks = [job_check("smoke")]
        manifests = {PATH: manifest(namespace, "print('ok')")}
        names = []
        for sha in (SHA1, SHA2, SHA3):
            run = CheckRun(release(namespace), Hook.PRE_PROMOTION, sha, Color.GREEN)
            harness.runner.ensure(run, checks, manifests)
            names.append(hook_job_run(run, checks[0]).job_name)
            harness.wait_result(run, checks, "smoke")
        expand = harness.hook_jobs.ensure(HookJobRun(release(namespace), "expand", SHA3, Color.GREEN), manifests[PATH])
        wait_until(lambda: sorted(job.metadata.name for job in harness.api_jobs()) == sorted([*names[1:], expand.job]),
                   timeout=30, what="the oldest run's Job deleted")
        third = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA3, Color.GREEN)
        assert harness.runner.results(third, checks)["smoke"].verdict is Verdict.PASSED


def test_a_same_named_job_of_someone_else_is_never_adopted(harness: Harness, namespace: str) -> None:
    name = "shop-pre-smoke-1a1a1a1a1a-green"
    container = {"name": "x", "image": IMAGE, "command": ["python3", "-c", "pass"]}
    harness.batch.create_namespaced_job(namespace, {"metadata": {"name": name}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [container]}}}})
    run = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA1, Color.GREEN)
    result = harness.runner.ensure(run, [job_check("smoke")], {PATH: manifest(namespace, "print('ok')")})["smoke"]
    assert (result.verdict, result.reason) == (Verdict.FAILED, "JobConflict")
    assert f"Job {name!r} exists in namespace" in result.message
    assert len(harness.api_jobs()) == 1


def test_a_job_the_api_server_refuses_fails_the_check(harness: Harness, namespace: str) -> None:
    run = CheckRun(release(namespace), Hook.PRE_PROMOTION, SHA1, Color.GREEN)
    refused = manifest(namespace, "print('ok')")
    refused["spec"]["template"]["spec"]["containers"][0]["name"] = "Not_A_Name"
    result = harness.runner.ensure(run, [job_check("smoke")], {PATH: refused})["smoke"]
    assert (result.verdict, result.reason) == (Verdict.FAILED, "InvalidJobManifest")
    assert "the API server refused Job 'shop-pre-smoke-1a1a1a1a1a-green'" in result.message
    assert "Not_A_Name" in result.message
    with pytest.raises(ApiException):
        harness.batch.read_namespaced_job("shop-pre-smoke-1a1a1a1a1a-green", namespace)



def test_the_operator_watches_the_hook_jobs_under_its_role(cluster: Cluster, repo: GitRepo, operator: Operator,
                                                          namespace: str) -> None:
    """The real operator (kopf, the least-privilege Role): it lists the Jobs labelled bluegreen.dev/release, and
    a Job's life (created, finished, deleted) runs through its handlers without an error while it serves."""
    from test_reads_from_watches import audit_log, require_audit_log

    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    require_audit_log()
    user = f"system:serviceaccount:{namespace}:bluegreen-operator"
    entries = [json.loads(line) for line in audit_log().read_text().splitlines()]
    jobs_reads = {(e["verb"], (e.get("objectRef") or {}).get("resource")) for e in entries
                  if e["user"]["username"] == user and (e.get("objectRef") or {}).get("resource") == "jobs"}
    assert ("list", "jobs") in jobs_reads, f"the operator's Job watch did not list: {jobs_reads}"

    batch = client.BatchV1Api(cluster.api)
    body = {"metadata": {"name": "shop-pre-smoke-1a1a1a1a1a-blue", "labels": {"bluegreen.dev/release": "shop",
                                                                              "bluegreen.dev/hook": "prePromotion"},
                         "annotations": {"bluegreen.dev/commit": SHA1}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": IMAGE, "command": ["python3", "-c", "print('ok')"]}]}}}}
    batch.create_namespaced_job(namespace, body)
    wait_until(lambda: batch.read_namespaced_job_status(body["metadata"]["name"], namespace).status.succeeded,
               timeout=30, what="the Job completed")
    batch.delete_namespaced_job(body["metadata"]["name"], namespace, propagation_policy="Background")
    time.sleep(2)
    log = operator.text()
    assert "job_event" not in log and "job_index" not in log and "Traceback" not in log, log[-3000:]
    assert operator.process is not None and operator.process.poll() is None
    assert cluster.status()["phase"] == "Healthy"
