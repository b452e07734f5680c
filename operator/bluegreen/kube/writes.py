"""The operator's writes: server-side apply of a colour, a replica change, a one-key selector patch, a status
patch, an Event on the release, and the CLI's annotation and spec patches.

Each write of a Deployment or a Service feeds the object the API server returned into the view (and a status
patch hands the release back through ``on_release``), so the next step of the pass sees its own write. Writes
to a Deployment carry the uid the view knows as a precondition: if the view is stale (the Deployment was
replaced or deleted meanwhile), the API server refuses the write and the next pass re-plans.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bluegreen.core.spec import (
    API_VERSION,
    FIELD_MANAGER,
    GROUP,
    KIND,
    LABEL_COLOR,
    LABEL_RELEASE,
    PLURAL,
    VERSION,
    Color,
    ReleaseRef,
    deployment_name,
)
from bluegreen.core.timestamps import format_time
from bluegreen.kube.reads import KubeReads
from bluegreen.kube.states import deployment_conflict, release_label

COMPONENT = "bluegreen-operator"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def _json(response: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(response.data)
    return result


class KubeWrites(KubeReads):
    """PATCHes and CREATEs, each with the operator's field manager where the API takes one."""

    on_release: Callable[[dict[str, Any]], None] | None = None
    """Called with the release the API server returned after a status patch (from the pass's thread)."""

    # ---- act ------------------------------------------------------------------------------------
    def apply_deployment(self, body: Mapping[str, Any]) -> None:
        """Server-side apply of a colour's Deployment: fields we stop setting are removed, others kept.

        Applied only to a Deployment known to be the release's own: when the view has none of that name, it is
        read once (a same-named Deployment without the release label is invisible to the watch) and refused
        if it belongs to someone else (``DeploymentConflict``)."""
        meta = body["metadata"]
        namespace, name, release = meta["namespace"], meta["name"], meta["labels"][LABEL_RELEASE]
        known = self.view.deployment(namespace, name)
        uid = known.uid if known is not None else None
        if known is None:
            current = self.get_json(self.apps.read_namespaced_deployment, name, namespace)
            if current is not None:
                if release_label(current) != release:
                    raise deployment_conflict(name, release)
                self.view.observe_deployment(current)
                uid = current["metadata"].get("uid")
        elif known.release != release:
            raise deployment_conflict(name, release)
        applied = {**body, "metadata": {**meta, "uid": uid}} if uid else dict(body)
        response = self.apps.patch_namespaced_deployment(name, namespace, applied, field_manager=FIELD_MANAGER,
                                                         force=True, _content_type=APPLY, _preload_content=False)
        self.view.observe_deployment(_json(response))

    def scale(self, release: ReleaseRef, color: Color, replicas: int, annotations: Mapping[str, str | None]) -> None:
        """Set a colour's replica count (and bookkeeping annotations; None removes one)."""
        name = deployment_name(release.name, color)
        known = self.view.deployment(release.namespace, name)
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if known is not None and known.uid:
            metadata["uid"] = known.uid
        response = self.apps.patch_namespaced_deployment(
            name, release.namespace, {"metadata": metadata, "spec": {"replicas": replicas}},
            field_manager=FIELD_MANAGER, _content_type=MERGE, _preload_content=False)
        self.view.observe_deployment(_json(response))

    def switch_selector(self, namespace: str, service: str, color: Color) -> None:
        """Point a Service at a colour: a merge patch of the one key the operator owns, nothing else."""
        patch = {"spec": {"selector": {LABEL_COLOR: str(color)}}}
        response = self.core.patch_namespaced_service(service, namespace, patch, field_manager=FIELD_MANAGER,
                                                      _content_type=MERGE, _preload_content=False)
        self.view.observe_service(_json(response))

    def patch_status(self, release: ReleaseRef, status: Mapping[str, Any]) -> None:
        response = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, release.namespace, PLURAL, release.name, {"status": dict(status)},
            field_manager=FIELD_MANAGER, _content_type=MERGE, _preload_content=False)
        if self.on_release is not None:
            self.on_release(_json(response))

    def annotate_release(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
        """Set (None: remove) annotations of a release; the release returned goes to ``on_release``."""
        response = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": dict(annotations)}},
            _content_type=MERGE, _preload_content=False)
        if self.on_release is not None:
            self.on_release(_json(response))

    def patch_release_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": dict(spec)}, _content_type=MERGE)

    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event on the release, visible in ``kubectl describe bgr`` and ``kubectl get events``."""
        now = datetime.now(UTC)
        stamp = format_time(now)
        event: dict[str, Any] = {
            "metadata": {"name": f"{release.name}.{time.time_ns():x}", "namespace": release.namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": release.name,
                               "namespace": release.namespace, "uid": release.uid},
            "reason": reason, "message": message[:1024], "type": kind,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        self.core.create_namespaced_event(release.namespace, event)  # type: ignore[arg-type]
