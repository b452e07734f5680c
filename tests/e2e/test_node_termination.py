"""Termination of process-backed pods as a kubelet does it: not ready at once, preStop, SIGTERM, SIGKILL
after the grace period, the pod object deleted only once the processes are gone; nothing left running
after a namespace is deleted; a restart of the node restarts the pods whose processes died with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kubernetes import client
from kubesetup import wait_for_token
from nodepods import get, is_ready, pod_body, pod_processes, read_pod, web_container
from waiting import wait_until

NOTE = "import sys, time; open('/record/events', 'a').write(f'{time.time():.3f} preStop\\n'); time.sleep(1.5)"


def _recording_pod(name: str, record: Path, **env: str) -> dict:  # type: ignore[type-arg]
    container = web_container(env={"RECORD": "/record/events", **env})
    container["volumeMounts"] = [{"name": "record", "mountPath": "/record"}]
    container["lifecycle"] = {"preStop": {"exec": {"command": ["python3", "-c", NOTE]}}}
    return pod_body(name, [container], volumes=[{"name": "record", "hostPath": {"path": str(record)}}])


def _events(record: Path) -> list[str]:
    return [line.split()[1] for line in (record / "events").read_text().splitlines()]


def _pid(pod: client.V1Pod) -> int:
    return int(pod.status.container_statuses[0].container_id.removeprefix("local://"))


def _gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    return read_pod(core, namespace, name) is None


def test_deletion_runs_pre_stop_then_sigterm_and_the_pod_goes_when_the_process_is_gone(
    kube_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod(namespace, _recording_pod("web", tmp_path))
    pod = wait_until(lambda: is_ready(p := read_pod(core, namespace, "web")) and p, timeout=30, what="ready")
    pid = _pid(pod)
    began = time.monotonic()
    core.delete_namespaced_pod("web", namespace)
    unready = wait_until(lambda: (p := read_pod(core, namespace, "web")) and not is_ready(p) and p, timeout=5,
                         what="not ready while terminating")
    assert unready.metadata.deletion_timestamp is not None
    assert Path(f"/proc/{pid}").exists(), "still running during preStop"
    wait_until(lambda: _gone(core, namespace, "web"), timeout=15, what="pod deleted")
    took = time.monotonic() - began
    assert not Path(f"/proc/{pid}").exists(), "the pod object went before its process"
    assert _events(tmp_path) == ["listening", "preStop", "SIGTERM"]
    assert 1.5 <= took < 10, f"preStop takes 1.5s, the server exits on SIGTERM: took {took:.1f}s"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    kube_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_client)
    body = _recording_pod("stubborn", tmp_path, IGNORE_TERM="1")
    body["spec"]["terminationGracePeriodSeconds"] = 30
    core.create_namespaced_pod(namespace, body)
    pod = wait_until(lambda: is_ready(p := read_pod(core, namespace, "stubborn")) and p, timeout=30, what="ready")
    pid = _pid(pod)
    began = time.monotonic()
    core.delete_namespaced_pod("stubborn", namespace, grace_period_seconds=4)  # overrides the pod's 30s
    wait_until(lambda: "SIGTERM" in _events(tmp_path), timeout=10, what="SIGTERM delivered")
    assert Path(f"/proc/{pid}").exists(), "SIGTERM is ignored: still running"
    wait_until(lambda: _gone(core, namespace, "stubborn"), timeout=20, what="pod deleted")
    took = time.monotonic() - began
    assert not Path(f"/proc/{pid}").exists()
    assert 3.5 <= took < 12, f"SIGKILL comes when the 4s grace period (preStop included) ends: took {took:.1f}s"
    assert _events(tmp_path) == ["listening", "preStop", "SIGTERM"]


def test_no_process_is_left_once_the_namespace_is_gone(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    namespace = f"t-node-leftovers-{os.getpid()}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"bluegreen.dev/test": "true"}}})
    wait_for_token(core, namespace)
    escaping = web_container()
    escaping["command"] = ["sh", "-c", 'setsid sleep 600 & exec python3 -c "$SERVER"']
    escaping["env"].append({"name": "SERVER", "value": web_container()["command"][2]})
    for name, container in (("plain", web_container()), ("escaping", escaping)):
        core.create_namespaced_pod(namespace, pod_body(name, [container]))
    wait_until(lambda: all(is_ready(read_pod(core, namespace, n)) for n in ("plain", "escaping")), timeout=30,
               what="both pods ready")
    assert len(pod_processes(namespace)) >= 3, "two servers and the escaped sleep carry the marker"
    core.delete_namespaced_pod("escaping", namespace, grace_period_seconds=0)  # forced: the object goes first
    wait_until(lambda: not [p for p in pod_processes(namespace) if _in_pod(p, "escaping")], timeout=10,
               what="the force-deleted pod's processes killed (2s after SIGTERM at most)")
    core.delete_namespace(namespace)
    wait_until(lambda: not any(n.metadata.name == namespace for n in core.list_namespace().items), timeout=60,
               what="namespace gone")
    assert pod_processes(namespace) == [], "a pod process outlived its namespace"


def _in_pod(pid: int, name: str) -> bool:
    try:
        return f"_{name}_".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def test_a_restart_of_the_node_restarts_pods_whose_processes_are_gone(
    kube_client: client.ApiClient, namespace: str
) -> None:
    import controlplane  # the local control plane's own module (tests/cluster on sys.path)

    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod(namespace, pod_body("web", [web_container()]))
    pod = wait_until(lambda: is_ready(p := read_pod(core, namespace, "web")) and p, timeout=30, what="ready")
    simnode = controlplane.pid_of("simnode")
    assert simnode is not None, "these tests need the local control plane's node"
    os.kill(simnode, signal.SIGTERM)
    wait_until(lambda: controlplane.pid_of("simnode") is None, timeout=15, what="simnode stopped")
    assert pod_processes(namespace) == [], "the pod's processes die with the node"
    controlplane.start(next(c for c in controlplane.components() if c.name == "simnode"))

    def restarted() -> client.V1ContainerStatus | None:
        status = read_pod(core, namespace, "web").status.container_statuses[0]
        return status if status.restart_count == 1 and status.ready else None

    status = wait_until(restarted, timeout=30, what="restartCount 1 and ready after the node restarted")
    assert status.container_id != pod.status.container_statuses[0].container_id
    assert read_pod(core, namespace, "web").status.pod_ip == pod.status.pod_ip, "the pod keeps its IP"
    assert get(pod.status.pod_ip, "/healthz")[0] == 200


def test_post_start_hooks_run_and_a_failing_one_kills_the_container(
    kube_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_client)
    sleeper = ["python3", "-c", "import time; time.sleep(3600)"]
    note = ["python3", "-c", "open('/record/events', 'a').write('0 postStart\\n')"]

    def pod(name: str, hook: list[str]) -> dict:  # type: ignore[type-arg]
        container = {"name": "app", "image": "local/python:3", "command": sleeper,
                     "lifecycle": {"postStart": {"exec": {"command": hook}}},
                     "volumeMounts": [{"name": "record", "mountPath": "/record"}]}
        return pod_body(name, [container], restartPolicy="Never", terminationGracePeriodSeconds=2,
                        volumes=[{"name": "record", "hostPath": {"path": str(tmp_path)}}])

    core.create_namespaced_pod(namespace, pod("hooked", note))
    core.create_namespaced_pod(namespace, pod("broken", ["python3", "-c", "raise SystemExit(4)"]))
    wait_until(lambda: _events(tmp_path) if (tmp_path / "events").exists() else None, timeout=20,
               what="the postStart hook's note")
    assert _events(tmp_path) == ["postStart"]
    wait_until(lambda: (s := read_pod(core, namespace, "hooked").status.container_statuses) and s[0].state.running,
               timeout=10, what="the hooked container running")
    failed = wait_until(lambda: (p := read_pod(core, namespace, "broken")).status.phase == "Failed" and p,
                        timeout=20, what="the pod with the failing hook Failed")
    terminated = failed.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 143, "killed by SIGTERM: 128 + 15"
    assert terminated.message.startswith("PostStartHookError: ")
