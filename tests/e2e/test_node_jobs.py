"""Jobs of process-backed pods: the real Job controller completes or fails them by their exit codes;
init containers run first, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client
from nodepods import IMAGE, pod_body, read_pod
from waiting import wait_until


def job(name: str, code: int) -> dict[str, Any]:
    command = ["python3", "-c", f"import sys; print('done'); sys.exit({code})"]
    container = {"name": "task", "image": IMAGE, "command": command}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}


def _condition(batch: client.BatchV1Api, namespace: str, name: str) -> client.V1JobCondition | None:
    conditions = batch.read_namespaced_job_status(name, namespace).status.conditions or []
    return next((c for c in conditions if c.status == "True" and c.type in ("Complete", "Failed")), None)


def test_jobs_complete_or_fail_by_exit_code(kube_client: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    batch.create_namespaced_job(namespace, job("works", 0))
    batch.create_namespaced_job(namespace, job("breaks", 1))

    done = wait_until(lambda: _condition(batch, namespace, "works"), timeout=30, what="Job works finished")
    failed = wait_until(lambda: _condition(batch, namespace, "breaks"), timeout=30, what="Job breaks finished")
    assert done.type == "Complete"
    assert batch.read_namespaced_job_status("works", namespace).status.succeeded == 1
    assert failed.type == "Failed" and failed.reason == "BackoffLimitExceeded"

    pods = {p.metadata.labels["job-name"]: p for p in core.list_namespaced_pod(namespace).items}
    assert pods["works"].status.phase == "Succeeded"
    assert pods["breaks"].status.phase == "Failed"
    ok = pods["works"].status.container_statuses[0].state.terminated
    bad = pods["breaks"].status.container_statuses[0].state.terminated
    assert (ok.exit_code, ok.reason) == (0, "Completed")
    assert (bad.exit_code, bad.reason) == (1, "Error")
    assert pods["breaks"].status.container_statuses[0].restart_count == 0, "restartPolicy Never"
    ready = next(c for c in pods["works"].status.conditions if c.type == "Ready")
    assert ready.status == "False" and ready.reason == "PodCompleted"


def test_init_containers_run_in_order_before_the_containers(
    kube_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_client)
    log = "/shared/order"

    def step(name: str, code: str) -> dict[str, Any]:
        return {"name": name, "image": IMAGE, "command": ["python3", "-c", code],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}

    write = f"open('{log}', 'a').write"
    body = pod_body("ordered", [step("main", f"{write}('main\\n'); import time; time.sleep(3600)")],
                    initContainers=[step("first", f"{write}('first\\n')"),
                                    step("second", f"import time; time.sleep(1); {write}('second\\n')")],
                    volumes=[{"name": "shared", "hostPath": {"path": str(tmp_path)}}])
    core.create_namespaced_pod(namespace, body)
    seen = wait_until(lambda: (p := read_pod(core, namespace, "ordered")).status.init_container_statuses and
                      p.status.init_container_statuses[0].state.terminated and p, timeout=20, what="first done")
    assert seen.status.phase == "Pending"
    assert next(c for c in seen.status.conditions if c.type == "Initialized").status == "False"
    wait_until(lambda: read_pod(core, namespace, "ordered").status.phase == "Running", timeout=20, what="Running")
    wait_until(lambda: (tmp_path / "order").exists() and (tmp_path / "order").read_text().count("\n") == 3,
               timeout=10, what="three lines")
    assert (tmp_path / "order").read_text() == "first\nsecond\nmain\n"
    pod = read_pod(core, namespace, "ordered")
    assert next(c for c in pod.status.conditions if c.type == "Initialized").status == "True"
    assert [s.state.terminated.reason for s in pod.status.init_container_statuses] == ["Completed", "Completed"]


def test_a_failing_init_container_fails_a_never_restarting_pod(kube_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    body = pod_body("doomed", [{"name": "main", "image": IMAGE, "command": ["python3", "-c", "pass"]}],
                    restartPolicy="Never",
                    initContainers=[{"name": "setup", "image": IMAGE,
                                     "command": ["python3", "-c", "raise SystemExit(2)"]}])
    core.create_namespaced_pod(namespace, body)
    pod = wait_until(lambda: (p := read_pod(core, namespace, "doomed")).status.phase == "Failed" and p, timeout=20,
                     what="phase Failed")
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 2
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing", "main never ran"


def test_container_output_goes_to_the_pods_log_files_and_kubectl_logs(
    kube_client: client.ApiClient, namespace: str
) -> None:
    from nodepods import PODS_DIR

    core = client.CoreV1Api(kube_client)
    code = "import sys; print('to stdout', flush=True); print('to stderr', file=sys.stderr); sys.exit(1)"
    body = pod_body("talker", [{"name": "talk", "image": IMAGE, "command": ["python3", "-c", code]}],
                    restartPolicy="OnFailure")
    core.create_namespaced_pod(namespace, body)
    wait_until(lambda: (s := read_pod(core, namespace, "talker").status.container_statuses) and
               s[0].state.waiting and s[0].state.waiting.reason == "CrashLoopBackOff", timeout=20,
               what="the second run ended too (back-off)")
    uid = read_pod(core, namespace, "talker").metadata.uid
    logs = PODS_DIR / f"{namespace}_talker_{uid}" / "logs" / "talk"
    assert (logs / "0.log").read_text() == "to stdout\nto stderr\n"
    assert (logs / "1.log").exists(), "each run has its own file"
    assert core.read_namespaced_pod_log("talker", namespace, previous=True) == "to stdout\nto stderr\n"
    assert core.read_namespaced_pod_log("talker", namespace, tail_lines=1) == "to stderr\n"
