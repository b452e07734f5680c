"""Process-backed pods on the local node: real readiness, liveness and startup probes, restarts with
exit codes and crash-loop back-off, as a kubelet reports them."""

from __future__ import annotations

import ipaddress
import os
import time

from kubernetes import client
from nodepods import IMAGE, get, is_ready, pod_body, read_pod, ready_addresses, web_container
from waiting import stays, wait_until

POD_CIDR = ipaddress.ip_network(os.environ.get("BLUEGREEN_POD_CIDR", "127.244.0.0/16"))  # the node's


def test_deployment_is_available_only_once_its_readiness_probes_pass(
    kube_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [web_container(env={"READY": "0"})]}}}})

    def serving_pods() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        up = [p for p in pods if p.status.pod_ip and _answers(p.status.pod_ip)]
        return up if len(up) == 2 else []

    pods = wait_until(serving_pods, timeout=30, what="2 pods whose servers answer")
    assert len({p.status.pod_ip for p in pods}) == 2
    assert all(ipaddress.ip_address(p.status.pod_ip) in POD_CIDR for p in pods)
    # The processes run and answer, but /healthz says 503: nothing may become ready.
    stays(lambda: not apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas,
          seconds=3, what="no ready replica while /healthz fails")
    assert all(not is_ready(read_pod(core, namespace, p.metadata.name)) for p in pods)

    get(pods[0].status.pod_ip, "/ready")
    wait_until(lambda: apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas == 1,
               timeout=10, what="1 ready replica after one pod's probe passes")
    assert is_ready(read_pod(core, namespace, pods[0].metadata.name))
    assert not is_ready(read_pod(core, namespace, pods[1].metadata.name))
    get(pods[1].status.pod_ip, "/ready")
    status = wait_until(lambda: (s := apps.read_namespaced_deployment_status("web", namespace).status)
                        .available_replicas == 2 and s, timeout=10, what="2 available replicas")
    assert status.ready_replicas == 2


def _answers(ip: str) -> bool:
    try:
        return get(ip, "/")[0] == 200
    except OSError:
        return False


def test_a_pod_whose_readiness_fails_leaves_the_endpoints_and_comes_back(
    kube_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_service(namespace, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    for name in ("web-a", "web-b"):
        core.create_namespaced_pod(namespace, pod_body(name, [web_container()], labels={"app": "web"}))
    pods = wait_until(lambda: [p for n in ("web-a", "web-b") if is_ready(p := read_pod(core, namespace, n))]
                      if all(is_ready(read_pod(core, namespace, n)) for n in ("web-a", "web-b")) else None,
                      timeout=30, what="both pods ready")
    ips = {p.metadata.name: p.status.pod_ip for p in pods}
    wait_until(lambda: ready_addresses(core, namespace, "web")[0] == set(ips.values()), timeout=10,
               what="both pods in the Endpoints")
    ready_since = _ready_condition(core, namespace, "web-a").last_transition_time

    get(ips["web-a"], "/fail")
    wait_until(lambda: ready_addresses(core, namespace, "web") == ({ips["web-b"]}, {ips["web-a"]}), timeout=10,
               what="web-a moved to the not-ready addresses")
    unready = _ready_condition(core, namespace, "web-a")
    assert unready.status == "False" and unready.reason == "ContainersNotReady"
    assert unready.last_transition_time >= ready_since
    assert read_pod(core, namespace, "web-a").status.container_statuses[0].restart_count == 0

    get(ips["web-a"], "/recover")
    wait_until(lambda: ready_addresses(core, namespace, "web") == (set(ips.values()), set()), timeout=10,
               what="web-a back in the ready addresses")
    again = _ready_condition(core, namespace, "web-a")
    assert again.status == "True" and again.last_transition_time >= unready.last_transition_time


def _ready_condition(core: client.CoreV1Api, namespace: str, name: str) -> client.V1PodCondition:
    pod = read_pod(core, namespace, name)
    return next(c for c in pod.status.conditions if c.type == "Ready")


def test_a_failing_liveness_probe_restarts_the_container(kube_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    liveness = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    core.create_namespaced_pod(namespace, pod_body("web", [web_container(livenessProbe=liveness)],
                                                   terminationGracePeriodSeconds=5))
    pod = wait_until(lambda: is_ready(p := read_pod(core, namespace, "web")) and p, timeout=30, what="ready")
    first_id = pod.status.container_statuses[0].container_id
    get(pod.status.pod_ip, "/fail")

    def restarted() -> client.V1ContainerStatus | None:
        status = read_pod(core, namespace, "web").status.container_statuses[0]
        return status if status.restart_count == 1 and status.ready else None

    status = wait_until(restarted, timeout=20, what="restartCount 1 and ready again")
    assert status.container_id != first_id
    terminated = status.last_state.terminated
    assert terminated is not None and terminated.exit_code == 0, "the server exits 0 on SIGTERM"
    assert terminated.reason == "Completed"
    assert get(pod.status.pod_ip, "/healthz")[0] == 200, "the new process starts healthy"


def test_a_startup_probe_gates_readiness(kube_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    startup = {"exec": {"command": ["test", "-e", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 30}
    container = web_container(startupProbe=startup, env={"PORT": "8080"})
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    core.create_namespaced_pod(namespace, pod_body("web", [container], volumes=[{"name": "tmp", "emptyDir": {}}]))
    pod = wait_until(lambda: (p := read_pod(core, namespace, "web")) and p.status.pod_ip and
                     _answers(p.status.pod_ip) and p, timeout=30, what="the server answering")
    stays(lambda: not is_ready(read_pod(core, namespace, "web")), seconds=2, what="not ready before started")
    assert read_pod(core, namespace, "web").status.container_statuses[0].started is False
    (_pod_dir(pod) / "volumes" / "tmp" / "started").write_text("")  # the container sees it at /tmp/started
    wait_until(lambda: is_ready(read_pod(core, namespace, "web")), timeout=10, what="ready once started")
    assert read_pod(core, namespace, "web").status.container_statuses[0].started is True


def _pod_dir(pod: client.V1Pod):  # type: ignore[no-untyped-def]
    from nodepods import PODS_DIR

    return PODS_DIR / f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid}"


def test_a_crashing_container_reports_its_exit_and_backs_off(kube_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    container = {"name": "crash", "image": IMAGE, "command": ["python3", "-c", "import sys; sys.exit(3)"]}
    core.create_namespaced_pod(namespace, pod_body("crash", [container]))

    def backing_off() -> client.V1ContainerStatus | None:
        statuses = read_pod(core, namespace, "crash").status.container_statuses or []
        waiting = statuses and statuses[0].state.waiting
        return statuses[0] if waiting and waiting.reason == "CrashLoopBackOff" else None

    status = wait_until(backing_off, timeout=20, what="CrashLoopBackOff")
    assert status.restart_count == 1, "the first restart is immediate, the second waits 10s"
    assert status.last_state.terminated.exit_code == 3
    assert status.last_state.terminated.reason == "Error"
    assert "back-off 10s" in status.state.waiting.message
    assert status.last_state.terminated.finished_at >= status.last_state.terminated.started_at
    time.sleep(2)
    assert read_pod(core, namespace, "crash").status.container_statuses[0].restart_count == 1, "still backing off"


def test_a_multi_container_pod_is_ready_only_when_every_container_is(
    kube_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    second = web_container("side", env={"PORT": "8081"})
    second["ports"] = [{"name": "http", "containerPort": 8081}]
    core.create_namespaced_pod(namespace, pod_body("duo", [web_container("main"), second]))
    pod = wait_until(lambda: is_ready(p := read_pod(core, namespace, "duo")) and p, timeout=30, what="ready")
    assert {s.name: s.ready for s in pod.status.container_statuses} == {"main": True, "side": True}
    get(pod.status.pod_ip, "/fail", port=8081)

    def side_unready() -> client.V1Pod | None:
        p = read_pod(core, namespace, "duo")
        return p if not is_ready(p) else None

    pod = wait_until(side_unready, timeout=10, what="the pod unready with one container failing")
    assert {s.name: s.ready for s in pod.status.container_statuses} == {"main": True, "side": False}
    ready = next(c for c in pod.status.conditions if c.type == "ContainersReady")
    assert ready.message == "containers with unready status: [side]"
    assert get(pod.status.pod_ip, "/healthz")[0] == 200, "both containers share the pod IP"
