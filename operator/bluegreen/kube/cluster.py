"""The cluster, through the official Kubernetes client. The only module that imports ``kubernetes``.

Reads what the planner needs (the two colour Deployments, the Service selectors, the release's status)
and performs its actions: server-side apply of a colour's Deployment, a replica change, a one-key
selector patch, a status patch, and an Event on the release.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import (
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_COMMIT,
    ANNOTATION_ROLLOUT_STARTED_AT,
    ANNOTATION_TEMPLATE_HASH,
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

COMPONENT = "bluegreen-operator"


class ClusterError(Exception):
    """A cluster problem the user must know about (reason is CamelCase, message says what to fix)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def load_api_client() -> client.ApiClient:
    """An ApiClient from $KUBECONFIG / ~/.kube/config, or the in-cluster service account."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def current_namespace() -> str | None:
    """The namespace of the current kubeconfig context, if it names one."""
    try:
        _, context = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return None
    namespace = (context or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else None


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _color(value: object) -> Color | None:
    try:
        return Color(str(value)) if value is not None else None
    except ValueError:
        return None


class KubeCluster:
    """Reads and writes the objects of BlueGreenReleases."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # ---- observe --------------------------------------------------------------------------------
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

    def get_release(self, namespace: str, name: str) -> dict[str, Any]:
        result = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return cast(dict[str, Any], result)

    def list_releases(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return cast(list[dict[str, Any]], cast(dict[str, Any], listing).get("items", []))

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

