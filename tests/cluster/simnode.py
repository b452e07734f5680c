"""A simulated kubelet and scheduler for the local control plane (in the spirit of kwok).

It runs no containers. Against a real kube-apiserver it:

- registers one Node (default ``bluegreen-node``) as Ready and keeps its status and its Lease in
  ``kube-node-lease`` fresh, so the node-lifecycle controller never marks it NotReady;
- binds every pending, unscheduled pod to that node (acting as the scheduler, with the
  ``system:kube-scheduler`` identity);
- reports each pod bound to it as Running with a unique pod IP from 10.244.0.0/16;
- marks a pod Ready once the largest ``readinessProbe.initialDelaySeconds`` of its containers has
  passed since it started (at once when no container has a probe);
- deletes pods that are being deleted (what a kubelet does once the containers have stopped).

With it, Deployments report readyReplicas/availableReplicas and the endpoints controller fills Services'
Endpoints with the ready pods' IPs, exactly as on a real cluster.

Test conventions, chosen by a container's image tag:

- a tag containing ``never-ready`` (e.g. ``shop:v2-never-ready``): the container runs but never passes its
  readiness probe, so the pod stays Running and NotReady forever;
- a tag containing ``crashloop`` (e.g. ``shop:crashloop``): the container keeps crashing; it is reported
  waiting in ``CrashLoopBackOff`` with a growing ``restartCount`` and the pod is never Ready.

Pod, node and lease writes use the node's own identity (``system:node:<name>``, authorised by the API
server's Node authorizer); bindings use the scheduler's identity. State is re-derived from the API on
every event, so restarting this process is harmless.

Run: ``python simnode.py --node-kubeconfig node.kubeconfig --scheduler-kubeconfig scheduler.kubeconfig``
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import ipaddress
import json
import logging
import queue
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("simnode")

HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 40
CRASH_BACKOFF_SECONDS = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 300.0)  # kubelet: 10s..300s
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")

Pod = dict[str, Any]


def now_iso() -> str:
    """The current time as the API server writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_behaviour(image: str) -> str:
    """The simulated behaviour of a container, chosen by its image tag: normal, never-ready or crashloop."""
    name = image.rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else ""
    if "crashloop" in tag:
        return "crashloop"
    if "never-ready" in tag:
        return "never-ready"
    return "normal"


def readiness_delay(pod: Pod) -> float:
    """Seconds from start until the pod is Ready: the largest readiness initialDelaySeconds, else 0."""
    delays = [
        float((c.get("readinessProbe") or {}).get("initialDelaySeconds") or 0)
        for c in pod["spec"].get("containers", [])
    ]
    return max(delays, default=0.0)


def pod_key(pod: Pod) -> tuple[str, str]:
    meta = pod["metadata"]
    return meta["namespace"], meta["name"]


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class IPAllocator:
    """Hands out unique pod IPs; IPs of pods that still exist are never reused."""

    def __init__(self) -> None:
        self._hosts = POD_CIDR.hosts()
        self._in_use: dict[str, str] = {}  # ip -> pod uid
        self._free: list[str] = []

    def claim(self, ip: str, uid: str) -> None:
        self._in_use[ip] = uid

    def allocate(self, uid: str) -> str:
        """A fresh address while the range lasts (like a real IPAM, recently freed IPs are reused last)."""
        while True:
            fresh = next(self._hosts, None)
            ip = str(fresh) if fresh is not None else self._free.pop()
            if ip not in self._in_use:
                self._in_use[ip] = uid
                return ip

    def release_uid(self, uid: str) -> None:
        for ip, owner in list(self._in_use.items()):
            if owner == uid:
                del self._in_use[ip]
                self._free.insert(0, ip)


class SimulatedNode:
    """The node: a heartbeat thread, a pod watch thread and one worker applying pod lifecycles."""

    def __init__(self, node_name: str, node_api: client.ApiClient, scheduler_api: client.ApiClient) -> None:
        self.node_name = node_name
        self.node_core = client.CoreV1Api(node_api)
        self.node_coordination = client.CoordinationV1Api(node_api)
        self.scheduler_core = client.CoreV1Api(scheduler_api)
        self.events: queue.Queue[tuple[str, Pod]] = queue.Queue()
        self.timers: list[tuple[float, str, str, str, str]] = []  # (due, kind, namespace, name, uid)
        self.ips = IPAllocator()
        self.started_at: dict[str, float] = {}  # pod uid -> start time
        self.stop = threading.Event()

    # ---- node registration and heartbeat -------------------------------------------------------
    def node_status(self) -> dict[str, Any]:
        stamp = now_iso()
        conditions = [
            ("Ready", "True", "KubeletReady", "simulated kubelet is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "simulated"),
        ]
        capacity = {"cpu": "32", "memory": "128Gi", "pods": "500", "ephemeral-storage": "500Gi"}
        return {
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": m,
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
                for t, s, r, m in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "capacity": capacity,
            "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "simulated://1",
                "kernelVersion": "",
                "osImage": "bluegreen simulated node",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "simulated",
                },
            },
            "spec": {},
        }
        try:
            self.node_core.create_node(body)
            log.info("registered node %s", self.node_name)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.node_core.patch_node_status(self.node_name, {"status": self.node_status()})
        self.renew_lease()

    def renew_lease(self) -> None:
        namespace = "kube-node-lease"
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew}
        try:
            self.node_coordination.patch_namespaced_lease(self.node_name, namespace, {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": namespace},
                "spec": spec,
            }
            self.node_coordination.create_namespaced_lease(namespace, body)

    def heartbeat_loop(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception:  # keep beating; the next try may succeed
                log.exception("heartbeat failed")

    # ---- pod watch ---------------------------------------------------------------------------
    def watch_loop(self) -> None:
        """List then watch all pods, feeding the worker; re-list whenever the watch cannot resume."""
        while not self.stop.is_set():
            try:
                resp = self.scheduler_core.list_pod_for_all_namespaces(_preload_content=False)
                listing = json.loads(resp.data)
                for pod in listing["items"]:
                    self.events.put(("SYNC", pod))
                version = listing["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    stream = watch.Watch().stream(
                        self.scheduler_core.list_pod_for_all_namespaces,
                        resource_version=version,
                        timeout_seconds=60,
                        allow_watch_bookmarks=True,
                    )
                    for event in stream:
                        raw = event["raw_object"]
                        if event["type"] == "ERROR":
                            raise ApiException(status=raw.get("code", 500), reason=raw.get("message"))
                        version = raw["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.events.put((event["type"], raw))
            except Exception as exc:
                if not self.stop.is_set():
                    log.warning("pod watch restarting: %s", exc)
                    time.sleep(0.5)

    # ---- worker ------------------------------------------------------------------------------
    def run_worker(self) -> None:
        while not self.stop.is_set():
            timeout = 1.0
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.time()))
            try:
                kind, pod = self.events.get(timeout=timeout)
                self.safely(self.handle_event, kind, pod)
            except queue.Empty:
                pass
            while self.timers and self.timers[0][0] <= time.time():
                _, what, namespace, name, uid = heapq.heappop(self.timers)
                self.safely(self.handle_timer, what, namespace, name, uid)

    def safely(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone or changed meanwhile: the next event brings the truth
                log.warning("%s%s failed: %s %s", fn.__name__, args[:1], exc.status, exc.reason)
        except Exception:
            log.exception("%s failed", fn.__name__)

    def handle_event(self, kind: str, pod: Pod) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        uid = meta["uid"]
        if kind == "DELETED":
            self.ips.release_uid(uid)
            self.started_at.pop(uid, None)
            return
        node = spec.get("nodeName")
        if not node:
            if not meta.get("deletionTimestamp") and status.get("phase", "Pending") == "Pending":
                self.bind(pod)
            return
        if node != self.node_name:
            return
        if status.get("podIP"):
            self.ips.claim(status["podIP"], uid)
        if meta.get("deletionTimestamp"):
            self.node_core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions={"uid": uid}),
            )
            return
        if status.get("phase") in ("Succeeded", "Failed") or uid in self.started_at:
            return
        if status.get("phase") != "Running" or not status.get("podIP"):
            self.start(pod)
        else:
            self.resume(pod)

    def bind(self, pod: Pod) -> None:
        namespace, name = pod_key(pod)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        self.scheduler_core.create_namespaced_binding(namespace, body, _preload_content=False)

    def start(self, pod: Pod) -> None:
        """First sight of a pod on this node: report it Running with an IP; readiness comes later."""
        namespace, name = pod_key(pod)
        uid = pod["metadata"]["uid"]
        ip = self.ips.allocate(uid)
        started = time.time()
        self.started_at[uid] = started
        delay = readiness_delay(pod)
        ready = delay == 0 and self.can_become_ready(pod)
        self.patch_status(pod, ip=ip, started=started, ready=ready, restarts=0)
        if not ready and self.can_become_ready(pod):
            heapq.heappush(self.timers, (started + delay, "ready", namespace, name, uid))
        if self.crashing(pod):
            heapq.heappush(self.timers, (started + CRASH_BACKOFF_SECONDS[0], "crash", namespace, name, uid))

    def resume(self, pod: Pod) -> None:
        """A running pod seen again (also after a restart of this process): schedule what is still due."""
        namespace, name = pod_key(pod)
        uid = pod["metadata"]["uid"]
        status = pod["status"]
        started = parse_time(status.get("startTime")) or time.time()
        self.started_at[uid] = started
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        if not ready and self.can_become_ready(pod):
            heapq.heappush(self.timers, (started + readiness_delay(pod), "ready", namespace, name, uid))
        if self.crashing(pod):
            heapq.heappush(
                self.timers, (time.time() + CRASH_BACKOFF_SECONDS[0], "crash", namespace, name, uid)
            )

    def handle_timer(self, what: str, namespace: str, name: str, uid: str) -> None:
        if uid not in self.started_at:
            return  # deleted meanwhile
        pod = json.loads(self.node_core.read_namespaced_pod(name, namespace, _preload_content=False).data)
        if pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return
        status = pod.get("status") or {}
        restarts = max((c.get("restartCount", 0) for c in status.get("containerStatuses", [])), default=0)
        if what == "ready":
            self.patch_status(pod, ip=status["podIP"], started=self.started_at[uid], ready=True, restarts=0)
        elif what == "crash":
            restarts += 1
            self.patch_status(
                pod, ip=status["podIP"], started=self.started_at[uid], ready=False, restarts=restarts
            )
            backoff = CRASH_BACKOFF_SECONDS[min(restarts, len(CRASH_BACKOFF_SECONDS) - 1)]
            heapq.heappush(self.timers, (time.time() + backoff, "crash", namespace, name, uid))

    @staticmethod
    def crashing(pod: Pod) -> bool:
        return any(image_behaviour(c.get("image", "")) == "crashloop" for c in pod["spec"]["containers"])

    @classmethod
    def can_become_ready(cls, pod: Pod) -> bool:
        return all(image_behaviour(c.get("image", "")) == "normal" for c in pod["spec"]["containers"])

    def patch_status(self, pod: Pod, *, ip: str, started: float, ready: bool, restarts: int) -> None:
        namespace, name = pod_key(pod)
        start_iso = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        stamp = now_iso()
        previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions", [])}

        def condition(kind: str, value: bool) -> dict[str, Any]:
            text = "True" if value else "False"
            old = previous.get(kind)
            since = old["lastTransitionTime"] if old and old.get("status") == text else stamp
            return {"type": kind, "status": text, "lastProbeTime": None, "lastTransitionTime": since}

        statuses = []
        for c in pod["spec"]["containers"]:
            behaviour = image_behaviour(c.get("image", ""))
            entry: dict[str, Any] = {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "simulated://" + c.get("image", ""),
                "containerID": f"simulated://{pod['metadata']['uid']}/{c['name']}",
                "ready": ready,
                "restartCount": restarts if behaviour == "crashloop" else 0,
                "started": behaviour != "crashloop",
            }
            if behaviour == "crashloop":
                entry["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": "back-off restarting failed container (simulated)",
                    }
                }
                entry["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": start_iso,
                        "finishedAt": stamp,
                    }
                }
            else:
                entry["state"] = {"running": {"startedAt": start_iso}}
            statuses.append(entry)

        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": start_iso,
            "qosClass": "BestEffort",
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", True),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": statuses,
        }
        self.node_core.patch_namespaced_pod_status(name, namespace, {"status": status})

    # ---- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        self.register()
        for target in (self.heartbeat_loop, self.watch_loop):
            threading.Thread(target=target, daemon=True, name=target.__name__).start()
        self.run_worker()


def api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-kubeconfig", required=True)
    parser.add_argument("--scheduler-kubeconfig", required=True)
    parser.add_argument("--node-name", default="bluegreen-node")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    node = SimulatedNode(
        args.node_name, api_client(args.node_kubeconfig), api_client(args.scheduler_kubeconfig)
    )
    signal.signal(signal.SIGTERM, lambda *_: node.stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        node.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
