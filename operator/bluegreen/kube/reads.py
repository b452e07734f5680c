"""What the planner and the CLI read: the colour Deployments and Services from the view (no API request),
Secrets and releases with a GET, a colour's pods with a LIST (only while a contract migration waits for them)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import (
    GROUP,
    LABEL_COLOR,
    LABEL_RELEASE,
    PLURAL,
    VERSION,
    Color,
    ReleaseRef,
    deployment_name,
)
from bluegreen.kube.client import Apis
from bluegreen.kube.states import deployment_conflict
from bluegreen.kube.view import ClusterView


class KubeReads(Apis):
    """The planner's reads come from ``view``; the rest are GETs, one object at a time (404 reads as absent)."""

    view: ClusterView

    def get_json(self, read: Any, *args: str) -> dict[str, Any] | None:
        """The object one ``read_namespaced_*`` call returns, as JSON; None when it does not exist."""
        try:
            response = read(*args, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = json.loads(response.data)
        return result

    def color_state(self, release: ReleaseRef, color: Color) -> ColorState:
        """One colour's Deployment as the view has it; one labelled for another release is refused.

        A same-named Deployment without the release label is not in the view (the watch selects the label):
        ``apply_deployment`` finds it before it would create the colour, and refuses it there."""
        name = deployment_name(release.name, color)
        record = self.view.deployment(release.namespace, name)
        if record is None:
            return ColorState(color=color)
        if record.release != release.name:
            raise deployment_conflict(name, release.name)
        return record.state if record.state.color is color else dataclasses.replace(record.state, color=color)

    def service_state(self, namespace: str, name: str) -> ServiceState:
        record = self.view.service(namespace, name)
        return record.state if record is not None else ServiceState(name=name)

    def service_address(self, namespace: str, name: str, port: int | None) -> tuple[str, int] | None:
        """A Service's (ClusterIP, port) from the view (``port`` None: its first); None if unknown."""
        record = self.view.service(namespace, name)
        return record.address(port) if record is not None else None

    def color_pods(self, release: ReleaseRef, color: Color) -> int:
        """The pods labelled for ``release`` and ``color`` that are not finished (terminating ones count): one
        LIST, selected by the API server (hook Job pods never carry the colour label)."""
        selector = f"{LABEL_RELEASE}={release.name},{LABEL_COLOR}={color}"
        response: Any = self.core.list_namespaced_pod(release.namespace, label_selector=selector,
                                                      _preload_content=False)
        pods = json.loads(response.data).get("items") or []
        return sum(1 for pod in pods if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded; None if it does not exist. Values are never logged."""
        body = self.get_json(self.core.read_namespaced_secret, name, namespace)
        if body is None:
            return None
        return {key: base64.b64decode(value) for key, value in (body.get("data") or {}).items()}

    def get_release(self, namespace: str, name: str) -> dict[str, Any]:
        result = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return cast(dict[str, Any], result)

    def list_releases(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return cast(list[dict[str, Any]], cast(dict[str, Any], listing).get("items", []))
