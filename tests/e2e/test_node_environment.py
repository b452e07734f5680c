"""What a process-backed pod's process sees: kubelet's environment (values with $(VAR) expansion,
fieldRef, configMapKeyRef, secretKeyRef, envFrom, Service variables) and its volumes at their mountPath
(configMap, secret, projected token, downward API, emptyDir), and a missing key's
CreateContainerConfigError."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from kubernetes import client
from nodepods import IMAGE, pod_body, read_pod
from waiting import wait_until

POD_CIDR = ipaddress.ip_network(os.environ.get("BLUEGREEN_POD_CIDR", "127.244.0.0/16"))  # the node's

# Writes what the process sees (environment, argv, working directory, files under /etc/app and the token
# directory) as JSON to /report/report.json (a hostPath volume: the test's tmp dir), then sleeps.
REPORT = r"""
import json, os, socket, sys
def files(root):
    out = {}
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith("..")]
        for name in names:
            path = os.path.join(base, name)
            with open(path) as f:
                out[path] = {"text": f.read(), "mode": oct(os.stat(path).st_mode & 0o777)}
    return out
report = {"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(), "hostname": socket.gethostname(),
          "files": {**files("/etc/app"), **files("/var/run/secrets/tokens")},
          "scratch_writable": os.access("/scratch", os.W_OK), "config_writable": os.access("/etc/app/config", os.W_OK)}
with open("/report/report.tmp", "w") as out:
    json.dump(report, out)
os.rename("/report/report.tmp", "/report/report.json")
import time
time.sleep(3600)
"""


def _setup_sources(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {
        "colour": "blue", "size": "large", "app.conf": "mode=fast\n"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "data": {
        "password": base64.b64encode(b"s3cret").decode(), "user": base64.b64encode(b"admin").decode()}})
    core.create_namespaced_service(namespace, {"metadata": {"name": "backend-api"}, "spec": {
        "selector": {"app": "backend"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "grpc", "port": 9090}]}})


def _container(**extra: Any) -> dict[str, Any]:
    return {
        "name": "probe",
        "image": IMAGE,
        "command": ["python3", "-c", REPORT],
        "args": ["--colour=$(COLOUR)", "--escaped=$$(COLOUR)", "--unknown=$(NOPE)"],
        "workingDir": "/etc/app",
        "env": [
            {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "colour"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent", "optional": True}}},
            {"name": "GREETING", "value": "$(COLOUR)-$(SIZE) at $(BACKEND_API_SERVICE_HOST) $$(COLOUR)"},
            *({"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in [
                ("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("POD_UID", "metadata.uid"),
                ("POD_IP", "status.podIP"), ("HOST_IP", "status.hostIP"), ("NODE", "spec.nodeName"),
                ("ACCOUNT", "spec.serviceAccountName"), ("TIER", "metadata.labels['tier']"),
                ("OWNER", "metadata.annotations['example.com/owner']")]),
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app/config"},
            {"name": "secret", "mountPath": "/etc/app/secret"},
            {"name": "info", "mountPath": "/etc/app/info"},
            {"name": "token", "mountPath": "/var/run/secrets/tokens"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "report", "mountPath": "/report"},
        ],
        **extra,
    }


def _volumes(report_dir: Path) -> list[dict[str, Any]]:
    return [
        {"name": "config", "configMap": {"name": "settings", "items": [{"key": "app.conf", "path": "app.conf"}],
                                         "defaultMode": 0o640}},
        {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o600}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                                   {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": "bluegreen-test"}},
            {"configMap": {"name": "settings", "items": [{"key": "colour", "path": "colour"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "report", "hostPath": {"path": str(report_dir)}},
    ]


def test_the_process_sees_kubelets_environment_and_volumes(
    kube_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_client)
    _setup_sources(core, namespace)
    body = pod_body("reporter", [_container()], labels={"app": "reporter", "tier": "web"},
                    volumes=_volumes(tmp_path))
    body["metadata"]["annotations"] = {"example.com/owner": "team-a"}
    core.create_namespaced_pod(namespace, body)
    report_file = tmp_path / "report.json"
    wait_until(report_file.exists, timeout=30, what="the process's report")
    report = json.loads(report_file.read_text())
    pod = read_pod(core, namespace, "reporter")
    env = report["env"]
    service = core.read_namespaced_service("backend-api", namespace)
    kubernetes = core.read_namespaced_service("kubernetes", "default")
    ip = service.spec.cluster_ip

    assert env["COLOUR"] == "blue" and env["PASSWORD"] == "s3cret" and "MAYBE" not in env
    assert env["GREETING"] == f"blue-$(SIZE) at {ip} $(COLOUR)", "expansion: declared and Service vars, $$ escapes"
    assert (env["POD_NAME"], env["POD_NAMESPACE"], env["POD_UID"]) == ("reporter", namespace, pod.metadata.uid)
    assert env["POD_IP"] == pod.status.pod_ip and ipaddress.ip_address(env["POD_IP"]) in POD_CIDR
    assert (env["HOST_IP"], env["NODE"], env["ACCOUNT"]) == ("127.0.0.1", "bluegreen-node", "default")
    assert (env["TIER"], env["OWNER"]) == ("web", "team-a")
    assert (env["CFG_colour"], env["CFG_size"], env["user"], env["password"]) == ("blue", "large", "admin", "s3cret")
    assert "CFG_app.conf" in env, "envFrom keeps keys that are valid variable names (dots are)"
    assert env["HOSTNAME"] == "reporter" and report["hostname"] == "reporter"
    assert env["BACKEND_API_SERVICE_HOST"] == ip and env["BACKEND_API_SERVICE_PORT"] == "80"
    assert env["BACKEND_API_SERVICE_PORT_HTTP"] == "80" and env["BACKEND_API_SERVICE_PORT_GRPC"] == "9090"
    assert env["BACKEND_API_PORT"] == f"tcp://{ip}:80"
    assert env["BACKEND_API_PORT_9090_TCP_ADDR"] == ip and env["BACKEND_API_PORT_9090_TCP_PROTO"] == "tcp"
    assert env["KUBERNETES_SERVICE_HOST"] == kubernetes.spec.cluster_ip
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["PATH"].split(":")[0].endswith("/images/python/bin")
    assert report["argv"][1:] == ["--colour=blue", "--escaped=$(COLOUR)", "--unknown=$(NOPE)"]
    assert report["cwd"] == "/etc/app"

    files = report["files"]
    assert files["/etc/app/config/app.conf"] == {"text": "mode=fast\n", "mode": "0o640"}
    assert set(p for p in files if p.startswith("/etc/app/config/")) == {"/etc/app/config/app.conf"}, "items only"
    assert files["/etc/app/secret/password"] == {"text": "s3cret", "mode": "0o600"}
    assert files["/etc/app/info/name"]["text"] == "reporter"
    assert files["/etc/app/info/labels"]["text"] == 'app="reporter"\ntier="web"'
    assert files["/var/run/secrets/tokens/colour"]["text"] == "blue"
    assert files["/var/run/secrets/tokens/namespace"]["text"] == namespace
    assert report["scratch_writable"] and not report["config_writable"], "emptyDir rw, configMap read-only"
    claims = _jwt_claims(files["/var/run/secrets/tokens/token"]["text"])
    assert claims["aud"] == ["bluegreen-test"]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    assert claims["kubernetes.io"]["pod"] == {"name": "reporter", "uid": pod.metadata.uid}
    assert not Path("/etc/app/config").exists() or (Path("/etc/app/config").is_dir() and not any(
        Path("/etc/app/config").iterdir())), "the volume is not visible outside the pod"


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_a_missing_key_is_a_create_container_config_error_until_it_exists(
    kube_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"other": "x"}})
    container = {"name": "app", "image": IMAGE, "command": ["python3", "-c", "import time; time.sleep(3600)"],
                 "env": [{"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "colour"}}}]}
    core.create_namespaced_pod(namespace, pod_body("app", [container]))

    def waiting() -> client.V1ContainerStateWaiting | None:
        statuses = read_pod(core, namespace, "app").status.container_statuses or []
        state = statuses[0].state.waiting if statuses else None
        return state if state and state.reason == "CreateContainerConfigError" else None

    state = wait_until(waiting, timeout=20, what="CreateContainerConfigError")
    assert state.message == f"couldn't find key colour in ConfigMap {namespace}/settings"
    assert read_pod(core, namespace, "app").status.phase == "Pending"
    core.patch_namespaced_config_map("settings", namespace, {"data": {"colour": "green"}})
    wait_until(lambda: read_pod(core, namespace, "app").status.container_statuses[0].state.running, timeout=20,
               what="the container running once the key exists")
