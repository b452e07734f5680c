"""Helpers of the release-gate e2e tests: requests by annotation (what ``bluegreen promote|abort|retry`` write),
the Events the operator posts, and a watch of the Service's selector that timestamps every switch."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client, watch

from conftest import Cluster

PROMOTE, ABORT, RETRY = "bluegreen.dev/promote", "bluegreen.dev/abort", "bluegreen.dev/retry"


def request(cluster: Cluster, annotation: str, commit: str, name: str = "shop") -> None:
    """Annotate the release as ``kubectl annotate bgr shop bluegreen.dev/promote=<commit>`` does."""
    cluster.patch_release({"metadata": {"annotations": {annotation: commit}}}, name)


def annotations(cluster: Cluster, name: str = "shop") -> dict[str, str]:
    return dict(cluster.release(name)["metadata"].get("annotations") or {})


def reasons(cluster: Cluster) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the release's Events."""
    return [(e.type, e.reason, e.message) for e in cluster.events()]


class SelectorWatch:
    """Watches the Service from a thread and keeps (monotonic time, colour) at every change of its selector."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str = "shop") -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.service = namespace, service
        self.changes: list[tuple[float, str | None]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        listing = self.core.list_namespaced_service(self.namespace, field_selector=f"metadata.name={self.service}")
        for item in listing.items:
            self._record(item)
        self._ready.set()
        try:
            for event in self._watch.stream(self.core.list_namespaced_service, self.namespace,
                                            field_selector=f"metadata.name={self.service}", timeout_seconds=600,
                                            resource_version=listing.metadata.resource_version):
                self._record(event["object"])
        except Exception:  # the stream is cut when the watch stops
            pass

    def _record(self, service: Any) -> None:
        color = (service.spec.selector or {}).get("bluegreen.dev/color")
        if not self.changes or self.changes[-1][1] != color:
            self.changes.append((time.monotonic(), color))

    def first_after(self, moment: float, color: str) -> float | None:
        """When the selector first named ``color`` after ``moment`` (monotonic)."""
        return next((t for t, c in self.changes if t >= moment and c == color), None)

    def __enter__(self) -> SelectorWatch:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._watch.stop()
