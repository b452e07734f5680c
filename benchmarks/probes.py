"""Measuring instruments for the benchmarks, independent of the operator's code.

- :class:`Tracker`: list+watch of Deployments and Services in one namespace (raw JSON, no model objects),
  and the moment, seen on the watch, when every name of a :class:`Goal` first satisfies its check;
- :class:`AuditLog`: one user's API requests, read as kube-apiserver appends them to its audit log
  (tests/cluster/audit-policy.yaml records ServiceAccounts outside kube-system at Metadata level);
- :class:`ProcessSample`: CPU time and RSS of a process from /proc.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

Obj = dict[str, Any]
READS = frozenset({"get", "list"})
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def complete(deployment: Obj | None) -> bool:
    """Rolled out and available, as `kubectl rollout status` means it: the controller saw the latest spec,
    every replica runs it and is available, and no old replica is left."""
    if deployment is None:
        return False
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want = spec.get("replicas", 1)
    return (want > 0 and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
            and status.get("replicas", 0) == status.get("updatedReplicas", 0) == want
            and status.get("availableReplicas", 0) == status.get("readyReplicas", 0) == want)


def image(deployment: Obj | None) -> str | None:
    containers = ((((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    return str(containers[0].get("image")) if containers else None


class Goal:
    """A set of names and a check; records the first moment all of them pass (kept current per event)."""

    def __init__(self, label: str, names: Iterable[str], check: Callable[[str], bool]) -> None:
        self.label = label
        self.names = frozenset(names)
        self.check = check
        self.done: set[str] = set()
        self.reached = threading.Event()
        self.reached_at: float | None = None

    def update(self, name: str, now: float) -> None:
        if name not in self.names:
            return
        if self.check(name):
            self.done.add(name)
        else:
            self.done.discard(name)
        if self.reached_at is None and len(self.done) == len(self.names):
            self.reached_at = now
            self.reached.set()


class Tracker:
    """Deployments and Services of one namespace as the watches deliver them.

    ``owner_of`` maps an object name to the name a goal is about (a release owns ``<name>-blue``)."""

    def __init__(self, api: client.ApiClient, namespace: str, *, services: bool,
                 owner_of: Callable[[str], str] = lambda name: name) -> None:
        self.api = api
        self.namespace = namespace
        self.owner_of = owner_of
        self.deployments: dict[str, Obj] = {}
        self.services: dict[str, Obj] = {}
        self.lock = threading.Lock()
        self.goal: Goal | None = None
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.streams = [(f"/apis/apps/v1/namespaces/{namespace}/deployments", self.deployments)]
        if services:
            self.streams.append((f"/api/v1/namespaces/{namespace}/services", self.services))
        self.synced = [threading.Event() for _ in self.streams]

    def start(self) -> Tracker:
        for index in range(len(self.streams)):
            threading.Thread(target=self._run, args=(index,), daemon=True).start()
        for synced in self.synced:
            if not synced.wait(30):
                raise TimeoutError(f"watches in {self.namespace} did not start: {self.errors[-1:]}")
        return self

    def stop(self) -> None:
        self.stopping.set()

    def pursue(self, goal: Goal) -> Goal:
        """Make ``goal`` the one that events update, checking everything already seen first."""
        with self.lock:
            self.goal = goal
            now = time.monotonic()
            for name in goal.names:
                goal.update(name, now)
        return goal

    def selector_color(self, service: str) -> str | None:
        selector = ((self.services.get(service) or {}).get("spec") or {}).get("selector") or {}
        color = selector.get("bluegreen.dev/color")
        return str(color) if color else None

    # ---- list + watch, reconnecting ----------------------------------------------------------------
    def _call(self, path: str, params: list[tuple[str, Any]], timeout: Any) -> Any:
        """GET ``path`` without decoding: the raw urllib3 response (a watch is read as it streams)."""
        request = self.api.param_serialize("GET", path, query_params=params, auth_settings=["BearerToken"],
                                           header_params={"Accept": "application/json"})
        response = self.api.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def _run(self, index: int) -> None:
        path, store = self.streams[index]
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    listing = json.loads(self._call(path, [], 60).data)
                    with self.lock:
                        store.clear()
                        for item in listing["items"]:
                            store[item["metadata"]["name"]] = item
                        names = list(store)
                    version = listing["metadata"]["resourceVersion"]
                    self._touch(names)
                    self.synced[index].set()
                params = [("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                          ("timeoutSeconds", 240)]
                response = self._call(path, params, (10, 300))
                try:
                    for line in iter_resp_lines(response):
                        if self.stopping.is_set():
                            return
                        version = self._apply(json.loads(line), store) or version
                finally:
                    response.release_conn()
            except ApiException as exc:
                if exc.status != 410:
                    self.errors.append(exc)
                    time.sleep(1)
                version = ""  # 410 Gone (or an error): list again
            except Exception as exc:  # a cut connection: resume from the last version seen
                if self.stopping.is_set():
                    return
                self.errors.append(exc)
                time.sleep(1)

    def _apply(self, event: Obj, store: dict[str, Obj]) -> str | None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise ApiException(status=410, reason="Gone")
            return None
        version = obj.get("metadata", {}).get("resourceVersion")
        if kind == "BOOKMARK":
            return str(version)
        name = obj["metadata"]["name"]
        with self.lock:
            if kind == "DELETED":
                store.pop(name, None)
            else:
                store[name] = obj
        self._touch([name])
        return str(version)

    def _touch(self, names: Iterable[str]) -> None:
        now = time.monotonic()
        with self.lock:
            if self.goal is not None:
                for name in names:
                    self.goal.update(self.owner_of(name), now)


@dataclass(frozen=True)
class Request:
    at: float  # requestReceivedTimestamp, seconds since the epoch
    verb: str
    resource: str  # with its subresource: bluegreenreleases/status
    name: str


class AuditLog:
    """The requests of one user, read incrementally from kube-apiserver's JSON audit log (following
    rotation: the open file is drained before the new one is opened). Each request counts once (auditID)."""

    def __init__(self, path: Path, username: str) -> None:
        self.path = path
        self.needle = f'"username":"{username}"'.encode()
        self.requests: list[Request] = []
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.file: BinaryIO | None = None
        self.partial = b""
        if path.exists():  # only what is appended from now on; a log created later is read from its start
            self.file = open(path, "rb")  # noqa: SIM115 (kept open to follow the log)
            self.file.seek(0, os.SEEK_END)
        self.stopping = threading.Event()

    def start(self) -> AuditLog:
        threading.Thread(target=self._follow, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _follow(self) -> None:
        while not self.stopping.wait(0.5):
            self.poll()

    def poll(self) -> None:
        with self.lock:
            if self.file is not None:
                self._drain(self.file)
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                return
            if self.file is None or current != os.fstat(self.file.fileno()).st_ino:  # created, or rotated
                if self.file is not None:
                    self._drain(self.file)
                    self.file.close()
                self.file = open(self.path, "rb")  # noqa: SIM115
                self.partial = b""
                self._drain(self.file)

    def _drain(self, file: BinaryIO) -> None:
        data = self.partial + file.read()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if self.needle not in line:
                continue
            entry = json.loads(line)
            if entry["auditID"] in self.seen:
                continue
            self.seen.add(entry["auditID"])
            ref = entry.get("objectRef") or {}
            resource = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            at = datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp()
            self.requests.append(Request(at, entry["verb"], resource, ref.get("name", "")))

    def between(self, start: float, end: float, name_prefix: str | None = None) -> Counter[tuple[str, str]]:
        """(verb, resource) -> count of requests received in [start, end) (wall clock), optionally only those
        naming an object that starts with ``name_prefix``."""
        self.poll()
        with self.lock:
            return Counter((r.verb, r.resource) for r in self.requests if start <= r.at < end
                           and (name_prefix is None or r.name.startswith(name_prefix)))

    def has(self, verb: str, resource: str) -> bool:
        self.poll()
        with self.lock:
            return any(r.verb == verb and r.resource == resource for r in self.requests)

    def last_write(self, name_prefix: str | None = None) -> float:
        """When the latest write request (naming an object that starts with ``name_prefix``) was received."""
        self.poll()
        with self.lock:
            return max((r.at for r in self.requests if r.verb in WRITES
                        and (name_prefix is None or r.name.startswith(name_prefix))), default=0.0)


class ProcessSample:
    """CPU seconds (user + system, all threads) and RSS of one process at one moment."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.at = time.monotonic()
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        self.cpu = (int(fields[11]) + int(fields[12])) / self.TICK  # utime, stime
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line)
        self.rss_mib = int(status["VmRSS"].split()[0]) / 1024
        self.peak_mib = int(status["VmHWM"].split()[0]) / 1024

    def cpu_percent_since(self, earlier: ProcessSample) -> float:
        return 100 * (self.cpu - earlier.cpu) / max(self.at - earlier.at, 1e-9)
