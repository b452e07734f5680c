"""Pod status as kubelet computes it (pure): container records, the phase (``getPhase``), the
Initialized/ContainersReady/Ready conditions with stable ``lastTransitionTime``, and the minimal patch
between the status the API has and the one we want it to have."""

from __future__ import annotations

import copy
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A process's exit as a container runtime reports it: a signal ``n`` is ``128 + n``."""
    return 128 - returncode if returncode < 0 else returncode


def signal_name(code: int) -> str | None:
    try:
        return signal.Signals(code - 128).name if code > 128 else None
    except ValueError:
        return None


@dataclass
class ContainerRecord:
    """What the node knows about one container, in the shape of a ``ContainerStatus``."""

    name: str
    image: str
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str = ""

    def running(self, started_at: float, container_id: str) -> None:
        if "terminated" in self.state:
            self.last_state = {"terminated": self.state["terminated"]}
        self.state = {"running": {"startedAt": iso(started_at)}}
        self.container_id = container_id

    def terminated(self, code: int, started_at: float, finished_at: float, message: str = "") -> Obj:
        """Record an exit; returns the ``terminated`` entry."""
        entry: Obj = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": iso(started_at), "finishedAt": iso(finished_at)}
        if self.container_id:
            entry["containerID"] = self.container_id
        if message:
            entry["message"] = message
        self.state = {"terminated": entry}
        self.ready = False
        self.started = False
        return entry

    def waiting(self, reason: str, message: str = "") -> None:
        """Waiting (e.g. CrashLoopBackOff before a restart); the last run moves to ``lastState``."""
        if "terminated" in self.state:
            self.last_state = {"terminated": self.state["terminated"]}
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        self.ready = False
        self.started = False

    @property
    def exit_code(self) -> int | None:
        terminated = self.state.get("terminated")
        return None if terminated is None else int(terminated["exitCode"])

    def status(self) -> Obj:
        entry: Obj = {"name": self.name, "image": self.image, "imageID": f"local://{self.image}",
                      "ready": self.ready, "restartCount": self.restart_count, "started": self.started,
                      "state": copy.deepcopy(self.state), "lastState": copy.deepcopy(self.last_state)}
        if self.container_id:
            entry["containerID"] = self.container_id
        return entry


def _kind(record: ContainerRecord | None) -> str:
    if record is None:
        return "unknown"
    if "running" in record.state:
        return "running"
    if "terminated" in record.state:
        return "terminated"
    return "stopped" if record.last_state.get("terminated") else "waiting"


def phase(restart_policy: str, init: list[ContainerRecord], containers: list[ContainerRecord]) -> str:
    """kubelet's ``getPhase``."""
    pending_init = failed_init = 0
    for record in init:
        kind = _kind(record)
        last = (record.last_state.get("terminated") or {}).get("exitCode")
        if (kind == "terminated" and record.exit_code != 0) or (kind == "stopped" and last != 0):
            failed_init += 1
        elif kind not in ("terminated", "stopped"):
            pending_init += 1
    counts = {"unknown": 0, "running": 0, "waiting": 0, "stopped": 0, "succeeded": 0}
    for record in containers:
        kind = _kind(record)
        if kind == "terminated":
            counts["stopped"] += 1
            counts["succeeded"] += record.exit_code == 0
        else:
            counts[kind] += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    if pending_init or counts["waiting"]:
        return "Pending"
    if counts["running"] and not counts["unknown"]:
        return "Running"
    if not counts["running"] and counts["stopped"] and not counts["unknown"]:
        if restart_policy == "Always":
            return "Running"
        if counts["stopped"] == counts["succeeded"]:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def conditions(init: list[ContainerRecord], containers: list[ContainerRecord], pod_phase: str,
               terminating: bool = False) -> dict[str, tuple[bool, str, str]]:
    """type -> (status, reason, message) for Initialized, ContainersReady and Ready."""
    incomplete = [r.name for r in init if r.exit_code != 0]
    initialized = (not incomplete, "" if not incomplete else "ContainersNotInitialized",
                   "" if not incomplete else f"containers with incomplete status: [{' '.join(incomplete)}]")
    unready = [r.name for r in containers if not r.ready or terminating]
    if not unready:
        ready = (True, "", "")
    elif pod_phase == "Succeeded":
        ready = (False, "PodCompleted", "")
    else:
        ready = (False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    return {"Initialized": initialized, "ContainersReady": ready, "Ready": ready}


def condition_entries(wanted: dict[str, tuple[bool, str, str]], previous: list[Obj], now: float) -> list[Obj]:
    """The condition objects; ``lastTransitionTime`` moves only when the status flips."""
    old = {c["type"]: c for c in previous}
    out = []
    for kind, (value, reason, message) in wanted.items():
        text = "True" if value else "False"
        before = old.get(kind)
        since = before["lastTransitionTime"] if before and before.get("status") == text else iso(now)
        # reason/message None, not absent: a strategic merge patch must clear what an older status had
        out.append({"type": kind, "status": text, "lastProbeTime": None, "lastTransitionTime": since,
                    "reason": reason or None, "message": message or None})
    return out


def status_patch(current: Obj, wanted: Obj) -> Obj:
    """The fields of ``wanted`` that differ from ``current`` (conditions: only the changed ones, merged by
    type in a strategic merge patch; lists of container statuses are replaced whole)."""
    patch: Obj = {}
    for key, value in wanted.items():
        if key == "conditions":
            have = {c["type"]: c for c in current.get("conditions") or []}
            changed = [c for c in value if _condition_differs(have.get(c["type"]), c)]
            if changed:
                patch["conditions"] = changed
        elif current.get(key) != value:
            patch[key] = value
    return patch


def _condition_differs(have: Obj | None, want: Obj) -> bool:
    if have is None:
        return True
    return any(have.get(k) != want.get(k) for k in ("status", "reason", "message", "lastTransitionTime"))
