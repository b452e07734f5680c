"""Container processes: spawn one through ``launcher.py``, signal its process group, and find or reap
every process of a pod (or of a whole node) by the marker variable each of them carries.

``BLUEGREEN_NODE_POD=<pod directory>:<container>`` is in the environment of every container process (and so
of everything it starts): ``reap`` reads ``/proc/*/environ`` to kill what escaped its process group.
This module uses only the standard library: ``controlplane.py down`` imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MARKER = "BLUEGREEN_NODE_POD"
LAUNCHER = Path(__file__).resolve().parent / "launcher.py"


class StartError(Exception):
    """The command could not be started (exec failed); ``code`` is the exit code to report."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Spawned:
    process: subprocess.Popen[bytes]
    started_at: float


def spawn(spec: dict[str, Any], env: dict[str, str], *, stdout: IO[bytes] | int, stderr: IO[bytes] | int
          ) -> Spawned:
    """Start ``spec`` (argv, cwd, mounts, hostname or join) in its own session, and wait until the
    command was exec'd; raise :class:`StartError` when it could not be."""
    spec_r, spec_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCHER), str(spec_r), str(err_w)],
            env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
            pass_fds=(spec_r, err_w),
        )
    finally:
        os.close(spec_r)
        os.close(err_w)
    with os.fdopen(spec_w, "wb") as out:
        out.write(json.dumps({**spec, "env": env, "parent": os.getpid()}).encode())
    with os.fdopen(err_r, "rb") as report:
        error = report.read()
    started_at = time.time()
    if error:
        process.wait()
        detail = json.loads(error)
        raise StartError(detail["error"], int(detail["code"]))
    return Spawned(process, started_at)


def kill_group(pid: int, sig: int) -> None:
    """Signal a container's process group (its session leader's pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def marked(prefix: str, exact: bool = False) -> list[int]:
    """Pids whose initial environment has ``BLUEGREEN_NODE_POD`` starting with (or equal to) ``prefix``."""
    needle = f"{MARKER}={prefix}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as env:
                data = env.read()
        except OSError:
            continue
        items = data.split(b"\0")
        if (needle in items) if exact else any(item.startswith(needle) for item in items):
            found.append(int(entry.name))
    return found


def reap(prefix: str, exact: bool = False, timeout: float = 5.0) -> int:
    """SIGKILL every process marked with ``prefix`` until none is left; returns how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in marked(prefix, exact) if p != os.getpid()]
        alive = [p for p in pids if _alive(p)]
        if not alive:
            break
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)
    return len(killed)


def _alive(pid: int) -> bool:
    """Running and not a zombie (a zombie waits for its parent and holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
