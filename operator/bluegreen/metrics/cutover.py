"""The moments a cut-over is measured between, on one monotonic clock, as this process saw them. Pure.

- *available*: when a colour's Deployment was first seen fully available (every replica updated, ready and
  available) since it last was not, from the Deployments' watch;
- *commit seen*: when a git check first returned a commit for a release;
- *switched*: when the operator's selector patch of a Service was accepted.

``cutover`` turns them into the two latencies of a switch: from *ready to switch* (the later of the colour
available and the commit seen: for a warm rollback the colour was available long before, and the switch
became possible only when the revert was fetched) and from *commit seen*. A moment this process did not see
(a colour already available at start-up is seen then) gives no latency rather than a wrong one.
Not thread-safe: the recorder holds its lock around every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_COMMITS_PER_RELEASE: Final = 16
"""Commits remembered per release (the oldest first seen is forgotten first)."""


@dataclass(frozen=True)
class Latencies:
    ready_to_switch: float | None
    commit_to_switch: float | None


class CutoverClock:
    def __init__(self) -> None:
        self._available: dict[tuple[str, str, str], float | None] = {}
        self._commits: dict[tuple[str, str], dict[str, float]] = {}
        self._switches: dict[tuple[str, str], tuple[str, float]] = {}

    def color(self, namespace: str, release: str, color: str, available: bool, now: float) -> None:
        key = (namespace, release, color)
        if not available:
            self._available[key] = None
        elif self._available.get(key) is None:
            self._available[key] = now

    def forget_color(self, namespace: str, release: str, color: str) -> None:
        self._available.pop((namespace, release, color), None)

    def commit(self, namespace: str, release: str, commit: str, now: float) -> None:
        seen = self._commits.setdefault((namespace, release), {})
        if commit in seen:
            return
        seen[commit] = now
        while len(seen) > MAX_COMMITS_PER_RELEASE:
            del seen[next(iter(seen))]

    def forget_release(self, namespace: str, release: str) -> None:
        self._commits.pop((namespace, release), None)

    def switched(self, namespace: str, service: str, color: str, now: float) -> None:
        self._switches[(namespace, service)] = (color, now)

    def cutover(self, namespace: str, release: str, service: str, color: str, commit: str, now: float) -> Latencies:
        """The latencies of the switch of ``release`` (through ``service``) to ``color`` running ``commit``,
        reported ``now``: the switch's own moment when the operator's patch was seen, else ``now``."""
        switch = self._switches.pop((namespace, service), None)
        at = switch[1] if switch is not None and switch[0] == color else now
        seen = self._commits.get((namespace, release), {}).get(commit)
        available = self._available.get((namespace, release, color))
        ready = None if available is None else max(available, seen if seen is not None else available)
        return Latencies(None if ready is None else max(0.0, at - ready),
                         None if seen is None else max(0.0, at - seen))
