"""The Lease of the leader election: read, create and replace one coordination.k8s.io/v1 Lease, and label the
operator's own pod as the leader (so a Service can send push webhooks to the leader only).

Replacing carries the resourceVersion that was read: when another candidate wrote the Lease in between, the API
server refuses (409) and the caller reads again. These calls go through the elector's own ``ApiClient``, not
through the write guard of the reconciler's (``kube.client.TimedApiClient``): a standby must be able to write
the Lease to become the leader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bluegreen.core.leases import LeaseRecord

LABEL_LEADER = "bluegreen.dev/leader"
"""On the operator's pods: ``"true"`` on the one that holds the Lease (select it in the webhook Service)."""
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class StoredLease:
    """A Lease as read: its record and the resourceVersion a replace must name."""

    record: LeaseRecord
    resource_version: str


def record_of(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") or {}
    return LeaseRecord(holder=str(spec.get("holderIdentity") or ""),
                       duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                       acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                       transitions=int(spec.get("leaseTransitions") or 0))


def spec_of(record: LeaseRecord) -> dict[str, Any]:
    return {"holderIdentity": record.holder, "leaseDurationSeconds": record.duration_seconds,
            "acquireTime": record.acquire_time, "renewTime": record.renew_time,
            "leaseTransitions": record.transitions}


class KubeLeases:
    """One Lease of one namespace, over an ``ApiClient`` of its own."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name

    def read(self) -> StoredLease | None:
        """The Lease, or None when it does not exist."""
        try:
            response = self.coordination.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body = json.loads(response.data)  # type: ignore[attr-defined]
        return StoredLease(record_of(body), str(body["metadata"].get("resourceVersion", "")))

    def create(self, record: LeaseRecord) -> StoredLease | None:
        """Create the Lease holding ``record``; None when another candidate created it first."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec_of(record)}
        try:
            response = self.coordination.create_namespaced_lease(self.namespace, body,  # type: ignore[arg-type]
                                                                 _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        created = json.loads(response.data)  # type: ignore[attr-defined]
        return StoredLease(record_of(created), str(created["metadata"].get("resourceVersion", "")))

    def replace(self, current: StoredLease, record: LeaseRecord) -> StoredLease | None:
        """Write ``record`` over the Lease as read in ``current``; None when it changed since (409)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": current.resource_version},
                "spec": spec_of(record)}
        try:
            response = self.coordination.replace_namespaced_lease(
                self.name, self.namespace, body, _preload_content=False)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        replaced = json.loads(response.data)  # type: ignore[attr-defined]
        return StoredLease(record_of(replaced), str(replaced["metadata"].get("resourceVersion", "")))

    def label_pod(self, namespace: str, pod: str, leader: bool) -> None:
        """Set (or remove) ``bluegreen.dev/leader=true`` on the operator's own pod."""
        patch = {"metadata": {"labels": {LABEL_LEADER: "true" if leader else None}}}
        self.core.patch_namespaced_pod(pod, namespace, patch, _content_type=MERGE)
