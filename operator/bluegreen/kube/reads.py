"""What the planner and the CLI read from the cluster: the colour Deployments, Services, Secrets, releases."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from bluegreen.core.errors import ClusterError
from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import (
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_COMMIT,
    ANNOTATION_ROLLOUT_STARTED_AT,
    ANNOTATION_TEMPLATE_HASH,
    GROUP,
    LABEL_COLOR,
    LABEL_RELEASE,
    PLURAL,
    VERSION,
    Color,
    ReleaseRef,
    deployment_name,
)
from bluegreen.core.timestamps import parse_time
from bluegreen.kube.client import Apis


def _color(value: object) -> Color | None:
    try:
        return Color(str(value)) if value is not None else None
    except ValueError:
        return None


class KubeReads(Apis):
    """GETs, one object at a time (404 reads as absent)."""

    def _read(self, read: Any, *args: str) -> dict[str, Any] | None:
        try:
            response = read(*args, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = json.loads(response.data)
        return result

    def color_state(self, release: ReleaseRef, color: Color) -> ColorState:
        """One colour's Deployment; a same-named Deployment that is not ours is refused."""
        name = deployment_name(release.name, color)
        body = self._read(self.apps.read_namespaced_deployment, name, release.namespace)
        if body is None:
            return ColorState(color=color)
        meta, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
        if (meta.get("labels") or {}).get(LABEL_RELEASE) != release.name:
            raise ClusterError("DeploymentConflict",
                               f"Deployment {name!r} exists but does not belong to release {release.name!r} "
                               f"(no {LABEL_RELEASE}={release.name} label); rename or delete it")
        annotations = meta.get("annotations") or {}
        return ColorState(
            color=color, exists=True,
            template_hash=annotations.get(ANNOTATION_TEMPLATE_HASH),
            commit=annotations.get(ANNOTATION_COMMIT),
            replicas=int(spec.get("replicas", 1)),
            generation=int(meta.get("generation", 0)),
            observed_generation=int(status.get("observedGeneration", 0)),
            status_replicas=int(status.get("replicas", 0)),
            updated_replicas=int(status.get("updatedReplicas", 0)),
            ready_replicas=int(status.get("readyReplicas", 0)),
            available_replicas=int(status.get("availableReplicas", 0)),
            rollout_started_at=parse_time(annotations.get(ANNOTATION_ROLLOUT_STARTED_AT)),
            abandoned_commit=annotations.get(ANNOTATION_ABANDONED_COMMIT),
        )

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded; None if it does not exist. Values are never logged."""
        body = self._read(self.core.read_namespaced_secret, name, namespace)
        if body is None:
            return None
        return {key: base64.b64decode(value) for key, value in (body.get("data") or {}).items()}

    def service_state(self, namespace: str, name: str) -> ServiceState:
        body = self._read(self.core.read_namespaced_service, name, namespace)
        if body is None:
            return ServiceState(name=name)
        selector = (body.get("spec") or {}).get("selector") or {}
        return ServiceState(name=name, exists=True, color=_color(selector.get(LABEL_COLOR)))

    def get_release(self, namespace: str, name: str) -> dict[str, Any]:
        result = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return cast(dict[str, Any], result)

    def list_releases(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return cast(list[dict[str, Any]], cast(dict[str, Any], listing).get("items", []))
