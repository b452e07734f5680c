"""What the release benchmarks share: a git helper for their throwaway repositories, the p90 they print, and
watch streams on daemon threads that stop cleanly."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from kubernetes import watch

GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@local", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@local", "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (its HOME beside it, a fixed author) and return its output."""
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def median_p90(values: list[float]) -> tuple[float, float]:
    """The median and the 90th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return statistics.median(values), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


class WatchThreads:
    """Watch streams, each on a daemon thread; ``stop`` ends them (the error a stopped stream raises is not one)."""

    def __init__(self, streams: int) -> None:
        self.lock = threading.Lock()
        self.watches = [watch.Watch() for _ in range(streams)]
        self.stopping = False

    def run(self, *targets: Callable[[], None]) -> None:
        self.stopping = False
        for target in targets:
            threading.Thread(target=self._guarded, args=(target,), daemon=True).start()

    def stop(self) -> None:
        self.stopping = True
        for w in self.watches:
            w.stop()

    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:
            if not self.stopping:
                raise
