"""Start and stop the local Kubernetes control plane used by the tests and the demo.

``up`` installs what is missing, builds (or reuses) kube-apiserver and kube-controller-manager v1.20.2,
then starts on loopback: etcd (TLS, client certificates), kube-apiserver (TLS, token authentication,
``--authorization-mode=Node,RBAC``, service-account token signing), kube-controller-manager (each controller
with its own service-account credentials) and the simulated node (``simnode.py``). It waits until the
API server is ready, the controllers work and the node is Ready, writes an admin kubeconfig and prints
``export KUBECONFIG=<path>`` as its last line. Running ``up`` again while everything runs only prints that
line. ``down`` stops exactly the processes ``up`` started, by the pids it recorded.

State lives in ``$BLUEGREEN_CLUSTER_DIR`` (default ``~/.cache/bluegreen/cluster``); ports can be moved
with ``BLUEGREEN_APISERVER_PORT`` (16443), ``BLUEGREEN_ETCD_PORT`` (23790) and ``BLUEGREEN_ETCD_PEER_PORT``
(23800). Each ``up`` after a ``down`` starts from an empty etcd; certificates and tokens are kept, so a
kubeconfig stays valid.

kube-apiserver writes an audit log, ``logs/audit.log`` in the state dir (JSON lines, rotated at 64 MB,
4 old files kept as ``audit-<time>.log``; the file appears with the first recorded request), with the
policy in ``audit-policy.yaml`` next to this file: only requests by ServiceAccounts outside kube-system, at
Metadata level (user, verb, resource, namespace, name, response code; no bodies), without the
RequestReceived stage. The controllers and the simulated node are not recorded. The operator runs under
such a ServiceAccount in the e2e tests and the benchmarks, so its API requests can be counted exactly, by
verb and resource: one ``ResponseComplete`` line per request (a watch is written only when it ends, with a
``ResponseStarted`` line beside it), e.g. ``jq -r 'select(.stage == "ResponseComplete") | [.verb,
.objectRef.resource] | @tsv' logs/audit.log | sort | uniq -c``. ``benchmarks/scale.py`` counts them per
idle release.

Usage: ``python tests/cluster/controlplane.py up|down|status``
"""

from __future__ import annotations

import json
import os
import secrets
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

HERE = Path(__file__).resolve().parent
K8S_VERSION = "v1.20.2"
CACHE = Path(os.environ.get("BLUEGREEN_CACHE", Path.home() / ".cache" / "bluegreen"))
BIN = CACHE / f"k8s-{K8S_VERSION}" / "bin"
STATE = Path(os.environ.get("BLUEGREEN_CLUSTER_DIR", CACHE / "cluster"))
APISERVER_PORT = int(os.environ.get("BLUEGREEN_APISERVER_PORT", "16443"))
ETCD_PORT = int(os.environ.get("BLUEGREEN_ETCD_PORT", "23790"))
ETCD_PEER_PORT = int(os.environ.get("BLUEGREEN_ETCD_PEER_PORT", "23800"))
SERVICE_CIDR = "10.96.0.0/16"
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
}


def say(message: str) -> None:
    print(f"cluster: {message}", flush=True)


# ---- certificates, tokens and kubeconfigs --------------------------------------------------------
def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue_cert(name: str, subject: str, sans: str, usage: str) -> None:
    """Sign ``pki/<name>.crt`` with the local CA."""
    key, csr, crt, ext = (PKI / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text(
        f"subjectAltName={sans}\nextendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n"
        if sans
        else f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    openssl("genrsa", "-out", str(key), "2048")
    openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(PKI / "ca.crt"),
        "-CAkey",
        str(PKI / "ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-sha256",
        "-extfile",
        str(ext),
        "-out",
        str(crt),
    )
    csr.unlink()
    ext.unlink()


def ensure_pki() -> None:
    """Create the CA, serving and client certificates, the service-account key pair and tokens once."""
    if (PKI / "complete").exists():
        return
    say("creating certificates and tokens")
    shutil.rmtree(PKI, ignore_errors=True)
    PKI.mkdir(parents=True)
    os.chmod(PKI, 0o700)
    openssl("genrsa", "-out", str(PKI / "ca.key"), "2048")
    openssl(
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        str(PKI / "ca.key"),
        "-subj",
        "/CN=bluegreen-local-ca",
        "-days",
        "3650",
        "-sha256",
        "-out",
        str(PKI / "ca.crt"),
    )
    issue_cert(
        "apiserver",
        "/CN=kube-apiserver",
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1",
        "serverAuth",
    )
    issue_cert("etcd-server", "/CN=etcd", "DNS:localhost,IP:127.0.0.1", "serverAuth,clientAuth")
    issue_cert("etcd-client", "/CN=kube-apiserver-etcd-client", "", "clientAuth")
    openssl("genrsa", "-out", str(PKI / "sa.key"), "2048")
    openssl("rsa", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))
    tokens = {name: secrets.token_hex(24) for name in IDENTITIES}
    lines = []
    for name, (user, groups) in IDENTITIES.items():
        lines.append(f"{tokens[name]},{user},{user}" + (f',"{groups}"' if groups else ""))
        write_kubeconfig(PKI / f"{name}.kubeconfig", user, tokens[name])
    (PKI / "tokens.csv").write_text("\n".join(lines) + "\n")
    for path in PKI.iterdir():
        os.chmod(path, 0o600)
    (PKI / "complete").write_text("ok\n")


def write_kubeconfig(path: Path, user: str, token: str) -> None:
    """A kubeconfig (JSON is valid YAML) for one token identity against the local API server."""
    ca = (PKI / "ca.crt").resolve()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "bluegreen-local",
        "clusters": [
            {"name": "bluegreen-local", "cluster": {"server": SERVER, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "bluegreen-local", "context": {"cluster": "bluegreen-local", "user": user}}],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    os.chmod(path, 0o600)


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
                "--allow-privileged=true",
                "--enable-admission-plugins=NodeRestriction",
                "--profiling=false",
                f"--audit-policy-file={HERE / 'audit-policy.yaml'}",
                f"--audit-log-path={LOGS / 'audit.log'}",
                "--audit-log-format=json",
                "--audit-log-maxsize=64",
                "--audit-log-maxbackup=4",
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
        Component(
            "simnode",
            [
                sys.executable,
                str(HERE / "simnode.py"),
                f"--node-name={NODE_NAME}",
                f"--node-kubeconfig={pki}/node.kubeconfig",
                f"--scheduler-kubeconfig={pki}/scheduler.kubeconfig",
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
def api_get(path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    request = urllib.request.Request(SERVER + path, headers={"Authorization": f"Bearer {admin_token()}"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


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


# ---- commands ------------------------------------------------------------------------------------
def up() -> None:
    started_at = time.time()
    if (PKI / "complete").exists() and healthy():
        print(f"export KUBECONFIG={ADMIN_KUBECONFIG}")
        return
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
    say("starting kube-controller-manager and the simulated node")
    start(by_name["kube-controller-manager"])
    start(by_name["simnode"])
    wait_for("the controllers (default service account token)", default_account_ready, deadline)
    wait_for(f"node {NODE_NAME} Ready", node_ready, deadline)
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
        return 0
    if command == "status":
        return status()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
