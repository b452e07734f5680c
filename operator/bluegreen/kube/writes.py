"""The operator's writes: server-side apply of a colour, a replica change, a one-key selector patch, a status
patch, an Event on the release, and the CLI's annotation and spec patches."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bluegreen.core.spec import (
    API_VERSION,
    FIELD_MANAGER,
    GROUP,
    KIND,
    LABEL_COLOR,
    PLURAL,
    VERSION,
    Color,
    ReleaseRef,
    deployment_name,
)
from bluegreen.core.timestamps import format_time
from bluegreen.kube.client import Apis

COMPONENT = "bluegreen-operator"



class KubeWrites(Apis):
    """PATCHes and CREATEs, each with the operator's field manager where the API takes one."""

    # ---- act ------------------------------------------------------------------------------------
    def apply_deployment(self, body: Mapping[str, Any]) -> None:
        """Server-side apply of a colour's Deployment: fields we stop setting are removed, others kept."""
        meta = body["metadata"]
        self.apps.patch_namespaced_deployment(
            meta["name"], meta["namespace"], dict(body), field_manager=FIELD_MANAGER, force=True,
            _content_type="application/apply-patch+yaml")

    def scale(self, release: ReleaseRef, color: Color, replicas: int, annotations: Mapping[str, str | None]) -> None:
        """Set a colour's replica count (and bookkeeping annotations; None removes one)."""
        patch = {"metadata": {"annotations": dict(annotations)}, "spec": {"replicas": replicas}}
        self.apps.patch_namespaced_deployment(
            deployment_name(release.name, color), release.namespace, patch, field_manager=FIELD_MANAGER,
            _content_type="application/merge-patch+json")

    def switch_selector(self, namespace: str, service: str, color: Color) -> None:
        """Point a Service at a colour: a merge patch of the one key the operator owns, nothing else."""
        patch = {"spec": {"selector": {LABEL_COLOR: str(color)}}}
        self.core.patch_namespaced_service(service, namespace, patch, field_manager=FIELD_MANAGER,
                                           _content_type="application/merge-patch+json")

    def patch_status(self, release: ReleaseRef, status: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, release.namespace, PLURAL, release.name, {"status": dict(status)},
            field_manager=FIELD_MANAGER, _content_type="application/merge-patch+json")

    def annotate_release(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": dict(annotations)}},
            _content_type="application/merge-patch+json")

    def patch_release_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": dict(spec)},
            _content_type="application/merge-patch+json")

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
