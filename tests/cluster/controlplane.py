"""Start and stop the local Kubernetes control plane used by the tests and the demo.

``up`` installs what is missing, builds (or reuses) kube-apiserver and kube-controller-manager v1.20.2,
then starts on loopback: etcd (TLS, client certificates), kube-apiserver (TLS, token authentication,
``--authorization-mode=Node,RBAC``, service-account token signing), kube-controller-manager (each controller
with its own service-account credentials), the service proxy (``serviceproxy.py``, a kube-proxy stand-in:
ClusterIPs are loopback addresses from ``$BLUEGREEN_SERVICE_CIDR``, default 127.96.0.0/16, and each
Service answers at ``clusterIP:port``) and the simulated node (``simnode.py``). It waits until the
API server is ready, the controllers work, the node is Ready and the ``kubernetes`` Service answers through
the proxy, writes an admin kubeconfig and prints ``export KUBECONFIG=<path>`` as its last line. Running
``up`` again while everything runs (with the same certificates and tokens) only prints that line. ``down``
stops exactly the processes ``up`` started, by the pids it recorded.

State lives in ``$BLUEGREEN_CLUSTER_DIR`` (default ``~/.cache/bluegreen/cluster``); ports can be moved
with ``BLUEGREEN_APISERVER_PORT`` (16443), ``BLUEGREEN_ETCD_PORT`` (23790) and ``BLUEGREEN_ETCD_PEER_PORT``
(23800). Each ``up`` after a ``down`` starts from an empty etcd; certificates and tokens are kept, so a
kubeconfig stays valid (``pki.py``).

Usage: ``python tests/cluster/controlplane.py up|down|status``
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pki as certificates

HERE = Path(__file__).resolve().parent
K8S_VERSION = "v1.20.2"
K8S_BUILD = f"{K8S_VERSION}-loopback1"  # build.sh: upstream plus the loopback-Endpoints patch
CACHE = Path(os.environ.get("BLUEGREEN_CACHE", Path.home() / ".cache" / "bluegreen"))
BIN = CACHE / f"k8s-{K8S_BUILD}" / "bin"
STATE = Path(os.environ.get("BLUEGREEN_CLUSTER_DIR", CACHE / "cluster"))
APISERVER_PORT = int(os.environ.get("BLUEGREEN_APISERVER_PORT", "16443"))
ETCD_PORT = int(os.environ.get("BLUEGREEN_ETCD_PORT", "23790"))
ETCD_PEER_PORT = int(os.environ.get("BLUEGREEN_ETCD_PEER_PORT", "23800"))
SERVICE_CIDR = os.environ.get("BLUEGREEN_SERVICE_CIDR", "127.96.0.0/16")  # ClusterIPs: loopback addresses
KUBERNETES_SERVICE_IP = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))  # the `kubernetes` Service
NODE_NAME = "bluegreen-node"
START_TIMEOUT = 120.0

PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
ADMIN_KUBECONFIG = STATE / "kubeconfig"
SERVER = f"https://127.0.0.1:{APISERVER_PORT}"

# name -> (token user, groups); the token values are generated once per state dir.
IDENTITIES = {
    "admin": ("admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "node": (f"system:node:{NODE_NAME}", "system:nodes"),
    "proxy": ("system:kube-proxy", ""),  # bound to ClusterRole system:node-proxier by the bootstrap policy
}
APISERVER_SANS = certificates.apiserver_sans(KUBERNETES_SERVICE_IP)


def say(message: str) -> None:
    print(f"cluster: {message}", flush=True)


# ---- certificates, tokens and kubeconfigs --------------------------------------------------------
def ensure_pki() -> None:
    certificates.ensure_pki(PKI, IDENTITIES, APISERVER_SANS, SERVER)


def admin_token() -> str:
    return str(json.loads((PKI / "admin.kubeconfig").read_text())["users"][0]["user"]["token"])


# ---- processes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]


def components() -> list[Component]:
    pki = str(PKI)
    etcd_url = f"https://127.0.0.1:{ETCD_PORT}"
    peer_url = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return [
        Component(
            "etcd",
            [
                "etcd",
                "--name=bluegreen",
                f"--data-dir={STATE / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=bluegreen={peer_url}",
                "--initial-cluster-state=new",
                f"--cert-file={pki}/etcd-server.crt",
                f"--key-file={pki}/etcd-server.key",
                "--client-cert-auth",
                f"--trusted-ca-file={pki}/ca.crt",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        ),
        Component(
            "kube-apiserver",
            [
                str(BIN / "kube-apiserver"),
                "--advertise-address=127.0.0.1",
                "--bind-address=127.0.0.1",
                f"--secure-port={APISERVER_PORT}",
                "--insecure-port=0",
                f"--etcd-servers={etcd_url}",
                f"--etcd-cafile={pki}/ca.crt",
                f"--etcd-certfile={pki}/etcd-client.crt",
                f"--etcd-keyfile={pki}/etcd-client.key",
                f"--tls-cert-file={pki}/apiserver.crt",
                f"--tls-private-key-file={pki}/apiserver.key",
                f"--client-ca-file={pki}/ca.crt",
                f"--token-auth-file={pki}/tokens.csv",
                "--authorization-mode=Node,RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki}/sa.pub",
                f"--service-account-signing-key-file={pki}/sa.key",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",  # loopback Endpoints are invalid: up publishes an EndpointSlice
                "--allow-privileged=true",
                "--enable-admission-plugins=NodeRestriction",
                "--kubelet-preferred-address-types=InternalIP",  # kubectl logs: the node's log server
                "--profiling=false",
                "--v=1",
            ],
        ),
        Component(
            "kube-controller-manager",
            [
                str(BIN / "kube-controller-manager"),
                f"--kubeconfig={pki}/controller-manager.kubeconfig",
                f"--authentication-kubeconfig={pki}/controller-manager.kubeconfig",
                f"--authorization-kubeconfig={pki}/controller-manager.kubeconfig",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--root-ca-file={pki}/ca.crt",
                f"--service-account-private-key-file={pki}/sa.key",
                f"--cluster-signing-cert-file={pki}/ca.crt",
                f"--cluster-signing-key-file={pki}/ca.key",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--port=0",
                "--profiling=false",
                "--v=1",
            ],
        ),
        Component("serviceproxy", [sys.executable, str(HERE / "serviceproxy.py"), f"--kubeconfig={pki}/proxy.kubeconfig"]),  # noqa: E501
        Component(
            "simnode",
            [
                sys.executable,
                str(HERE / "simnode.py"),
                f"--node-name={NODE_NAME}",
                f"--node-kubeconfig={pki}/node.kubeconfig",
                f"--scheduler-kubeconfig={pki}/scheduler.kubeconfig",
                f"--state-dir={STATE}",
            ],
        ),
    ]


def pid_of(name: str) -> int | None:
    """The recorded pid of a component if that process is still the one we started."""
    path = PIDS / f"{name}.pid"
    try:
        pid, started = path.read_text().split()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # field 22 of /proc/<pid>/stat is the start time: guards against a recycled pid.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[19] != started or fields[0] == "Z":
        return None
    return int(pid)


def start(component: Component) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{component.name}.log", "ab") as out:
        proc = subprocess.Popen(
            component.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=STATE,
        )
    stat = Path(f"/proc/{proc.pid}/stat").read_text()
    started = stat[stat.rindex(")") + 2 :].split()[19]
    (PIDS / f"{component.name}.pid").write_text(f"{proc.pid} {started}\n")


def stop_all() -> None:
    for component in reversed(components()):
        pid = pid_of(component.name)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 15
            while pid_of(component.name) is not None and time.time() < deadline:
                time.sleep(0.1)
            if pid_of(component.name) is not None:
                os.kill(pid, signal.SIGKILL)
            say(f"stopped {component.name} (pid {pid})")
        (PIDS / f"{component.name}.pid").unlink(missing_ok=True)


# ---- readiness -----------------------------------------------------------------------------------
def api_request(
    path: str, *, method: str = "GET", body: object = None, server: str = SERVER, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One admin request (JSON ``body``); (0, b"") when the server cannot be reached."""
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    headers = {"Authorization": f"Bearer {admin_token()}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def api_get(path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    return api_request(path, timeout=timeout)


def wait_for(what: str, check: object, deadline: float) -> None:
    assert callable(check)
    while time.time() < deadline:
        if check():
            return
        for component in components():
            if pid_of(component.name) is None and (PIDS / f"{component.name}.pid").exists():
                raise SystemExit(f"cluster: {component.name} exited; see {LOGS / (component.name + '.log')}")
        time.sleep(0.2)
    raise SystemExit(f"cluster: timed out waiting for {what}; logs are in {LOGS}")


def node_ready() -> bool:
    status, body = api_get(f"/api/v1/nodes/{NODE_NAME}")
    if status != 200:
        return False
    conditions = json.loads(body).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def default_account_ready() -> bool:
    status, body = api_get("/api/v1/namespaces/default/serviceaccounts/default")
    return status == 200 and bool(json.loads(body).get("secrets"))


def healthy() -> bool:
    return all(pid_of(c.name) is not None for c in components()) and api_get("/readyz")[0] == 200


# ---- Services: loopback ClusterIPs and the service proxy ------------------------------------------
def check_service_cidr() -> None:
    """ClusterIPs must be loopback addresses: the service proxy listens on them and nothing leaves the host."""
    network = ipaddress.ip_network(SERVICE_CIDR)
    if not network.subnet_of(ipaddress.ip_network("127.0.0.0/8")) or network.prefixlen < 12:
        raise SystemExit(f"cluster: BLUEGREEN_SERVICE_CIDR={SERVICE_CIDR} must be a /12 or smaller in 127.0.0.0/8")


def publish_apiserver_endpoint() -> None:
    """Give the ``kubernetes`` Service an EndpointSlice pointing at this API server (127.0.0.1).

    The API server maintains that Service's Endpoints itself, but Endpoints validation rejects loopback
    addresses, so it never gets one here; EndpointSlices accept them, and the service proxy follows those.
    """
    body = {
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "bluegreen-controlplane",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": APISERVER_PORT, "protocol": "TCP"}],
    }
    status, text = api_request(
        "/apis/discovery.k8s.io/v1beta1/namespaces/default/endpointslices", method="POST", body=body
    )
    if status not in (201, 409):
        raise SystemExit(f"cluster: cannot create the kubernetes EndpointSlice: {status} {text[:300]!r}")


def proxy_serving() -> bool:
    """Whether the API server answers through the service proxy at the ``kubernetes`` Service's ClusterIP."""
    return api_request("/readyz", server=f"https://{KUBERNETES_SERVICE_IP}:443", timeout=2.0)[0] == 200


# ---- commands ------------------------------------------------------------------------------------
def up() -> None:
    started_at = time.time()
    if certificates.is_current(PKI, IDENTITIES, APISERVER_SANS) and healthy():
        print(f"export KUBECONFIG={ADMIN_KUBECONFIG}")
        return
    check_service_cidr()
    subprocess.run(["bash", str(HERE / "build.sh")], check=True)
    STATE.mkdir(parents=True, exist_ok=True)
    stop_all()  # a partly running cluster is restarted whole
    ensure_pki()
    shutil.rmtree(STATE / "etcd", ignore_errors=True)
    shutil.copyfile(PKI / "admin.kubeconfig", ADMIN_KUBECONFIG)
    os.chmod(ADMIN_KUBECONFIG, 0o600)
    deadline = time.time() + START_TIMEOUT
    by_name = {c.name: c for c in components()}
    say(f"starting etcd on 127.0.0.1:{ETCD_PORT}")
    start(by_name["etcd"])
    say(f"starting kube-apiserver {K8S_VERSION} on {SERVER}")
    start(by_name["kube-apiserver"])
    wait_for("kube-apiserver /readyz", lambda: api_get("/readyz")[0] == 200, deadline)
    publish_apiserver_endpoint()
    say(f"starting kube-controller-manager, the service proxy (ClusterIPs in {SERVICE_CIDR}) and the simulated node")
    start(by_name["kube-controller-manager"])
    start(by_name["serviceproxy"])
    start(by_name["simnode"])
    wait_for("the controllers (default service account token)", default_account_ready, deadline)
    wait_for(f"node {NODE_NAME} Ready", node_ready, deadline)
    wait_for(f"the service proxy (the kubernetes Service at {KUBERNETES_SERVICE_IP}:443)", proxy_serving, deadline)
    say(f"ready in {time.time() - started_at:.1f}s; logs in {LOGS}")
    print(f"export KUBECONFIG={ADMIN_KUBECONFIG}")


def status() -> int:
    for component in components():
        pid = pid_of(component.name)
        print(f"{component.name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")
    ok = (PKI / "complete").exists() and healthy()
    print(f"api server {SERVER}: {'ready' if ok else 'not ready'}")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "up":
        up()
        return 0
    if command == "down":
        stop_all()
        from kubelet.cleanup import clean_node  # standard library only

        if killed := clean_node(STATE, remove_pods=True):
            say(f"killed {killed} leftover pod processes")
        return 0
    if command == "status":
        return status()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
