"""The benchmarks' workload: Deployment bodies, local git repositories, a hanging git server, and
objects created from a few threads at once (so creating them is not what a benchmark measures)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@local", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@local", "GIT_CONFIG_NOSYSTEM": "1"}


def deployment(name: str, labels: dict[str, str], image: str, delay: int) -> dict[str, Any]:
    """One replica of a simulated web container, Ready ``delay`` seconds after it starts."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                               "initialDelaySeconds": delay}}]}}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Repo:
    """A local git repository holding one Deployment manifest; releases follow it by its path."""

    def __init__(self, path: Path, image: str, delay: int) -> None:
        self.path, self.delay = path, delay
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.commit(image)

    @property
    def url(self) -> str:
        return str(self.path)

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.path, env={**os.environ, **GIT_ENV, "HOME": str(self.path.parent)},
                       check=True, capture_output=True, timeout=60)

    def commit(self, image: str) -> None:
        manifest = deployment("shop", {"app": "shop"}, image, self.delay)
        (self.path / "app.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"release {image}")


class HangingServer:
    """A TCP server on loopback that accepts every connection and never answers (a hung git server)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return

    def stop(self) -> None:
        self.stopping.set()
        for conn in [*self.held, self.sock]:
            conn.close()


def in_parallel(threads: int, task: Callable[[Any], None], items: list[Any], progress: Callable[[str], None],
                label: str) -> float:
    """Run ``task`` over ``items`` on ``threads`` threads (a progress line every 10 s); seconds taken."""
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        pending = {pool.submit(task, item) for item in items}
        while pending:
            done, pending = wait(pending, timeout=10, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    future.result()
            if pending:
                progress(f"  {label}: {len(items) - len(pending)}/{len(items)}")
    return time.monotonic() - started


def drained(response: Any) -> None:
    """Read and release a raw (``_preload_content=False``) response so its connection goes back to the pool."""
    response.read()
    response.release_conn()
