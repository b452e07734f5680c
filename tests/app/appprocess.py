"""Run the test web app as a real process on a loopback address, for tests that need one without a cluster.

    with AppProcess("v1", host="127.0.0.77", env={"APP_MESSAGE": "hi"}) as app:
        status, headers, body = app.request("GET", "/")

The process gets a clean environment (``PATH`` plus ``env``) and its own process group; its output goes
to a log file (in ``log_dir``, else in a temporary directory removed by ``stop()``). ``stop()`` sends
SIGTERM, waits, and kills the group if it lingers.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

WEBAPP = Path(__file__).resolve().parent / "webapp.py"
START_TIMEOUT = 10.0


def free_port(host: str) -> int:
    """A TCP port free on ``host`` a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class AppProcess:
    """One ``webapp.py`` process; ``start()`` returns once it accepts connections (unless ``wait=False``)."""

    def __init__(self, version: str, host: str = "127.0.0.77", port: int | None = None,
                 env: Mapping[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.version = version
        self.host = host
        self.port = port or free_port(host)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "APP_VERSION": version,
                    "APP_HOST": host, "APP_PORT": str(self.port), **(env or {})}
        self._own_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bluegreen-app-"))
        self.log = self.log_dir / f"webapp-{version}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.startup_seconds = 0.0
        """Seconds from spawning the process to its first accepted connection."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, wait: bool = True) -> AppProcess:
        with self.log.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-u", str(WEBAPP)], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout: float = START_TIMEOUT) -> float:
        """Block until the app accepts a connection; returns (and records) the seconds since spawning."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webapp exited with {self.proc.returncode}: {self.log_text()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                self.startup_seconds = time.monotonic() - self.started_at
                return self.startup_seconds
            time.sleep(0.005)
        raise RuntimeError(f"webapp did not listen on {self.host}:{self.port} within {timeout}s: {self.log_text()}")

    def request(self, method: str, path: str, body: bytes | None = None,
                timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: (status, lower-cased headers, body)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Signal the process group, only while the process has not been reaped (its id is still ours)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM, wait up to 10 s, then SIGKILL the group; returns the exit code. Without a ``log_dir``
        given, the temporary log directory is removed too."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self._own_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
