"""The leader elector: one thread that holds (or waits for) the operator's Lease (``core.leases`` decides,
``kube.leases`` reads and writes), and tells the operator when it starts and stops leading.

Two or more operator processes may run; only the leader runs passes and writes. A standby keeps its watches,
and so its in-memory view of the cluster, warm: it takes over within the lease duration of the leader's last
renewal, with nothing to list. ``is_leader`` is the guard every write of the reconciler's API client checks
(``kube.client.TimedApiClient``): a leader that could not renew for the renew deadline writes nothing more,
before any standby may take over. Leadership, once lost, is not regained by this process: ``on_stopped`` ends it
(Kubernetes restarts the container, which then stands by), as client-go's controllers do.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from bluegreen.core.leases import LeaseSettings, Observation, claim, release, still_leading
from bluegreen.kube.leases import KubeLeases, StoredLease
from bluegreen.logs import get_logger

RETRY_JITTER: Final = 1.2


def micro_time(now: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, UTC."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity(environ: dict[str, str] | None = None) -> str:
    """This process's candidate name: the pod's name (``POD_NAME``, else the host name) and a random suffix, so
    a restarted container is a new candidate."""
    env = os.environ if environ is None else environ
    return f"{env.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    """Campaigns for the Lease on a daemon thread; thread-safe ``is_leader``."""

    def __init__(self, leases: KubeLeases, settings: LeaseSettings, me: str, *,
                 on_started: Callable[[], None], on_stopped: Callable[[], None],
                 pod: tuple[str, str] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rand: Callable[[], float] = random.random) -> None:
        self.leases = leases
        self.settings = settings
        self.me = me
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.pod = pod
        """(namespace, name) of this process's pod, labelled ``bluegreen.dev/leader`` while it leads."""
        self.monotonic = monotonic
        self.clock = clock
        self.rand = rand
        self.log = get_logger("bluegreen.leader").bind(lease=f"{settings.namespace}/{settings.name}", identity=me)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False
        self._renewed: float | None = None  # monotonic: when the last successful write was sent
        self._observation = Observation(None, 0.0)
        self._stored: StoredLease | None = None
        self._problem: str | None = None

    # ---- what the operator asks -----------------------------------------------------------------
    def is_leader(self) -> bool:
        """Does this process hold the Lease, renewed within the renew deadline?"""
        with self._lock:
            return self._leading and still_leading(self._renewed, self.monotonic(), self.settings)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bluegreen-leader", daemon=True)
        self._thread.start()

    def stop(self, *, give_up: bool = True) -> None:
        """Stop campaigning; with ``give_up`` a held Lease is released so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.retry_period + 10)
        with self._lock:
            leading, self._leading = self._leading, False
        if leading and give_up:
            self._give_up()

    # ---- the campaign ---------------------------------------------------------------------------
    def _run(self) -> None:
        self._label(False)  # a restarted container keeps its pod's labels: it is not the leader (yet)
        self.log.info("waiting for the leader Lease")
        while not self._stop.is_set():
            attempt = self.monotonic()
            held = self._attempt()
            with self._lock:
                leading = self._leading
                if held:
                    self._renewed = attempt
                    self._leading = True
                lost = leading and not held and not still_leading(self._renewed, self.monotonic(), self.settings)
                if lost:
                    self._leading = False
            if lost:
                self.log.error("leader Lease lost: not renewed within the renew deadline; stopping",
                               renew_deadline=self.settings.renew_deadline)
                self.on_stopped()
                return
            if held and not leading:
                self.log.info("leader Lease acquired", transitions=self._observation.record.transitions
                              if self._observation.record else 0)
                self._label(True)
                self.on_started()
            pause = self.settings.retry_period
            if not (held or leading):
                pause *= 1 + RETRY_JITTER * self.rand()
            self._stop.wait(max(0.0, pause - (self.monotonic() - attempt)))

    def _attempt(self) -> bool:
        """One read-and-claim (a holder renews straight over the copy it wrote last); True: held now."""
        try:
            stored = self._stored if self._leading and self._stored is not None else self.leases.read()
            written = self._claim(stored)
            if written is None and stored is self._stored and self._stored is not None:
                written = self._claim(self.leases.read())  # someone wrote it since our last write: look again
            self._report(None)
            return written is not None
        except Exception as exc:  # the API server is unreachable or refuses: tried again after the retry period
            self._report(f"{type(exc).__name__}: {str(exc)[:200]}")
            return False

    def _claim(self, stored: StoredLease | None) -> StoredLease | None:
        now = self.monotonic()
        self._observation = self._observation.seen(stored.record if stored else None, now)
        record = claim(self._observation, self.me, now, micro_time(self.clock()), self.settings)
        if record is None:
            self._stored = None
            return None
        written = self.leases.create(record) if stored is None else self.leases.replace(stored, record)
        self._stored = written
        if written is not None:
            self._observation = Observation(written.record, self.monotonic())
        return written

    def _give_up(self) -> None:
        try:
            stored = self.leases.read()
            if stored is not None:
                record = release(stored.record, self.me, micro_time(self.clock()))
                if record is not None and self.leases.replace(stored, record) is not None:
                    self.log.info("leader Lease released")
        except Exception as exc:  # the others take over after the lease duration instead
            self.log.warning("leader Lease not released", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        self._label(False)

    def _label(self, leader: bool) -> None:
        if self.pod is None:
            return
        try:
            self.leases.label_pod(self.pod[0], self.pod[1], leader)
        except Exception as exc:  # webhooks may reach a standby meanwhile; the election itself is unaffected
            self.log.warning("cannot label the operator's pod", leader=leader,
                             error=f"{type(exc).__name__}: {str(exc)[:200]}")

    def _report(self, problem: str | None) -> None:
        """One log line when talking to the API server starts or stops failing."""
        if problem == self._problem:
            return
        self._problem = problem
        if problem is None:
            self.log.info("leader Lease reachable again")
        else:
            self.log.warning("cannot read or write the leader Lease; retrying", error=problem)
