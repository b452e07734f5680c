"""An in-memory ``JobCluster`` for reconcile passes: Jobs kept in a real ``ClusterView``; the test plays the Job
controller (``finish``) and the watch (deletions reach the view when ``deliver`` is called, as a DELETED event
would, so a Job deleted for a rerun is still there for a moment, like on a real API server)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bluegreen.core.job_status import JobRecord
from bluegreen.core.timestamps import format_time
from bluegreen.kube.view import ClusterView


class FakeJobs:
    """Create, delete and read hook Jobs; ``created`` and ``deleted`` record the names in order."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.view = ClusterView()
        self.clock = clock
        self.bodies: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.logs: dict[str, str] = {}
        self.on_gone: Callable[[JobRecord], None] | None = None
        """``HookJobs.gone``: what the handler of a DELETED event calls."""
        self._pending: list[str] = []
        self._versions = itertools.count(1)

    # ---- the JobCluster port
    def job(self, namespace: str, name: str) -> JobRecord | None:
        return self.view.job(namespace, name)

    def release_jobs(self, namespace: str, release: str) -> Sequence[JobRecord]:
        return self.view.release_jobs(namespace, release)

    def create_job(self, body: Mapping[str, Any]) -> JobRecord:
        name = body["metadata"]["name"]
        if name not in self.bodies:  # else AlreadyExists: the same run (KubeJobs returns it)
            self.created.append(name)
            stored = copy.deepcopy(dict(body))
            stored["metadata"].update(uid=f"uid-{name}-{len(self.created)}",
                                      creationTimestamp=format_time(self.clock()))
            self.bodies[name] = stored
            self._store(name)
        record = self.view.job(body["metadata"]["namespace"], name)
        assert record is not None
        return record

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        if name in self.bodies and name not in self._pending:
            self._pending.append(name)

    def job_log_tail(self, job: JobRecord, lines: int) -> str | None:
        return self.logs.get(job.name)

    # ---- the Job controller and the watch
    def _store(self, name: str) -> None:
        self.bodies[name]["metadata"]["resourceVersion"] = str(next(self._versions))
        self.view.observe_job(self.bodies[name])

    def finish(self, name: str, ok: bool = True, log: str | None = None) -> None:
        """The Job controller's verdict on Job ``name`` (and what its pod printed)."""
        stamp = format_time(self.clock())
        condition = {"type": "Complete" if ok else "Failed", "status": "True", "lastTransitionTime": stamp,
                     **({} if ok else {"reason": "BackoffLimitExceeded", "message": "Job has reached the specified "
                                                                                   "backoff limit"})}
        self.bodies[name]["status"] = {"startTime": self.bodies[name]["metadata"]["creationTimestamp"],
                                       "conditions": [condition], **({"completionTime": stamp} if ok else {})}
        if log is not None:
            self.logs[name] = log
        self._store(name)

    def deliver(self) -> None:
        """The watch's DELETED events for every Job deleted since the last call."""
        for name in self._pending:
            body = self.bodies.pop(name)
            body["metadata"]["resourceVersion"] = str(next(self._versions))
            gone = self.view.job_gone(body)
            if gone is not None and self.on_gone is not None:
                self.on_gone(gone)
        self._pending.clear()

    def names(self, hook: str) -> list[str]:
        """The Jobs of ``hook`` that exist now, oldest first."""
        return [name for name, body in self.bodies.items() if body["metadata"]["labels"]["bluegreen.dev/hook"] == hook]
