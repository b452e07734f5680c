"""Probes as kubelet runs them: one worker thread per probe of a running container.

A worker waits ``initialDelaySeconds`` after the container started, then probes every ``periodSeconds``
(``timeoutSeconds`` each). A result counts only after ``successThreshold`` successes or
``failureThreshold`` failures in a row (kubelet's ``prober/worker.go``); the worker reports changes only.
Readiness starts as failure, liveness as success; readiness and liveness do not run until the startup
probe (if any) succeeded, and the startup probe stops then. After a liveness or startup failure the
worker stops: the container is restarted with new workers. (Unlike kubelet 1.20, whose ticker may wait a
whole period after the delay, the first probe runs right when ``initialDelaySeconds`` has passed.)
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
            "failureThreshold": 3}
USER_AGENT = "kube-probe/1.20"

# (ok, message) from one probe run; exec probes are run by the container (in its namespaces).
Outcome = tuple[bool, str]
ExecRunner = Callable[[list[str], float], Outcome]


def settings(probe: Obj) -> dict[str, int]:
    return {key: int(probe.get(key) or default) for key, default in DEFAULTS.items()}


class Thresholds:
    """Consecutive-result counting: ``observe`` returns the new result when it changes, else None."""

    def __init__(self, kind: str, success: int, failure: int) -> None:
        self.result: bool | None = {"readiness": False, "liveness": True}.get(kind)
        self.success = success
        self.failure = failure
        self.last: bool | None = None
        self.run = 0

    def observe(self, ok: bool) -> bool | None:
        if ok == self.last:
            self.run += 1
        else:
            self.last, self.run = ok, 1
        if self.run < (self.success if ok else self.failure):
            return None
        if ok == self.result:
            return None
        self.result = ok
        return ok


def resolve_port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not declared by container {container['name']}")


def http_get(action: Obj, pod_ip: str, container: Obj, timeout: float) -> Outcome:
    """``httpGet``: a status from 200 to 399 is a success."""
    host = action.get("host") or pod_ip
    port = resolve_port(action["port"], container)
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in action.get("httpHeaders") or []})
    if (action.get("scheme") or "HTTP").upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                                             context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read(10 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"Get {host}:{port}{path}: {exc}"
    finally:
        connection.close()
    ok = 200 <= response.status < 400
    return ok, "" if ok else f"HTTP probe failed with statuscode: {response.status} {body[:200]!r}"


def tcp_socket(action: Obj, pod_ip: str, container: Obj, timeout: float) -> Outcome:
    host = action.get("host") or pod_ip
    port = resolve_port(action["port"], container)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: {exc}"


def run_handler(handler: Obj, pod_ip: str, container: Obj, timeout: float, run_exec: ExecRunner) -> Outcome:
    """Run an ``exec``, ``httpGet`` or ``tcpSocket`` handler (of a probe or a lifecycle hook)."""
    try:
        if "exec" in handler:
            return run_exec(list(handler["exec"].get("command") or []), timeout)
        if "httpGet" in handler:
            return http_get(handler["httpGet"], pod_ip, container, timeout)
        if "tcpSocket" in handler:
            return tcp_socket(handler["tcpSocket"], pod_ip, container, timeout)
    except ValueError as exc:
        return False, str(exc)
    return False, "no handler (exec, httpGet or tcpSocket)"


@dataclass
class ProbeTarget:
    """The running container a worker probes, and where it reports: ``report(kind, result, message)``."""

    container: Obj
    pod_ip: str
    started_at: float
    run_exec: ExecRunner
    report: Callable[[str, bool, str], None]
    is_started: Callable[[], bool]


class ProbeWorker(threading.Thread):
    def __init__(self, kind: str, probe: Obj, target: ProbeTarget) -> None:
        super().__init__(daemon=True, name=f"probe-{kind}-{target.container['name']}")
        self.kind = kind
        self.probe = probe
        self.options = settings(probe)
        self.target = target
        self.stopped = threading.Event()
        self.thresholds = Thresholds(kind, self.options["successThreshold"], self.options["failureThreshold"])

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        due = self.target.started_at + self.options["initialDelaySeconds"]
        period = self.options["periodSeconds"]
        while not self.stopped.wait(max(0.0, due - time.time())):
            due = max(due + period, time.time())
            if self.kind != "startup" and not self.target.is_started():
                continue
            ok, message = run_handler(self.probe, self.target.pod_ip, self.target.container,
                                      self.options["timeoutSeconds"], self.target.run_exec)
            if self.stopped.is_set():
                return
            changed = self.thresholds.observe(ok)
            if changed is not None:
                self.target.report(self.kind, changed, message)
                if not changed and self.kind in ("liveness", "startup"):
                    return  # on hold: the container is restarted, with new workers
                if changed and self.kind == "startup":
                    return
