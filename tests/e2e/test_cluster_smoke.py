"""The local control plane behaves like a real cluster for what the operator relies on.

Deployments roll out and report readiness after the readiness probe's delay, Services get Endpoints
of exactly the ready pods, a never-ready or crash-looping workload stays unavailable, deleted pods go
away, and RBAC denies what a ServiceAccount was not granted.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from waiting import stays, wait_until


def deployment(
    name: str,
    *,
    replicas: int,
    image: str = "registry.local/app:v1",
    delay: int | None = None,
    app: str | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
    if delay is not None:
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "initialDelaySeconds": delay}
    labels = {"app": app or name, "instance": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def pods_of(core: client.CoreV1Api, namespace: str, instance: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"instance={instance}").items


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def endpoint_ips(core: client.CoreV1Api, namespace: str, name: str) -> tuple[set[str], set[str]]:
    """(ready addresses, not-ready addresses) of a Service's Endpoints."""
    try:
        endpoints = core.read_namespaced_endpoints(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return set(), set()
        raise
    ready: set[str] = set()
    not_ready: set[str] = set()
    for subset in endpoints.subsets or []:
        ready |= {a.ip for a in subset.addresses or []}
        not_ready |= {a.ip for a in subset.not_ready_addresses or []}
    return ready, not_ready


def test_node_is_ready_with_a_fresh_lease(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    nodes = core.list_node().items
    assert nodes, "the cluster has no node"
    assert all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) for n in nodes)
    if any(n.metadata.name == "bluegreen-node" for n in nodes):
        lease = client.CoordinationV1Api(kube_client).read_namespaced_lease(
            "bluegreen-node", "kube-node-lease"
        )
        age = time.time() - lease.spec.renew_time.timestamp()
        assert age < 30, f"node lease last renewed {age:.0f}s ago"


def test_deployment_becomes_ready_only_after_the_readiness_delay(
    kube_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    created = time.monotonic()
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=3, delay=3))

    running = wait_until(
        lambda: [p for p in pods_of(core, namespace, "web") if p.status.phase == "Running"],
        timeout=30,
        what="pods running",
    )
    if time.monotonic() - created < 2.5:  # observed inside the delay window: nothing may be ready yet
        assert not any(is_ready(p) for p in running), "a pod became ready before its initialDelaySeconds"
    status = wait_until(
        lambda: (
            (d := apps.read_namespaced_deployment_status("web", namespace).status)
            and d.ready_replicas == 3
            and d.available_replicas == 3
            and d
        ),
        timeout=30,
        what="3 ready and available replicas",
    )
    assert time.monotonic() - created >= 3, "readiness came sooner than initialDelaySeconds allows"
    assert status.updated_replicas == 3
    pods = pods_of(core, namespace, "web")
    ips = [p.status.pod_ip for p in pods]
    assert len(set(ips)) == 3 and all(ips), f"pod IPs not unique: {ips}"


def test_service_endpoints_list_exactly_the_ready_pods(kube_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_service(namespace, service("shop", app="shop"))
    apps.create_namespaced_deployment(namespace, deployment("shop-ok", replicas=2, app="shop"))
    apps.create_namespaced_deployment(
        namespace, deployment("shop-bad", replicas=2, app="shop", image="registry.local/app:v2-never-ready")
    )

    def endpoints_match_pods() -> bool:
        pods = pods_of(core, namespace, "shop-ok") + pods_of(core, namespace, "shop-bad")
        ready_ips = {p.status.pod_ip for p in pods if is_ready(p)}
        unready_ips = {p.status.pod_ip for p in pods if p.status.pod_ip and not is_ready(p)}
        return (
            len(ready_ips) == 2
            and len(unready_ips) == 2
            and endpoint_ips(core, namespace, "shop") == (ready_ips, unready_ips)
        )

    wait_until(endpoints_match_pods, timeout=30, what="Endpoints = ready pods, NotReady = never-ready pods")
    ready, _ = endpoint_ips(core, namespace, "shop")
    assert ready == {p.status.pod_ip for p in pods_of(core, namespace, "shop-ok")}


def test_never_ready_deployment_stays_unavailable(kube_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    apps.create_namespaced_deployment(
        namespace, deployment("stuck", replicas=2, image="registry.local/app:never-ready")
    )
    wait_until(
        lambda: len([p for p in pods_of(core, namespace, "stuck") if p.status.phase == "Running"]) == 2,
        timeout=30,
        what="2 running pods",
    )
    stays(
        lambda: not apps.read_namespaced_deployment_status("stuck", namespace).status.ready_replicas,
        seconds=4,
        what="no ready replica",
    )
    conditions = apps.read_namespaced_deployment_status("stuck", namespace).status.conditions
    available = next(c for c in conditions if c.type == "Available")
    assert available.status == "False"


def test_crash_looping_container_restarts_and_is_never_ready(
    kube_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    apps.create_namespaced_deployment(
        namespace, deployment("crash", replicas=1, image="registry.local/app:crashloop")
    )

    def restarted() -> client.V1ContainerStatus | None:
        pods = pods_of(core, namespace, "crash")
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0] if statuses and statuses[0].restart_count >= 1 else None

    container = wait_until(restarted, timeout=30, what="a restart of the crash-looping container")
    assert container.state.waiting.reason == "CrashLoopBackOff"
    assert not container.ready
    assert not apps.read_namespaced_deployment_status("crash", namespace).status.ready_replicas


def test_deleted_pod_disappears_and_is_replaced(kube_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_service(namespace, service("api", app="api"))
    apps.create_namespaced_deployment(namespace, deployment("api", replicas=2))
    wait_until(lambda: len(endpoint_ips(core, namespace, "api")[0]) == 2, timeout=30, what="2 endpoints")
    victim = pods_of(core, namespace, "api")[0]
    core.delete_namespaced_pod(victim.metadata.name, namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod(victim.metadata.name, namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=30, what=f"pod {victim.metadata.name} deleted")
    wait_until(
        lambda: (
            (ips := endpoint_ips(core, namespace, "api")[0])
            and len(ips) == 2
            and victim.status.pod_ip not in ips
        ),
        timeout=30,
        what="Endpoints without the deleted pod",
    )


def test_rbac_denies_a_service_account_without_rights(
    kube_client: client.ApiClient, kubeconfig: str, namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    rbac = client.RbacAuthorizationV1Api(kube_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    secret_name = wait_until(
        lambda: (
            (sa := core.read_namespaced_service_account("nobody", namespace)).secrets and sa.secrets[0].name
        ),
        timeout=30,
        what="the ServiceAccount's token",
    )
    token = base64.b64decode(core.read_namespaced_secret(secret_name, namespace).data["token"]).decode()

    configuration = client.Configuration()
    configuration.host = kube_client.configuration.host
    configuration.ssl_ca_cert = kube_client.configuration.ssl_ca_cert
    configuration.verify_ssl = kube_client.configuration.verify_ssl
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as as_nobody:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(as_nobody).list_namespaced_pod(namespace)
        assert denied.value.status == 403, "the token authenticated but RBAC should forbid listing pods"

        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "nobody-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )
        wait_until(
            lambda: _allowed(lambda: client.CoreV1Api(as_nobody).list_namespaced_pod(namespace)),
            timeout=10,
            what="the granted right to take effect",
        )
        with pytest.raises(ApiException) as still_denied:
            client.CoreV1Api(as_nobody).list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def _allowed(call: Any) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True
