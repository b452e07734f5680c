"""One supervising thread per process-backed pod: volumes, init containers in order, the containers,
their probes, restarts with crash-loop back-off, the phase, and termination. It reacts to events (process
exits, probe results, pod updates) and writes the pod's status (only what changed) as the node."""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubelet import processes
from kubelet.backoff import CrashBackoff
from kubelet.containers import ContainerRun
from kubelet.envvars import ConfigError
from kubelet.launchspec import HOST_IP, CreateError, ImageError, LaunchBuilder
from kubelet.mountpoints import MountPoints
from kubelet.nodeapi import NodeAPI
from kubelet.podstatus import ContainerRecord, condition_entries, conditions, exit_code, iso, phase, status_patch
from kubelet.probes import run_handler
from kubelet.volumes import VolumeError, set_up

log = logging.getLogger("simnode.pod")
Obj = dict[str, Any]
RETRY_SECONDS = 2.0


@dataclass
class NodeContext:
    api: NodeAPI
    pods_dir: Path
    builder: LaunchBuilder
    mountpoints: MountPoints
    backoff_base: float


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def should_restart(policy: str, code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and code != 0)


class PodWorker(threading.Thread):
    def __init__(self, ctx: NodeContext, pod: Obj, ip: str) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        super().__init__(daemon=True, name=f"pod-{meta['namespace']}/{meta['name']}")
        self.ctx, self.pod, self.ip = ctx, pod, ip
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.policy = spec.get("restartPolicy") or "Always"
        self.specs = {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}
        self.init = [ContainerRecord(c["name"], c["image"]) for c in spec.get("initContainers", [])]
        self.main = [ContainerRecord(c["name"], c["image"]) for c in spec["containers"]]
        for record in self.main if self.init else []:
            record.state = {"waiting": {"reason": "PodInitializing"}}
        self.records = {r.name: r for r in [*self.init, *self.main]}
        self.runs: dict[str, ContainerRun] = {}
        self.starts = {name: 0 for name in self.records}
        self.next_start: dict[str, float | None] = {name: None for name in self.records}
        self.backoffs = {name: CrashBackoff(ctx.backoff_base) for name in self.records}
        self.finished_at: dict[str, float] = {}
        self.sent: Obj = dict(pod.get("status") or {})
        self.start_time = parse_time(self.sent.get("startTime")) or time.time()
        self.pod_dir = ctx.pods_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        self.volumes: dict[str, Obj] | None = None
        self.held: list[str] = []
        self.retry_at: float | None = None
        self.terminating = self.gone = self.finished = self.unpublished = False
        self.resume()

    # ---- called from the node's threads --------------------------------------------------------
    def update(self, pod: Obj) -> None:
        self.events.put(("pod", pod))

    def removed(self) -> None:
        self.events.put(("removed",))

    def kill_now(self) -> None:
        """The node is shutting down: kill every process at once, write nothing more."""
        self.gone = True
        for run in list(self.runs.values()):
            run.kill_now()
        self.events.put(("shutdown",))

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.loop()
        except Exception:
            log.exception("pod worker %s failed", self.name)
        finally:
            for run in list(self.runs.values()):
                run.kill_now()
            processes.reap(f"{self.pod_dir}:")
            self.ctx.mountpoints.release(self.held)
            if self.gone:
                shutil.rmtree(self.pod_dir, ignore_errors=True)

    def loop(self) -> None:
        while not self.finished:
            if self.retry_at is not None and self.retry_at <= time.time():
                self.retry_at = None
            if self.volumes is None and not self.terminating and not self.gone:
                self.set_up_volumes()
            self.advance()
            self.publish()
            if self.finished or (self.terminal() and not self.unpublished):
                return
            dues = [t for t in [*self.next_start.values(), self.retry_at] if t is not None]
            timeout = None if not dues else max(0.0, min(dues) - time.time())
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                continue
            self.handle(event)
            with contextlib.suppress(queue.Empty):
                while True:
                    self.handle(self.events.get_nowait())

    def handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "exit":
            self.exited(event[1], event[2])
        elif kind == "probe":
            self.probed(*event[1:])
        elif kind == "pod":
            self.pod = event[1]
            if self.pod["metadata"].get("deletionTimestamp") and not self.terminating:
                self.terminate(float(self.pod["metadata"].get("deletionGracePeriodSeconds") or 0))
        elif kind == "removed":
            self.gone = True
            if not self.terminating:
                self.terminate(0)
            self.finished = True
        elif kind == "shutdown":
            self.finished = True

    def set_up_volumes(self) -> None:
        try:
            self.volumes = set_up(self.pod, self.pod_dir, self.ctx.api)
            self.retry_at = None
        except (VolumeError, ApiException, OSError) as exc:
            message = f"MountVolume.SetUp failed: {exc}"
            for record in self.main:
                if "running" not in record.state:
                    record.state = {"waiting": {"reason": "ContainerCreating", "message": message}}
            self.retry_at = time.time() + RETRY_SECONDS

    # ---- starting containers --------------------------------------------------------------------
    def advance(self) -> None:
        """Start whatever is due: the first unfinished init container, else the main containers."""
        if self.terminating or self.volumes is None:
            return
        for record in self.init:
            if record.exit_code != 0:
                self.start_if_due(record)
                return
        for record in self.main:
            self.start_if_due(record)

    def start_if_due(self, record: ContainerRecord) -> None:
        due = self.next_start[record.name]
        if due is None and self.starts[record.name] == 0:
            due = 0.0  # never started: now
        if record.name not in self.runs and due is not None and due <= time.time():
            self.start_container(record)

    def start_container(self, record: ContainerRecord) -> None:
        spec = self.specs[record.name]
        self.next_start[record.name] = None
        restart = self.starts[record.name] > 0
        try:
            launch = self.ctx.builder.build(self.pod, spec, self.ip, self.volumes or {}, self.pod_dir,
                                            record.restart_count + restart, self.held)
        except (ConfigError, CreateError, ImageError, ApiException, OSError) as exc:
            reason = ("CreateContainerConfigError" if isinstance(exc, ConfigError | ApiException) else
                      "ErrImageNeverPull" if isinstance(exc, ImageError) else "CreateContainerError")
            record.waiting(reason, str(exc))
            self.next_start[record.name] = time.time() + RETRY_SECONDS
            return
        if restart:
            record.restart_count += 1
            self.backoffs[record.name].restarted(self.finished_at.get(record.name, time.time()), time.time())
        self.starts[record.name] += 1
        run = ContainerRun(spec, launch, self.ip, on_exit=lambda r, code: self.events.put(("exit", r, code)),
                           on_probe=lambda r, *rest: self.events.put(("probe", r, *rest)))
        try:
            run.start()
        except processes.StartError as exc:
            now = time.time()
            record.running(now, "")
            entry = record.terminated(exc.code, now, now, str(exc))
            entry["reason"] = "ContainerCannotRun"
            self.after_exit(record, exc.code, now)
            return
        self.runs[record.name] = run
        record.running(run.started_at, f"local://{run.pid}")
        record.started = run.started
        record.ready = run.started and "readinessProbe" not in spec
        hook = (spec.get("lifecycle") or {}).get("postStart")
        if hook:  # like kubelet: right after the start, blocking this pod's sync; a failure kills the container
            grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
            ok, message = run_handler(hook, self.ip, spec, grace, run.run_exec)
            if not ok:
                log.info("%s: postStart hook of %s failed, killing it: %s", self.name, run.name, message)
                run.failure = f"PostStartHookError: {message}"
                threading.Thread(target=run.stop, args=(grace, False), daemon=True).start()

    # ---- events from containers -----------------------------------------------------------------
    def exited(self, run: ContainerRun, returncode: int) -> None:
        if self.runs.get(run.name) is not run:
            return
        del self.runs[run.name]
        record = self.records[run.name]
        code = exit_code(returncode)
        record.terminated(code, run.started_at, run.finished_at, run.failure)
        if not self.terminating:
            self.after_exit(record, code, run.finished_at)

    def after_exit(self, record: ContainerRecord, code: int, finished_at: float) -> None:
        """Restart (now, or after the back-off as CrashLoopBackOff) when the restart policy says so."""
        self.finished_at[record.name] = finished_at
        self.next_start[record.name] = None
        if (record in self.init and code == 0) or not should_restart(self.policy, code):
            return
        delay = self.backoffs[record.name].remaining(finished_at, time.time())
        if delay > 0:
            pod = f"{self.pod['metadata']['name']}_{self.pod['metadata']['namespace']}({self.pod['metadata']['uid']})"
            window = self.backoffs[record.name].window
            record.waiting("CrashLoopBackOff", f"back-off {window:g}s restarting failed container="
                                               f"{record.name} pod={pod}")
        self.next_start[record.name] = time.time() + delay

    def probed(self, run: ContainerRun, kind: str, ok: bool, message: str) -> None:
        if self.runs.get(run.name) is not run or run.stopping:
            return
        record = self.records[run.name]
        has_readiness = "readinessProbe" in run.container
        if kind == "readiness":
            record.ready = ok and run.started
        elif kind == "startup" and ok:
            run.started = record.started = True
            record.ready = not has_readiness
        elif not ok:  # liveness or startup failure: kill, and the restart policy decides
            log.info("%s: container %s failed its %s probe, killing it: %s", self.name, run.name, kind, message)
            record.ready = False
            grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
            threading.Thread(target=run.stop, args=(grace,), daemon=True).start()

    # ---- termination -------------------------------------------------------------------------------
    def terminate(self, grace: float) -> None:
        """preStop, SIGTERM, SIGKILL after ``grace`` for every container at once; then the pod is deleted."""
        self.terminating = True
        self.next_start = dict.fromkeys(self.next_start)
        for record in self.records.values():
            record.ready = False
        self.publish()
        stoppers = [threading.Thread(target=run.stop, args=(grace, not self.gone), daemon=True)
                    for run in self.runs.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        with contextlib.suppress(queue.Empty):
            while self.runs:
                self.handle(self.events.get(timeout=5))
        processes.reap(f"{self.pod_dir}:")
        if not self.gone:
            self.publish()
            with contextlib.suppress(ApiException):
                self.ctx.api.delete(self.pod)
        self.gone = self.finished = True

    # ---- status ------------------------------------------------------------------------------------
    def terminal(self) -> bool:
        return not self.runs and phase(self.policy, self.init, self.main) in ("Succeeded", "Failed")

    def wanted(self) -> Obj:
        pod_phase = phase(self.policy, self.init, self.main)
        wanted = conditions(self.init, self.main, pod_phase, self.terminating)
        status: Obj = {
            "phase": pod_phase, "hostIP": HOST_IP, "podIP": self.ip, "podIPs": [{"ip": self.ip}],
            "startTime": iso(self.start_time),
            "conditions": condition_entries(wanted, self.sent.get("conditions") or [], time.time()),
            "containerStatuses": [r.status() for r in self.main],
        }
        if self.init:
            status["initContainerStatuses"] = [r.status() for r in self.init]
        return status

    def publish(self) -> None:
        if self.gone:
            return
        patch = status_patch(self.sent, self.wanted())
        self.unpublished = bool(patch)
        if not patch:
            return
        try:
            self.ctx.api.patch_status(self.pod, patch)
        except ApiException as exc:
            if exc.status == 404:
                self.gone = True
            else:
                log.warning("%s: status patch failed: %s %s", self.name, exc.status, exc.reason)
                self.retry_at = time.time() + 1
            return
        self.unpublished = False
        merged = {c["type"]: c for c in self.sent.get("conditions") or []}
        merged.update({c["type"]: c for c in patch.get("conditions") or []})
        self.sent.update({**patch, "conditions": list(merged.values())})

    # ---- after a restart of the node -------------------------------------------------------------
    def resume(self) -> None:
        """Take over what the API says about a pod whose processes are gone (simnode restarted): containers
        that ran count as exited (137) and restart as their policy says, with restartCount + 1."""
        previous = {c["name"]: c for c in [*self.sent.get("initContainerStatuses", []),
                                            *self.sent.get("containerStatuses", [])]}
        for name, record in self.records.items():
            old = previous.get(name)
            if not old:
                continue
            record.restart_count = int(old.get("restartCount") or 0)
            record.last_state = old.get("lastState") or {}
            record.container_id = old.get("containerID") or ""
            state = old.get("state") or {}
            if "terminated" in state:
                record.state = state
                self.starts[name] = 1
            elif "running" in state or record.restart_count or record.last_state:
                started = parse_time((state.get("running") or {}).get("startedAt")) or time.time()
                record.state = {"running": {"startedAt": iso(started)}}
                record.terminated(137, started, time.time(), "the node restarted; the process was gone")
                self.starts[name] = 1
            if "terminated" in record.state:
                finished = parse_time(record.state["terminated"].get("finishedAt")) or time.time()
                self.after_exit(record, int(record.exit_code or 0), finished)
