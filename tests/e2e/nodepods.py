"""Helpers for the e2e tests of the node's process-backed (``local/``) pods: a small stdlib HTTP server
given to ``python3 -c``, pod and Deployment bodies, and reads of pods and Endpoints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

IMAGE = "local/python:3"
STATE = Path(os.environ.get("BLUEGREEN_CLUSTER_DIR", Path.home() / ".cache" / "bluegreen" / "cluster"))
PODS_DIR = STATE / "node" / "pods"

# Serves /healthz (503 until told /ready when READY=0, and after /fail), /ready, /fail, /recover; appends
# "SIGTERM" (and other events) to $RECORD; exits on SIGTERM unless IGNORE_TERM is set.
SERVER = r"""
import http.server, os, signal, sys, time
record = os.environ.get("RECORD")
def note(what):
    if record:
        with open(record, "a") as out:
            out.write(f"{time.time():.3f} {what}\n")
healthy = [os.environ.get("READY", "1") == "1"]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/ready", "/recover"):
            healthy[0] = True
        elif self.path == "/fail":
            healthy[0] = False
        code = 503 if self.path == "/healthz" and not healthy[0] else 200
        body = f"{os.environ.get('HOSTNAME')} healthy={healthy[0]}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def on_term(*_):
    note("SIGTERM")
    if not os.environ.get("IGNORE_TERM"):
        os._exit(0)
signal.signal(signal.SIGTERM, on_term)
server = http.server.ThreadingHTTPServer((os.environ["POD_IP"], int(os.environ.get("PORT", "8080"))), Handler)
note("listening")
server.serve_forever()
"""

POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def web_container(name: str = "web", env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A container running SERVER on $POD_IP:8080 with a fast readiness probe on /healthz."""
    return {
        "name": name,
        "image": IMAGE,
        "command": ["python3", "-c", SERVER],
        "env": [POD_IP_ENV, *({"name": k, "value": v} for k, v in (env or {}).items())],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1,
                           "failureThreshold": 1},
        **extra,
    }


def pod_body(name: str, containers: list[dict[str, Any]], labels: dict[str, str] | None = None,
             **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"containers": containers, **spec}}


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def is_ready(pod: client.V1Pod | None) -> bool:
    return bool(pod) and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def ready_addresses(core: client.CoreV1Api, namespace: str, service: str) -> tuple[set[str], set[str]]:
    try:
        endpoints = core.read_namespaced_endpoints(service, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return set(), set()
        raise
    ready: set[str] = set()
    unready: set[str] = set()
    for subset in endpoints.subsets or []:
        ready |= {a.ip for a in subset.addresses or []}
        unready |= {a.ip for a in subset.not_ready_addresses or []}
    return ready, unready


def get(ip: str, path: str, port: int = 8080) -> tuple[int, str]:
    import http.client

    connection = http.client.HTTPConnection(ip, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def pod_processes(namespace: str) -> list[int]:
    """Pids of processes of the node's pods in ``namespace`` (found by the marker in their environment)."""
    from kubelet.processes import marked  # tests/cluster is on sys.path (tests/conftest.py)

    return marked(f"{PODS_DIR.resolve()}/{namespace}_")
