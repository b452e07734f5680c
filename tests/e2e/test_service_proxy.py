"""Services answer at their ClusterIP: the local control plane's kube-proxy stand-in (serviceproxy.py).

Each test makes a selector-less Service and writes its EndpointSlice by hand, pointing at real HTTP servers
this test starts on loopback addresses (each answers with its own name), then calls ``clusterIP:port``
from this machine. EndpointSlices, not Endpoints: Endpoints validation rejects loopback addresses.
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from waiting import wait_until

SLICES = ("discovery.k8s.io", "v1beta1", "endpointslices")
_third_octets = itertools.count(random.randrange(0, 200))


class NamedServer(ThreadingHTTPServer):
    """An HTTP/1.1 server on one loopback address that answers every GET with its name."""

    daemon_threads = True

    def __init__(self, name: str, address: tuple[str, int]) -> None:
        self.name = name
        self.connections = 0
        super().__init__(address, _Answer)

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        assert isinstance(self.server, NamedServer)
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[Callable[..., NamedServer]]:
    """Factory: ``servers("a", 8080)`` starts a NamedServer named "a" at that port of a fresh loopback IP
    (or of ``ip=``); all are stopped after the test."""
    octet = next(_third_octets) % 250
    hosts = itertools.count(10)
    started: list[NamedServer] = []

    def start(name: str, port: int, ip: str | None = None) -> NamedServer:
        server = NamedServer(name, (ip or f"127.150.{octet}.{next(hosts)}", port))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


class Services:
    """Selector-less Services and their hand-written EndpointSlices in the test namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create(self, name: str, ports: list[tuple[str, int]]) -> str:
        """A Service with these (name, port) TCP ports; returns its ClusterIP."""
        spec = {"ports": [{"name": n, "port": p, "targetPort": n or p, "protocol": "TCP"} for n, p in ports]}
        created = self.core.create_namespaced_service(self.namespace, {"metadata": {"name": name}, "spec": spec})
        return str(created.spec.cluster_ip)

    def endpoints(
        self, service: str, ready: list[str], not_ready: tuple[str, ...] = (), ports: tuple[tuple[str, int], ...] = ()
    ) -> float:
        """Create or replace the Service's EndpointSlice; returns the time just before the API call."""
        body = {
            "apiVersion": "discovery.k8s.io/v1beta1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-manual",
                "labels": {"kubernetes.io/service-name": service,
                           "endpointslice.kubernetes.io/managed-by": "bluegreen-e2e"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ready]
            + [{"addresses": [ip], "conditions": {"ready": False}} for ip in not_ready],
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports or (("http", 8080),)],
        }
        started = time.monotonic()
        try:
            self.custom.patch_namespaced_custom_object(*SLICES[:2], self.namespace, SLICES[2], body["metadata"]["name"],
                                                       body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.custom.create_namespaced_custom_object(*SLICES[:2], self.namespace, SLICES[2], body)
        return started


@pytest.fixture
def services(kube_client: client.ApiClient, namespace: str) -> Services:
    return Services(kube_client, namespace)


def get(ip: str, port: int = 80, timeout: float = 2.0) -> str:
    """One GET on a new connection; the name of the server that answered."""
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def answers(ip: str, count: int, port: int = 80) -> list[str]:
    return [get(ip, port) for _ in range(count)]


def refused(ip: str, port: int = 80) -> float | None:
    """How long a refused connect took, or None if the connect was accepted."""
    started = time.monotonic()
    try:
        socket.create_connection((ip, port), timeout=2).close()
    except ConnectionRefusedError:
        return time.monotonic() - started
    return None


def wait_listening(ip: str, port: int = 80) -> None:
    """Wait until the proxy listens on ``ip:port`` (it does once the Service has a ready endpoint)."""
    wait_until(lambda: refused(ip, port) is None, timeout=5, interval=0.01, what=f"the proxy to listen on {ip}:{port}")


def test_a_request_to_the_cluster_ip_reaches_the_ready_endpoint(services: Services, servers: Any) -> None:
    a = servers("a", 8080)
    ip = services.create("web", [("http", 80)])
    assert ip.startswith("127."), f"ClusterIP {ip} is not a loopback address"
    services.endpoints("web", [a.server_address[0]])
    wait_listening(ip)
    assert answers(ip, 5) == ["a"] * 5


def test_two_ready_endpoints_are_both_reached_in_turn(services: Services, servers: Any) -> None:
    a, b = servers("a", 8080), servers("b", 8080)
    ip = services.create("web", [("http", 80)])
    services.endpoints("web", [a.server_address[0], b.server_address[0]])
    wait_listening(ip)
    wait_until(lambda: len(set(answers(ip, 2))) == 2, timeout=5, interval=0.02, what="both endpoints answering")
    seen = answers(ip, 20)
    assert seen.count("a") == seen.count("b") == 10, seen


def test_an_endpoint_that_becomes_not_ready_gets_no_new_connections(services: Services, servers: Any) -> None:
    a, b = servers("a", 8080), servers("b", 8080)
    ip = services.create("web", [("http", 80)])
    services.endpoints("web", [a.server_address[0], b.server_address[0]])
    wait_listening(ip)
    wait_until(lambda: len(set(answers(ip, 2))) == 2, timeout=5, interval=0.02, what="both endpoints answering")
    services.endpoints("web", [a.server_address[0]], not_ready=(b.server_address[0],))
    time.sleep(1.0)
    before = b.connections
    assert answers(ip, 20) == ["a"] * 20
    assert b.connections == before


def test_without_a_ready_endpoint_the_connect_is_refused_at_once(services: Services, servers: Any) -> None:
    a = servers("a", 8080)
    ip = services.create("web", [("http", 80)])
    assert (took := refused(ip)) is not None and took < 0.1, "no EndpointSlice yet: must be refused"
    services.endpoints("web", [a.server_address[0]])
    wait_listening(ip)
    services.endpoints("web", [], not_ready=(a.server_address[0],))
    took = wait_until(lambda: refused(ip), timeout=1, interval=0.01, what="connections to be refused")
    assert took < 0.1
    with pytest.raises(ConnectionRefusedError):
        get(ip)


def test_an_open_connection_stays_with_its_backend_after_the_endpoints_change(
    services: Services, servers: Any
) -> None:
    a, b = servers("a", 8080), servers("b", 8080)
    ip = services.create("web", [("http", 80)])
    services.endpoints("web", [a.server_address[0]])
    wait_listening(ip)
    kept = http.client.HTTPConnection(ip, 80, timeout=2)
    kept.request("GET", "/")
    assert kept.getresponse().read() == b"a"
    services.endpoints("web", [b.server_address[0]])
    wait_until(lambda: get(ip) == "b", timeout=1, interval=0.01, what="new connections going to b")
    connections_to_a = a.connections
    for _ in range(3):
        kept.request("GET", "/")  # the same keep-alive connection, like conntrack keeps it
        assert kept.getresponse().read() == b"a"
        assert get(ip) == "b"
    assert a.connections == connections_to_a
    kept.close()


def test_service_ports_map_to_endpoint_ports_by_name(services: Services, servers: Any) -> None:
    web = servers("web-8080", 8080)
    servers("metrics-9090", 9090, ip=web.server_address[0])  # one pod, two ports
    ip = services.create("web", [("http", 80), ("metrics", 81)])
    # listed in the other order, with other numbers: only the names tie them together
    services.endpoints("web", [web.server_address[0]], ports=(("metrics", 9090), ("http", 8080)))
    wait_listening(ip, 81)
    assert get(ip, 80) == "web-8080"
    assert get(ip, 81) == "metrics-9090"


def test_a_deleted_or_changed_service_closes_or_moves_its_listener(
    services: Services, servers: Any, kube_client: client.ApiClient, namespace: str
) -> None:
    a = servers("a", 8080)
    ip = services.create("web", [("http", 80)])
    services.endpoints("web", [a.server_address[0]])
    wait_listening(ip)
    core = client.CoreV1Api(kube_client)
    ports = [{"name": "http", "port": 8081, "targetPort": "http", "protocol": "TCP"}]
    core.patch_namespaced_service("web", namespace, [{"op": "replace", "path": "/spec/ports", "value": ports}])
    wait_until(lambda: refused(ip, 80), timeout=1, interval=0.01, what="the old port to close")
    # The new port opens once the proxy has applied the change (closing the old one comes first).
    wait_until(lambda: refused(ip, 8081) is None, timeout=1, interval=0.01, what="the new port to open")
    assert get(ip, 8081) == "a"
    core.delete_namespaced_service("web", namespace, _preload_content=False)
    wait_until(lambda: refused(ip, 8081), timeout=1, interval=0.01, what="the deleted Service's port to close")


def test_the_kubernetes_service_answers_through_the_proxy(kube_client: client.ApiClient) -> None:
    kubernetes = client.CoreV1Api(kube_client).read_namespaced_service("kubernetes", "default")
    ip, port = kubernetes.spec.cluster_ip, kubernetes.spec.ports[0].port
    assert ip.startswith("127.") and port == 443
    conf = kube_client.configuration
    context = ssl.create_default_context(cafile=conf.ssl_ca_cert)  # the serving cert names the ClusterIP
    conn = http.client.HTTPSConnection(ip, port, context=context, timeout=5)
    conn.request("GET", "/version", headers={"Authorization": conf.get_api_key_with_prefix("BearerToken")})
    response = conn.getresponse()
    assert response.status == 200 and b'"gitVersion": "v1.' in response.read()
    conn.close()


def test_the_proxy_identity_may_watch_services_and_slices_and_nothing_more(kube_client: client.ApiClient) -> None:
    authz = client.AuthorizationV1Api(kube_client)

    def allowed(verb: str, resource: str, group: str = "") -> bool:
        review = {"spec": {"user": "system:kube-proxy", "resourceAttributes": {
            "verb": verb, "resource": resource, "group": group}}}
        return bool(authz.create_subject_access_review(review).status.allowed)

    assert allowed("watch", "services") and allowed("watch", "endpointslices", "discovery.k8s.io")
    assert not allowed("create", "services") and not allowed("get", "secrets")


def test_endpoint_changes_are_followed_fast(services: Services, servers: Any) -> None:
    """From just before the EndpointSlice update to the first new connection the new table routes."""
    a, b = servers("a", 8080), servers("b", 8080)
    ip = services.create("web", [("http", 80)])
    services.endpoints("web", [a.server_address[0]])
    wait_listening(ip)
    lags = []
    for target in [b, a] * 5:
        started = services.endpoints("web", [target.server_address[0]])
        wait_until(lambda t=target: get(ip) == t.name, timeout=1, interval=0.001, what=f"{target.name} answering")
        lags.append((time.monotonic() - started) * 1000)
    print(f"\nservice proxy update latency over {len(lags)} changes: median {statistics.median(lags):.1f} ms, "
          f"max {max(lags):.1f} ms (EndpointSlice PATCH included)")
    assert max(lags) < 1000


def test_a_selector_service_reaches_its_ready_pod_through_the_endpointslice_controller(
    kube_client: client.ApiClient, namespace: str, services: Services, servers: Any
) -> None:
    """The whole path without a hand-written slice: pod status -> EndpointSlice controller -> proxy -> process.

    The pod stands on a Node object of its own (no kubelet) so that its status, with a loopback pod IP where
    a real server listens, is written by this test; the simulated node never touches it."""
    core = client.CoreV1Api(kube_client)
    pod_server = servers("pod", 8080)
    node = f"{namespace}-node"[:63]
    core.create_node({"metadata": {"name": node}})
    try:
        core.create_namespaced_service(namespace, {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}})
        ip = core.read_namespaced_service("web", namespace).spec.cluster_ip
        core.create_namespaced_pod(namespace, {"metadata": {"name": "web-0", "labels": {"app": "web"}}, "spec": {
            "nodeName": node, "containers": [{"name": "web", "image": "local/none",
                                              "ports": [{"name": "web", "containerPort": 8080}]}]}})

        def report(ready: bool) -> None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            pod_ip = pod_server.server_address[0]
            core.patch_namespaced_pod_status("web-0", namespace, {"status": {
                "phase": "Running", "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
                "conditions": [{"type": "Ready", "status": str(ready), "lastTransitionTime": stamp}]}})

        report(ready=True)
        wait_listening(ip)
        assert get(ip) == "pod"  # Service targetPort "web" resolved to the container port 8080 by the controller
        report(ready=False)
        wait_until(lambda: refused(ip), timeout=5, interval=0.01, what="the unready pod to leave the Service")
    finally:
        core.delete_namespaced_pod("web-0", namespace, grace_period_seconds=0)
        core.delete_node(node)
