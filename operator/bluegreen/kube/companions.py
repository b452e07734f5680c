"""The writes of the objects that travel with a colour: its ConfigMap copies, its HorizontalPodAutoscaler and
its PodDisruptionBudget (``core.companions`` renders them). Server-side apply by the operator's field manager,
as for the Deployments, so a field (a ConfigMap key) that git drops is removed.

Only the release's own objects are written or deleted:

- ConfigMaps: the colour's copies are listed by label (``bluegreen.dev/release`` and ``bluegreen.dev/color``)
  when the colour is applied; a copy not among them is read first and refused if a same-named ConfigMap exists
  (``ConfigMapConflict``); the listed copies git no longer has are returned for deletion.
- The HPA and the PDB: the colour's Deployment names its copies (``ColorState.autoscaler`` /
  ``disruption_budget``); another name is read first and a same-named object that is not the release's colour's
  is refused (``HorizontalPodAutoscalerConflict``, ``PodDisruptionBudgetConflict``).

They are written through the API path of their own apiVersion (``CustomObjectsApi`` takes any group), so the
version in git is used; a cluster that does not serve it (autoscaling/v2 before Kubernetes 1.23, policy/v1
before 1.21; v2beta2 and v1beta1 after their removal) gets the twin version of the same schema. An object the API
server refuses is ``ClusterError`` with the kind's ``Invalid*`` reason and the server's message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kubernetes.client.exceptions import ApiException

from bluegreen.core.companions import INVALID_AUTOSCALER, INVALID_CONFIG_MAP, INVALID_DISRUPTION_BUDGET
from bluegreen.core.errors import ClusterError
from bluegreen.core.spec import FIELD_MANAGER, LABEL_COLOR, LABEL_RELEASE, Color, ReleaseRef
from bluegreen.kube.reads import KubeReads

APPLY: Final = "application/apply-patch+yaml"
PLURALS: Final = {"HorizontalPodAutoscaler": "horizontalpodautoscalers", "PodDisruptionBudget": "poddisruptionbudgets"}
INVALID: Final = {"ConfigMap": INVALID_CONFIG_MAP, "HorizontalPodAutoscaler": INVALID_AUTOSCALER,
                  "PodDisruptionBudget": INVALID_DISRUPTION_BUDGET}
TWIN_VERSIONS: Final = {"autoscaling/v2": "autoscaling/v2beta2", "autoscaling/v2beta2": "autoscaling/v2",
                        "policy/v1": "policy/v1beta1", "policy/v1beta1": "policy/v1"}
"""The same schema under the other version a cluster may serve instead."""


def _json(response: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(response.data)
    return result


def _status(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def not_served(exc: ApiException) -> bool:
    """A 404 for the resource type itself (the cluster does not serve that version), not for one object."""
    return exc.status == 404 and not (_status(exc).get("details") or {}).get("name")


def _refused(kind: str, name: str, exc: ApiException) -> ClusterError:
    message = _status(exc).get("message") or exc.reason
    return ClusterError(INVALID[kind], f"the API server refused {kind} {name!r}: {message}")


def _conflict(kind: str, name: str, release: str, color: str) -> ClusterError:
    return ClusterError(f"{kind}Conflict",
                        f"{kind} {name!r} exists but is not the {color} copy of release {release!r} (no "
                        f"{LABEL_RELEASE}={release}, {LABEL_COLOR}={color} labels); rename or delete it")


def _ours(body: Mapping[str, Any] | None, release: str, color: str) -> bool:
    labels = ((body or {}).get("metadata") or {}).get("labels") or {}
    return bool(labels.get(LABEL_RELEASE) == release and labels.get(LABEL_COLOR) == color)


class KubeCompanions(KubeReads):
    """The ConfigMap, HPA and PDB part of ``KubeCluster``."""

    def apply_config_maps(self, release: ReleaseRef, color: Color, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        """Apply the colour's ConfigMap copies; return the names of its other copies (git no longer has them),
        for ``delete_config_maps`` once the colour's Deployment no longer refers to them."""
        namespace, selector = release.namespace, f"{LABEL_RELEASE}={release.name},{LABEL_COLOR}={color}"
        listing = self.core.list_namespaced_config_map(namespace, label_selector=selector, _preload_content=False)
        ours = {item["metadata"]["name"]: item["metadata"].get("uid") for item in _json(listing).get("items") or []}
        for body in bodies:
            name = body["metadata"]["name"]
            uid = ours.get(name)
            if uid is None:
                current = self.get_json(self.core.read_namespaced_config_map, name, namespace)
                if current is not None and not _ours(current, release.name, str(color)):
                    raise _conflict("ConfigMap", name, release.name, str(color))
                uid = (current or {}).get("metadata", {}).get("uid")
            applied = {**body, "metadata": {**body["metadata"], "uid": uid}} if uid else dict(body)
            try:
                self.core.patch_namespaced_config_map(name, namespace, applied, field_manager=FIELD_MANAGER,
                                                      force=True, _content_type=APPLY, _preload_content=False)
            except ApiException as exc:
                if exc.status in (400, 422):
                    raise _refused("ConfigMap", name, exc) from None
                raise
        wanted = {body["metadata"]["name"] for body in bodies}
        return sorted(set(ours) - wanted)

    def delete_config_maps(self, namespace: str, names: Sequence[str]) -> None:
        """Delete ConfigMap copies (absent ones are fine)."""
        for name in names:
            try:
                self.core.delete_namespaced_config_map(name, namespace, _preload_content=False)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def apply_object(self, body: Mapping[str, Any], *, known: bool) -> None:
        """Server-side apply of a colour's HPA or PDB copy; ``known``: the colour's Deployment names it (it is
        ours), else a same-named object is read first and refused unless it is the colour's."""
        meta, kind = body["metadata"], str(body["kind"])
        namespace, name = meta["namespace"], meta["name"]
        release, color = meta["labels"][LABEL_RELEASE], meta["labels"][LABEL_COLOR]
        if not known:
            def read(group: str, version: str) -> dict[str, Any] | None:
                try:
                    return _json(self.custom.get_namespaced_custom_object(group, version, namespace, PLURALS[kind],
                                                                          name, _preload_content=False))
                except ApiException as exc:
                    if exc.status == 404 and not not_served(exc):
                        return None
                    raise
            current = self._versions(str(body["apiVersion"]), read)
            if current is not None and not _ours(current, release, color):
                raise _conflict(kind, name, release, color)

        def apply(group: str, version: str) -> None:
            self.custom.patch_namespaced_custom_object(
                group, version, namespace, PLURALS[kind], name, {**body, "apiVersion": f"{group}/{version}"},
                field_manager=FIELD_MANAGER, force=True, _content_type=APPLY, _preload_content=False)

        try:
            self._versions(str(body["apiVersion"]), apply)
        except ApiException as exc:
            if exc.status in (400, 422):
                raise _refused(kind, name, exc) from None
            raise

    def delete_object(self, namespace: str, api_version: str, kind: str, name: str) -> None:
        """Delete a colour's HPA or PDB copy (absent is fine)."""
        def delete(group: str, version: str) -> None:
            self.custom.delete_namespaced_custom_object(group, version, namespace, PLURALS[kind], name,
                                                        _preload_content=False)
        try:
            self._versions(api_version, delete)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _versions(self, api_version: str, call: Callable[[str, str], Any]) -> Any:
        """``call(group, version)`` for ``api_version``, then for its twin if the cluster does not serve it."""
        group, version = api_version.split("/", 1)
        try:
            return call(group, version)
        except ApiException as exc:
            twin = TWIN_VERSIONS.get(api_version)
            if twin is None or not not_served(exc):
                raise
        group, version = twin.split("/", 1)
        return call(group, version)
