"""Kubelet's crash-loop back-off (``client-go/util/flowcontrol.Backoff`` as kuberuntime uses it).

The first restart of a container is immediate and arms a window of ``base`` seconds; a container that
finishes again is restarted only when ``window`` seconds have passed since it finished, and each restart
doubles the window up to ``cap``. A container that ran longer than ``cap`` since the last restart starts
over at ``base``.
"""

from __future__ import annotations


class CrashBackoff:
    def __init__(self, base: float = 10.0, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self.window = 0.0
        self.last_update: float | None = None

    def _expired(self, finished_at: float) -> bool:
        return self.last_update is None or finished_at - self.last_update > self.cap

    def remaining(self, finished_at: float, now: float) -> float:
        """Seconds to wait before restarting a container that finished at ``finished_at`` (0: now)."""
        if self._expired(finished_at):
            return 0.0
        return max(0.0, self.window - (now - finished_at))

    def restarted(self, finished_at: float, now: float) -> None:
        """Record a restart (kubelet's ``Backoff.Next``)."""
        self.window = self.base if self._expired(finished_at) else min(self.window * 2, self.cap)
        self.last_update = now
