"""Hook Jobs run once per commit: create (or adopt) the Job of a run, read its verdict from the Job watch's view,
stop runs that no longer matter, delete old finished runs, wake the release when a verdict changes.

Shared by the Job checks (``hooks.job_checks``) and the expand/contract migrations. The state of a run lives on
its Job (its deterministic name, labels and the commit annotation, ``core.hook_jobs``): after an operator
restart the view lists the Job again, so a finished run is not run again and a running one is adopted. What
is kept in memory is only a cache: the log lines of a failed Job (read once), the Jobs this process deleted,
the runs the API server refused.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bluegreen.core.checks import Verdict
from bluegreen.core.desired import owner_reference
from bluegreen.core.errors import ClusterError
from bluegreen.core.hook_jobs import HookJobRun, JobManifest, render_job
from bluegreen.core.job_status import JobCluster, JobRecord
from bluegreen.core.spec import ReleaseRef

KEEP_RUNS: Final = 3
"""Finished runs kept per release and hook (with their pods and logs); older ones are deleted."""
LOG_LINES: Final = 20
MAX_LOG_CHARS: Final = 2000
CACHE_SIZE: Final = 1024
DEADLINE_GRACE: Final = 10.0
"""A run still going this long after its timeout fails, whatever the Job controller does (kube-controller-manager
1.20 can miss a Job's activeDeadlineSeconds when the deadline's resync comes before it has seen the Job's pod)."""


@dataclass(frozen=True)
class JobOutcome:
    """The latest word on one run's Job."""

    job: str
    verdict: Verdict
    reason: str
    message: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    uid: str = ""
    """The Job's uid ("" while no Job was created: refused, or waiting for a deleted one to go)."""
    created_at: datetime | None = None


class _Lru(OrderedDict[Any, Any]):
    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > CACHE_SIZE:
            self.popitem(last=False)


class HookJobs:
    """Runs hook Jobs against a ``JobCluster``; thread-safe (passes run in worker threads, the watch on the
    event loop). ``wake(release)`` is called, from the watch's thread, when a Job's verdict changed or it went.
    ``owners``: give each Job an ownerReference to its release (when the release's uid is known), so deleting
    the release deletes its Jobs."""

    def __init__(self, cluster: JobCluster, wake: Callable[[ReleaseRef], None], *, keep_runs: int = KEEP_RUNS,
                 log_lines: int = LOG_LINES, owners: bool = True,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if keep_runs < 1:
            raise ValueError(f"keep_runs must be at least 1, not {keep_runs}")
        self.cluster = cluster
        self.wake = wake
        self.keep_runs = keep_runs
        self.log_lines = log_lines
        self.owners = owners
        self._lock = threading.Lock()
        self._logs = _Lru()  # Job uid -> the tail of its pod's log (None: none to read)
        self._refused = _Lru()  # (namespace, Job name) -> JobOutcome: the API server refused the Job
        self._deleted = _Lru()  # Job uid -> True: deleted by this process, not a run's Job any more
        self._seen: dict[tuple[str, str], tuple[Verdict, str] | None] = {}
        self.clock = clock
        self._timers: set[tuple[str, str]] = set()  # Jobs whose deadline will wake their release

    # ---- the runs ---------------------------------------------------------------------------------
    def ensure(self, run: HookJobRun, manifest: JobManifest, *, timeout_seconds: float | None = None) -> JobOutcome:
        """Create the Job of ``run`` unless it exists (idempotent), and return its outcome."""
        namespace, name = run.release.namespace, run.job_name
        known = self.outcome(run, timeout_seconds=timeout_seconds)
        if known is not None:
            return known
        owner = owner_reference(run.release.name, run.release.uid) if self.owners and run.release.uid else None
        body = render_job(manifest, run, timeout_seconds=timeout_seconds, owner=owner)
        try:
            record = self.cluster.create_job(body)
        except ClusterError as exc:
            refused = JobOutcome(name, Verdict.FAILED, exc.reason, exc.message)
            with self._lock:
                self._refused.remember((namespace, name), refused)
            return refused
        self.cleanup(run.release, run.hook)
        if self._is_deleted(record):  # the Job this process cancelled is not gone yet: created once it is
            return JobOutcome(name, Verdict.RUNNING, "Waiting", f"Job {name} waits for its previous run, "
                                                                "cancelled, to be deleted")
        return self._outcome_of(record, timeout_seconds)

    def outcome(self, run: HookJobRun, *, timeout_seconds: float | None = None) -> JobOutcome | None:
        """The outcome of ``run`` from the view; None when its Job was not created (or this process deleted
        it). A failure's message names the Job, how it failed and the last lines of its pod's log. With
        ``timeout_seconds``, a Job still running ``DEADLINE_GRACE`` after it is a failure
        (``JobDeadlineExceeded``), and its release is woken then."""
        namespace, name = run.release.namespace, run.job_name
        with self._lock:
            refused = self._refused.get((namespace, name))
        if refused is not None:
            return refused  # type: ignore[no-any-return]
        record = self.cluster.job(namespace, name)
        if record is None or record.commit != run.commit or self._is_deleted(record):
            return None
        return self._outcome_of(record, timeout_seconds)

    def _outcome_of(self, record: JobRecord, timeout_seconds: float | None = None) -> JobOutcome:
        state = record.state
        if state.verdict is Verdict.RUNNING and timeout_seconds is not None and record.created_at is not None:
            overdue = self._overdue(record, timeout_seconds)
            if overdue is not None:
                return overdue
        message = f"Job {record.name}: {state.message}"
        if state.verdict is Verdict.PASSED:
            message = f"Job {record.name} completed"
        elif state.verdict is Verdict.FAILED:
            message = f"Job {record.name} failed ({state.message})"
            tail = self._log_tail(record)
            if tail:
                message += f"; the last lines of its pod's log:\n{tail}"
        return JobOutcome(record.name, state.verdict, state.reason, message, state.started_at, state.finished_at,
                          record.uid, record.created_at)

    def _overdue(self, record: JobRecord, timeout_seconds: float) -> JobOutcome | None:
        """The failure of a Job running past its timeout and ``DEADLINE_GRACE``; None while it has time left
        (a timer then wakes its release when that time is up)."""
        assert record.created_at is not None
        limit = record.created_at + timedelta(seconds=math.ceil(timeout_seconds) + DEADLINE_GRACE)
        now = self.clock()
        if now < limit:
            self._wake_at(record, (limit - now).total_seconds())
            return None
        message = (f"Job {record.name} failed (DeadlineExceeded: still running {DEADLINE_GRACE:g} s after its "
                   f"timeoutSeconds of {timeout_seconds:g} s: {record.state.message})")
        return JobOutcome(record.name, Verdict.FAILED, "JobDeadlineExceeded", message, record.state.started_at, now,
                          record.uid, record.created_at)

    def _wake_at(self, record: JobRecord, seconds: float) -> None:
        key = (record.namespace, record.name)
        with self._lock:
            if key in self._timers:
                return
            self._timers.add(key)

        def due() -> None:
            with self._lock:
                self._timers.discard(key)
            self.wake(ReleaseRef(record.namespace, record.release))

        timer = threading.Timer(seconds + 0.5, due)
        timer.daemon = True
        timer.start()

    def _log_tail(self, record: JobRecord) -> str | None:
        """Read once per failed Job (a failed read is tried again on the next pass)."""
        with self._lock:
            if record.uid in self._logs:
                return self._logs[record.uid]  # type: ignore[no-any-return]
        try:
            text = self.cluster.job_log_tail(record, self.log_lines)
        except Exception:  # the API server is unreachable or refuses: the verdict stands, the lines may follow
            return None
        tail = text.rstrip("\n")[-MAX_LOG_CHARS:] if text else None
        with self._lock:
            self._logs.remember(record.uid, tail)
        return tail

    def runs(self, release: ReleaseRef, hooks: frozenset[str]) -> list[JobRecord]:
        """The Jobs of ``release`` for ``hooks`` in the view, oldest first, but those this process deleted."""
        return [record for record in self.cluster.release_jobs(release.namespace, release.name)
                if record.hook in hooks and not self._is_deleted(record)]

    def cancel(self, release: ReleaseRef, *, hooks: frozenset[str], keep: Callable[[JobRecord], bool]) -> list[str]:
        """Delete the unfinished Jobs of ``release`` for ``hooks`` that ``keep`` does not keep (their pods with
        them); finished ones stay for their logs until ``cleanup``. Returns the names deleted."""
        deleted = []
        for record in self.cluster.release_jobs(release.namespace, release.name):
            if record.hook in hooks and not record.state.finished and not keep(record) \
                    and not self._is_deleted(record):
                self._delete(record)
                deleted.append(record.name)
        return deleted

    def rerun(self, run: HookJobRun) -> None:
        """Forget the outcome of ``run`` and delete its Job, finished or not, so that the next ``ensure``
        runs it again (``bluegreen retry``)."""
        namespace, name = run.release.namespace, run.job_name
        with self._lock:
            self._refused.pop((namespace, name), None)
        record = self.cluster.job(namespace, name)
        if record is not None and not self._is_deleted(record):
            self._delete(record)

    def cleanup(self, release: ReleaseRef, hook: str) -> list[str]:
        """Delete the finished Jobs of ``hook`` of all but the newest ``keep_runs`` runs (a run: a commit and
        colour) of ``release``. Returns the names deleted."""
        runs: dict[tuple[str | None, str | None], list[JobRecord]] = {}
        for record in self.cluster.release_jobs(release.namespace, release.name):  # oldest first
            if record.hook == hook and not self._is_deleted(record):
                key = (record.commit, record.color)
                runs[key] = [*runs.pop(key, []), record]  # re-inserted: the run's newest Job decides its age
        deleted = []
        for records in list(runs.values())[:-self.keep_runs]:
            for record in records:
                if record.state.finished:
                    self._delete(record)
                    deleted.append(record.name)
        return deleted

    def _delete(self, record: JobRecord) -> None:
        self.cluster.delete_job(record.namespace, record.name)
        with self._lock:
            self._deleted.remember(record.uid, True)

    def _is_deleted(self, record: JobRecord) -> bool:
        with self._lock:
            return record.uid in self._deleted

    # ---- fed by the Job watch ---------------------------------------------------------------------
    def observed(self, namespace: str, name: str) -> None:
        """The watch delivered a change of a Job (the view has it already): wake its release when the Job's
        verdict changed (a new Job, Running -> Passed/Failed)."""
        record = self.cluster.job(namespace, name)
        verdict = (record.state.verdict, record.state.reason) if record is not None else None
        with self._lock:
            before = self._seen.get((namespace, name))
            if record is None:
                self._seen.pop((namespace, name), None)
            else:
                self._seen[(namespace, name)] = verdict
        if record is not None and before != verdict:
            self.wake(ReleaseRef(namespace, record.release))

    def gone(self, record: JobRecord) -> None:
        """The watch saw a Job of ours deleted: forget it, wake its release."""
        with self._lock:
            self._seen.pop((record.namespace, record.name), None)
            self._logs.pop(record.uid, None)
            self._deleted.pop(record.uid, None)
        self.wake(ReleaseRef(record.namespace, record.release))

