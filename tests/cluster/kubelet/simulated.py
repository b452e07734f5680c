"""Simulated pods (every image not under ``local/``): no process runs.

A pod is reported Running with its IP at once, and Ready once the largest
``readinessProbe.initialDelaySeconds`` of its containers has passed (at once without a probe). Test
conventions, chosen by a container's image tag:

- a tag containing ``never-ready`` (e.g. ``shop:v2-never-ready``): the container runs but never passes its
  readiness probe, so the pod stays Running and NotReady forever;
- a tag containing ``crashloop`` (e.g. ``shop:crashloop``): the container keeps crashing; it is reported
  waiting in ``CrashLoopBackOff`` with a growing ``restartCount`` and the pod is never Ready.

All of it runs on the node's single worker thread with a timer heap, so thousands of pods stay cheap.
"""

from __future__ import annotations

import heapq
import json
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from kubelet.ipam import IPAllocator
from kubelet.registration import now_iso

CRASH_BACKOFF_SECONDS = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 300.0)  # kubelet: 10s..300s
Pod = dict[str, Any]


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


class SimulatedPods:
    def __init__(self, node_core: client.CoreV1Api, ips: IPAllocator) -> None:
        self.node_core = node_core
        self.ips = ips
        self.timers: list[tuple[float, str, str, str, str]] = []  # (due, kind, namespace, name, uid)
        self.started_at: dict[str, float] = {}  # pod uid -> start time

    def knows(self, uid: str) -> bool:
        return uid in self.started_at

    def forget(self, uid: str) -> None:
        self.started_at.pop(uid, None)

    def next_due(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    def pop_due(self) -> list[tuple[str, str, str, str]]:
        due = []
        while self.timers and self.timers[0][0] <= time.time():
            due.append(heapq.heappop(self.timers)[1:])
        return due

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
