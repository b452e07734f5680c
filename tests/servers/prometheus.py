"""A throwaway real Prometheus server on loopback for tests (Debian's ``prometheus`` package).

``PrometheusServer`` writes a scrape configuration for the given targets (one job, a short scrape interval),
starts ``prometheus`` listening on 127.0.0.1 on a free port with its TSDB in a fresh temporary directory,
waits for ``/-/ready``, and ``stop()`` shuts it down and removes the directory. Tests read it the way a
dashboard does: the HTTP API's ``/api/v1/query`` (``query``), polled until the scrapes show what is
expected (``wait_for``), never after a fixed sleep.

The binary comes from ``$BLUEGREEN_PROMETHEUS`` or ``$PATH``; the package is installed (its system service
not started) by ``tests/servers/install-deps.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from processes import stop_group

LOOPBACK = "127.0.0.1"
JOB = "bluegreen-operator"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
BINARY_ENV = "BLUEGREEN_PROMETHEUS"

Sample = dict[str, Any]
"""One element of an instant query's ``result``: ``{"metric": {labels}, "value": [time, "value"]}``."""


def prometheus_binary() -> str:
    found = os.environ.get(BINARY_ENV) or shutil.which("prometheus")
    if not found:
        raise RuntimeError("prometheus not found: run tests/servers/install-deps.sh (Debian package prometheus)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def value(sample: Sample) -> float:
    return float(sample["value"][1])


class PrometheusServer:
    """Prometheus scraping ``targets`` (``host:port``) every ``scrape_interval``; ``with PrometheusServer(...)``."""

    def __init__(self, targets: Sequence[str], *, scrape_interval: str = "1s") -> None:
        self.binary = prometheus_binary()
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.port = 0
        self.root: Path | None = None
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> PrometheusServer:
        began = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="bluegreen-prometheus-"))
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": self.targets}]}],
        }, indent=2))
        self.port = free_port()
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
                 f"--web.listen-address={LOOPBACK}:{self.port}", "--storage.tsdb.retention.time=1h",
                 "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
                start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._proc.returncode}: {self.log_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"prometheus was not ready within {START_TIMEOUT}s: {self.log_text()}")

    def stop(self) -> None:
        """SIGTERM (Prometheus shuts down cleanly), SIGKILL if it lingers, then remove the directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, signal.SIGTERM, STOP_TIMEOUT)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- use -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "prometheus.log"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def query(self, expr: str) -> list[Sample]:
        """An instant query through the HTTP API (``/api/v1/query``): the vector's samples."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"query {expr!r} refused: {exc.code} {exc.read()[:500]!r}") from None
        assert body["status"] == "success", body
        data = body["data"]
        assert data["resultType"] == "vector", f"{expr!r} is not an instant vector: {data['resultType']}"
        result: list[Sample] = data["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The value of a query that yields at most one sample (None: none)."""
        samples = self.query(expr)
        assert len(samples) <= 1, f"{expr!r} gave {len(samples)} samples: {samples}"
        return value(samples[0]) if samples else None

    def wait_for(self, expr: str, predicate: Callable[[list[Sample]], bool], *, timeout: float = 30,
                 what: str | None = None) -> list[Sample]:
        """Poll ``expr`` until ``predicate`` holds for its samples (each scrape may bring them); return them."""
        deadline = time.monotonic() + timeout
        samples: list[Sample] = []
        while time.monotonic() < deadline:
            samples = self.query(expr)
            if predicate(samples):
                return samples
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or expr}; last samples: {samples}")

    def wait_value(self, expr: str, expected: float, *, timeout: float = 30) -> None:
        """Poll until ``expr`` yields exactly one sample equal to ``expected``."""
        self.wait_for(expr, lambda s: len(s) == 1 and value(s[0]) == expected, timeout=timeout,
                      what=f"{expr} == {expected}")
