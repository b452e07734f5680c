"""One run of one container: its process, the thread waiting for it, its probe workers, exec inside it,
and stopping it as kubelet does (``preStop``, SIGTERM to the process group, SIGKILL after the grace
period, then SIGKILL to anything of the container still alive)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet import processes
from kubelet.probes import Outcome, ProbeTarget, ProbeWorker, run_handler

Obj = dict[str, Any]
MIN_GRACE = 2.0  # kubelet's minimumGracePeriodInSeconds


@dataclass
class Launch:
    """Everything needed to start the container's command."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mounts: list[Obj]
    hostname: str
    log_path: Path


@dataclass
class ContainerRun:
    container: Obj
    launch: Launch
    pod_ip: str
    on_exit: Callable[[ContainerRun, int], None]
    on_probe: Callable[[ContainerRun, str, bool, str], None]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    started: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    probes: list[ProbeWorker] = field(default_factory=list)
    stopping: bool = False
    failure: str = ""  # why the node killed it (a failed postStart hook), for the terminated message

    @property
    def name(self) -> str:
        return str(self.container["name"])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def marker(self) -> str:
        return self.launch.env[processes.MARKER]

    def start(self) -> None:
        """Exec the command (raises processes.StartError), then watch it and start its probes."""
        self.launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.launch.log_path, "ab") as log:
            spawned = processes.spawn(
                {"argv": self.launch.argv, "cwd": self.launch.cwd, "mounts": self.launch.mounts,
                 "hostname": self.launch.hostname},
                self.launch.env, stdout=log, stderr=log)
        self.process, self.started_at = spawned.process, spawned.started_at
        self.started = "startupProbe" not in self.container
        threading.Thread(target=self._wait, daemon=True, name=f"wait-{self.name}").start()
        target = ProbeTarget(self.container, self.pod_ip, self.started_at, self.run_exec,
                             lambda kind, ok, msg: self.on_probe(self, kind, ok, msg), lambda: self.started)
        for kind in ("startup", "readiness", "liveness"):
            probe = self.container.get(f"{kind}Probe")
            if probe:
                worker = ProbeWorker(kind, probe, target)
                self.probes.append(worker)
                worker.start()

    def _wait(self) -> None:
        assert self.process is not None
        code = self.process.wait()
        self.finished_at = time.time()
        for worker in self.probes:
            worker.stop()
        # Like the end of a container's pid namespace: whatever it started goes with it.
        processes.kill_group(self.pid, signal.SIGKILL)
        processes.reap(self.marker, exact=True)
        self.on_exit(self, code)  # queued before ``exited`` is set: a stopper that waited finds it queued
        self.exited.set()

    def run_exec(self, command: list[str], timeout: float) -> Outcome:
        """Run ``command`` inside the container (its namespaces, environment and working directory)."""
        if not command:
            return False, "empty exec command"
        if self.exited.is_set():
            return False, "container is not running"
        try:
            spawned = processes.spawn({"argv": command, "cwd": self.launch.cwd, "join": self.pid},
                                      self.launch.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except processes.StartError as exc:
            return False, str(exc)
        try:
            output, _ = spawned.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            processes.kill_group(spawned.process.pid, signal.SIGKILL)
            spawned.process.communicate()
            return False, f"command {command!r} timed out after {timeout:g}s"
        text = output.decode(errors="replace")[-1024:]
        if spawned.process.returncode != 0:
            return False, f"command {command!r} exited with {spawned.process.returncode}: {text}"
        return True, text

    def stop(self, grace: float, run_pre_stop: bool = True) -> None:
        """kubelet's killContainer: preStop within the grace period, SIGTERM, SIGKILL when it runs out."""
        self.stopping = True
        for worker in self.probes:
            worker.stop()
        if self.process is None or self.exited.is_set():
            return
        begun = time.monotonic()
        hook = (self.container.get("lifecycle") or {}).get("preStop")
        if hook and run_pre_stop and grace > 0:
            run_handler(hook, self.pod_ip, self.container, grace, self.run_exec)
            grace -= time.monotonic() - begun
        grace = max(grace, MIN_GRACE)
        processes.kill_group(self.pid, signal.SIGTERM)
        if not self.exited.wait(grace):
            processes.kill_group(self.pid, signal.SIGKILL)
            self.exited.wait(5)

    def kill_now(self) -> None:
        """SIGKILL at once (the node is shutting down)."""
        self.stopping = True
        for worker in self.probes:
            worker.stop()
        if self.process is not None and not self.exited.is_set():
            processes.kill_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            processes.reap(self.marker, exact=True, timeout=1)
