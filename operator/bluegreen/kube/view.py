"""The cluster as the watches deliver it: the release Deployments and Jobs, and the Services, in memory.

kopf's watch streams already carry every change of the Deployments and Jobs labelled ``bluegreen.dev/release``
and of the Services; the kopf handlers feed each one here (``observe_*`` / ``*_gone``), and so does every write of
the operator with the object the API server returned, so the step after a write sees it. Reads
(``KubeCluster.color_state`` / ``service_state``) then cost no API request.

Only what the planner needs is kept (``kube.states``: parsed states, uid, resourceVersion, the release label;
``core.job_status`` for Jobs), never whole bodies. A body never replaces a newer one: resourceVersions are
compared (as the integers the API server hands out; an opaque one is taken as newer), and a deleted object
leaves a tombstone for a while, so a write's response that arrives after the deletion's event does not bring
it back.

Thread-safe: events arrive on the event loop, writes return in the worker threads of the passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from bluegreen.core.job_status import JobRecord, job_record
from bluegreen.kube.states import DeploymentRecord, ServiceRecord, deployment_record, service_record

Key = tuple[str, str]  # (namespace, name)
TOMBSTONE_SECONDS = 300.0
_EPOCH = datetime.fromtimestamp(0, UTC)


class _Versioned(Protocol):
    @property
    def resource_version(self) -> str: ...


R = TypeVar("R", bound=_Versioned)


def older(version: str, than: str) -> bool:
    """Is resourceVersion ``version`` older than ``than``? (Not comparable, e.g. empty: no.)"""
    try:
        return int(version) < int(than)
    except ValueError:
        return False


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return str(meta.get("namespace", "")), str(meta["name"])


def _version(body: Mapping[str, Any]) -> str:
    return str(body["metadata"].get("resourceVersion", ""))


class _Store(Generic[R]):
    """Records by (namespace, name), newest resourceVersion wins, with tombstones of deletions."""

    def __init__(self, clock: Callable[[], float], tombstone_seconds: float) -> None:
        self.records: dict[Key, R] = {}
        self._gone: dict[Key, tuple[str, float]] = {}  # key -> (resourceVersion at deletion, when), oldest first
        self._clock = clock
        self._ttl = tombstone_seconds

    def put(self, key: Key, version: str, record: R | None) -> bool:
        """Store ``record`` (None: the object is not one we keep any more) unless ``version`` is outdated.
        Returns whether the store changed."""
        current = self.records.get(key)
        if current is not None and older(version, current.resource_version):
            return False
        gone = self._gone.get(key)
        if gone is not None:
            fresh = gone[1] + self._ttl > self._clock()
            if fresh and not older(gone[0], version):  # deleted at or after this version: stale news
                return False
            del self._gone[key]
        if record is None:
            return self.remove(key, version) if current is not None else False
        self.records[key] = record
        return current != record

    def remove(self, key: Key, version: str) -> bool:
        current = self.records.get(key)
        if current is not None and older(version, current.resource_version):
            return False
        self.records.pop(key, None)
        self._gone.pop(key, None)
        now = self._clock()
        self._gone[key] = (version, now)
        while self._gone:  # drop tombstones older than the ttl (insertion order is age order)
            oldest = next(iter(self._gone))
            if self._gone[oldest][1] + self._ttl > now:
                break
            del self._gone[oldest]
        return current is not None


class ClusterView:
    """The release Deployments and all Services of the watched namespaces, fed by watch events and writes."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 tombstone_seconds: float = TOMBSTONE_SECONDS) -> None:
        self._lock = threading.Lock()
        self._deployments: _Store[DeploymentRecord] = _Store(clock, tombstone_seconds)
        self._services: _Store[ServiceRecord] = _Store(clock, tombstone_seconds)
        self._jobs: _Store[JobRecord] = _Store(clock, tombstone_seconds)
        self._jobs_by_release: dict[Key, set[str]] = {}  # (namespace, release) -> Job names

    # ---- fed by watch events and write responses ------------------------------------------------
    def observe_deployment(self, body: Mapping[str, Any]) -> bool:
        """A Deployment as listed, watched or returned by a write. One without the release label is not
        kept (one that lost it is dropped). Returns whether the view changed."""
        record = deployment_record(body)
        with self._lock:
            return self._deployments.put(_key(body), _version(body), record)

    def deployment_gone(self, body: Mapping[str, Any]) -> DeploymentRecord | None:
        """A Deployment was deleted (or left the label selector); returns the record it had, if any."""
        key = _key(body)
        with self._lock:
            record = self._deployments.records.get(key)
            return record if self._deployments.remove(key, _version(body)) else None

    def observe_service(self, body: Mapping[str, Any]) -> bool:
        record = service_record(body)
        with self._lock:
            return self._services.put(_key(body), _version(body), record)

    def service_gone(self, body: Mapping[str, Any]) -> bool:
        with self._lock:
            return self._services.remove(_key(body), _version(body))

    def observe_job(self, body: Mapping[str, Any]) -> bool:
        """A Job as listed, watched or returned by a write; one without the release label is not kept."""
        key = _key(body)
        with self._lock:
            before = self._jobs.records.get(key)
            changed = self._jobs.put(key, _version(body), job_record(body))
            self._index_job(key, before)
            return changed

    def job_gone(self, body: Mapping[str, Any]) -> JobRecord | None:
        """A Job was deleted (or left the label selector); returns the record it had, if any."""
        key = _key(body)
        with self._lock:
            record = self._jobs.records.get(key)
            removed = self._jobs.remove(key, _version(body))
            self._index_job(key, record)
            return record if removed else None

    def _index_job(self, key: Key, before: JobRecord | None) -> None:
        after = self._jobs.records.get(key)
        if before is not None and (after is None or after.release != before.release):
            names = self._jobs_by_release.get((key[0], before.release), set())
            names.discard(key[1])
            if not names:
                self._jobs_by_release.pop((key[0], before.release), None)
        if after is not None:
            self._jobs_by_release.setdefault((key[0], after.release), set()).add(key[1])

    # ---- read by the passes ---------------------------------------------------------------------
    def deployment(self, namespace: str, name: str) -> DeploymentRecord | None:
        with self._lock:
            return self._deployments.records.get((namespace, name))

    def service(self, namespace: str, name: str) -> ServiceRecord | None:
        with self._lock:
            return self._services.records.get((namespace, name))

    def job(self, namespace: str, name: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.records.get((namespace, name))

    def release_jobs(self, namespace: str, release: str) -> list[JobRecord]:
        """The Jobs labelled for ``release``, oldest first (by creation, then name)."""
        with self._lock:
            names = self._jobs_by_release.get((namespace, release), set())
            records = [self._jobs.records[(namespace, name)] for name in names]
        return sorted(records, key=lambda r: (r.created_at or _EPOCH, r.name))

    def sizes(self) -> tuple[int, int]:
        """How many Deployments and Services the view holds."""
        with self._lock:
            return len(self._deployments.records), len(self._services.records)
