"""A recorder of every watch event of some kinds (pods, Jobs, Deployments, Services) in one namespace, for assertions on
the order in which things happened during a release: which Job was created after which pod was gone.

Order is proven by ``resourceVersion``: on one etcd (the local control plane, kind...) it is etcd's revision,
which grows with every write to any object, and a DELETED event carries the revision of the deletion. Two
events' revisions therefore order them across kinds, which the times at which two watches delivered them
cannot do. The monotonic time of arrival is kept too, for the figures printed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch


@dataclass(frozen=True)
class Seen:
    """One watch event."""

    kind: str
    """``pod``, ``job``, ``deployment`` or ``service``."""
    type: str
    """``ADDED``, ``MODIFIED`` or ``DELETED``."""
    name: str
    revision: int
    """The object's resourceVersion in the event (of the deletion, for DELETED)."""
    at: float
    """time.monotonic() when the event arrived."""
    obj: Any


KINDS = ("pod", "job", "deployment", "service")


def _lister(api: client.ApiClient, kind: str) -> Callable[..., Any]:
    if kind == "pod":
        return client.CoreV1Api(api).list_namespaced_pod
    if kind == "job":
        return client.BatchV1Api(api).list_namespaced_job
    if kind == "deployment":
        return client.AppsV1Api(api).list_namespaced_deployment
    if kind == "service":
        return client.CoreV1Api(api).list_namespaced_service
    raise ValueError(f"no lister for {kind!r}")


class NamespaceRecorder:
    """``with NamespaceRecorder(api, ns) as events: ...``: every event of the kinds, from the start on."""

    def __init__(self, api: client.ApiClient, namespace: str, kinds: tuple[str, ...] = KINDS) -> None:
        self.api, self.namespace, self.kinds = api, namespace, kinds
        self.events: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watches: list[watch.Watch] = []
        self._threads: list[threading.Thread] = []
        self._ready: list[threading.Event] = []
        self._checkpoints: dict[int, float] = {}

    def _run(self, kind: str, ready: threading.Event) -> None:
        lister = _lister(self.api, kind)
        while not self._stopping.is_set():
            listing = lister(self.namespace)
            with self._lock:
                known = {(e.kind, e.name) for e in self.events}
                for item in listing.items:  # objects that exist before the watch starts (or after a re-list)
                    if (kind, item.metadata.name) not in known:
                        self._add(kind, "ADDED", item)
            ready.set()
            stream = watch.Watch()
            self._watches.append(stream)
            try:
                for event in stream.stream(lister, self.namespace, timeout_seconds=900,
                                           resource_version=listing.metadata.resource_version):
                    with self._lock:
                        self._add(kind, event["type"], event["object"])
            except Exception:  # cut when the recorder stops; otherwise (410 Gone...) list again
                if self._stopping.is_set():
                    return
                time.sleep(0.2)

    def _add(self, kind: str, type_: str, obj: Any) -> None:
        if type_ not in ("ADDED", "MODIFIED", "DELETED"):
            return
        self.events.append(Seen(kind, type_, obj.metadata.name, int(obj.metadata.resource_version),
                                time.monotonic(), obj))

    def __enter__(self) -> NamespaceRecorder:
        for kind in self.kinds:
            ready = threading.Event()
            thread = threading.Thread(target=self._run, args=(kind, ready), daemon=True, name=f"record-{kind}")
            self._ready.append(ready)
            self._threads.append(thread)
            thread.start()
        for ready in self._ready:
            ready.wait(15)
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        for stream in self._watches:
            stream.stop()

    def of(self, kind: str, predicate: Callable[[Seen], bool] = lambda _e: True) -> list[Seen]:
        """The events of ``kind`` matching ``predicate``, in order of arrival."""
        with self._lock:
            return [e for e in self.events if e.kind == kind and predicate(e)]

    def __iter__(self) -> Iterator[Seen]:
        with self._lock:
            return iter(list(self.events))

    def checkpoint(self) -> int:
        """The cluster's revision now (a quorum list), remembered with the time: events after this moment have
        a larger revision."""
        listing = client.CoreV1Api(self.api).list_namespaced_config_map(self.namespace, limit=1)
        revision = int(listing.metadata.resource_version)
        self._checkpoints[revision] = time.monotonic()
        return revision

    def mark_at(self, revision: int) -> float:
        """When ``checkpoint()`` returned ``revision`` (monotonic)."""
        return self._checkpoints[revision]
