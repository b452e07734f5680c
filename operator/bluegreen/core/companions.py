"""The objects that travel with a colour (pure): the source's ConfigMaps, its HorizontalPodAutoscaler and its
PodDisruptionBudget, validated from their documents and rendered once per colour.

- A ConfigMap ``X`` becomes ``X-<colour>``; the colour's Deployment refers to its own copies
  (``rewrite_config_refs``: volumes, projected volumes, ``envFrom`` and ``env.valueFrom.configMapKeyRef`` of
  every container and init container). A reference to a ConfigMap the source does not hold is left alone.
- The HPA ``H`` becomes ``H-<colour>`` and scales ``<release>-<colour>``.
- The PDB ``P`` becomes ``P-<colour>`` and selects that colour's pods only (its selector plus the release and
  colour labels).

Every copy is labelled ``bluegreen.dev/release`` and ``bluegreen.dev/color`` and annotated with the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bluegreen.core.manifest_fields import (
    check_reserved,
    invalid,
    mapping,
    object_name,
    selector_matches,
    string_map,
)
from bluegreen.core.spec import ANNOTATION_COMMIT, LABEL_COLOR, LABEL_RELEASE, Color, deployment_name

INVALID_CONFIG_MAP: Final = "InvalidConfigMap"
INVALID_AUTOSCALER: Final = "InvalidAutoscaler"
INVALID_DISRUPTION_BUDGET: Final = "InvalidDisruptionBudget"
AUTOSCALER_VERSIONS: Final = ("autoscaling/v1", "autoscaling/v2beta2", "autoscaling/v2")
DISRUPTION_BUDGET_VERSIONS: Final = ("policy/v1", "policy/v1beta1")
COLOR_SUFFIX: Final = len("-green")
"""The longest colour suffix a copy's name gets."""


@dataclass(frozen=True)
class ConfigMapTemplate:
    """A ConfigMap of the source: copied per colour as ``<name>-<colour>``."""

    name: str
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """What the template hash covers."""
        return {"name": self.name, "data": dict(self.data), "binaryData": dict(self.binary_data),
                "labels": dict(self.labels), "annotations": dict(self.annotations)}


@dataclass(frozen=True)
class ObjectTemplate:
    """The HorizontalPodAutoscaler or the PodDisruptionBudget of the source: one copy per colour."""

    api_version: str
    kind: str
    name: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """What the template hash covers."""
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "spec": dict(self.spec),
                "labels": dict(self.labels), "annotations": dict(self.annotations)}

    @property
    def replica_range(self) -> tuple[int, int]:
        """An HPA's (minReplicas, maxReplicas); minReplicas defaults to 1 as in Kubernetes."""
        return int(self.spec.get("minReplicas", 1)), int(self.spec["maxReplicas"])


def copy_name(name: str, color: Color) -> str:
    """The name of a colour's copy of a source object: ``<name>-<colour>``."""
    return f"{name}-{Color(color)}"


# ---- parsing ---------------------------------------------------------------------------------------------


def _metadata(doc: Mapping[str, Any], where: str, reason: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(name, labels, annotations) of a copied object; reserved keys refused."""
    metadata = mapping(doc.get("metadata"), "metadata", where, reason)
    name = object_name(metadata, where, reason, suffix=COLOR_SUFFIX)
    labels = string_map(metadata.get("labels", {}), "metadata.labels", where, reason)
    annotations = string_map(metadata.get("annotations", {}), "metadata.annotations", where, reason)
    check_reserved(labels, "metadata.labels", where, reason)
    check_reserved(annotations, "metadata.annotations", where, reason)
    return name, labels, annotations


def parse_config_map(doc: Mapping[str, Any], where: str) -> ConfigMapTemplate:
    """A v1 ConfigMap document (its namespace already checked)."""
    reason = INVALID_CONFIG_MAP
    name, labels, annotations = _metadata(doc, where, reason)
    unknown = sorted(set(doc) - {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"})
    if unknown:
        invalid(where, f"{', '.join(unknown)} is not a ConfigMap field", reason)
    if doc.get("immutable", False) is not False:
        invalid(where, "immutable must not be set: the operator rewrites the idle colour's copy when it is applied "
                       "again (the serving colour's copy is never changed); remove it", reason)
    data = string_map(doc.get("data", {}), "data", where, reason)
    binary = string_map(doc.get("binaryData", {}), "binaryData", where, reason)
    both = sorted(set(data) & set(binary))
    if both:
        invalid(where, f"key {both[0]!r} is in both data and binaryData", reason)
    return ConfigMapTemplate(name, data, binary, labels, annotations)


def parse_autoscaler(doc: Mapping[str, Any], where: str, deployment: str | None) -> ObjectTemplate:
    """A HorizontalPodAutoscaler whose scaleTargetRef names the source's Deployment (``deployment``, its
    metadata.name); min/maxReplicas checked, the rest is the API server's to validate."""
    reason = INVALID_AUTOSCALER
    name, labels, annotations = _metadata(doc, where, reason)
    spec = mapping(doc.get("spec"), "spec", where, reason)
    target = mapping(spec.get("scaleTargetRef"), "spec.scaleTargetRef", where, reason)
    if target.get("kind") != "Deployment" or target.get("apiVersion", "apps/v1") != "apps/v1":
        invalid(where, "spec.scaleTargetRef must be the source's apps/v1 Deployment (kind Deployment, apiVersion "
                       f"apps/v1), not {target.get('apiVersion')!r} {target.get('kind')!r}", reason)
    if deployment is None:
        invalid(where, "spec.scaleTargetRef.name must name the source's Deployment, which has no metadata.name; "
                       "give the Deployment a name", reason)
    if target.get("name") != deployment:
        invalid(where, f"spec.scaleTargetRef.name is {target.get('name')!r}; it must name the source's Deployment "
                       f"{deployment!r} (the operator points each colour's copy at that colour)", reason)
    minimum = _replicas(spec.get("minReplicas", 1), "spec.minReplicas", where)
    maximum = _replicas(spec.get("maxReplicas"), "spec.maxReplicas", where)
    if minimum > maximum:
        invalid(where, f"spec.minReplicas ({minimum}) must not exceed spec.maxReplicas ({maximum})", reason)
    return ObjectTemplate(str(doc["apiVersion"]), "HorizontalPodAutoscaler", name, spec, labels, annotations)


def _replicas(value: object, at: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        invalid(where, f"{at} must be a whole number >= 1, not {value!r}", INVALID_AUTOSCALER)
    return value


def parse_disruption_budget(doc: Mapping[str, Any], where: str, pod_labels: Mapping[str, str]) -> ObjectTemplate:
    """A PodDisruptionBudget whose selector selects the Deployment's pod labels."""
    reason = INVALID_DISRUPTION_BUDGET
    name, labels, annotations = _metadata(doc, where, reason)
    spec = mapping(doc.get("spec"), "spec", where, reason)
    selector = mapping(spec.get("selector"), "spec.selector", where, reason)
    mismatch = selector_matches(selector, pod_labels, "spec.selector", where, reason)
    if mismatch is not None:
        invalid(where, f"{mismatch} does not match the Deployment's spec.template.metadata.labels; the selector "
                       "must select the Deployment's pods", reason)
    return ObjectTemplate(str(doc["apiVersion"]), "PodDisruptionBudget", name, spec, labels, annotations)


# ---- rendering -------------------------------------------------------------------------------------------


def _copy_metadata(template: ConfigMapTemplate | ObjectTemplate, *, release: str, namespace: str, color: Color,
                   commit: str, owner: Mapping[str, Any] | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": copy_name(template.name, color),
        "namespace": namespace,
        "labels": {**template.labels, LABEL_RELEASE: release, LABEL_COLOR: str(color)},
        "annotations": {**template.annotations, ANNOTATION_COMMIT: commit},
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return metadata


def render_config_map(template: ConfigMapTemplate, *, release: str, namespace: str, color: Color, commit: str,
                      owner: Mapping[str, Any] | None) -> dict[str, Any]:
    """The colour's copy of a source ConfigMap."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": _copy_metadata(template, release=release, namespace=namespace, color=color,
                                                       commit=commit, owner=owner)}
    if template.data:
        body["data"] = dict(template.data)
    if template.binary_data:
        body["binaryData"] = dict(template.binary_data)
    return body


def render_autoscaler(template: ObjectTemplate, *, release: str, namespace: str, color: Color, commit: str,
                      owner: Mapping[str, Any] | None) -> dict[str, Any]:
    """The colour's HPA: the source's spec, scaling ``<release>-<colour>``."""
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(release, color)}
    spec = {**template.spec, "scaleTargetRef": target}
    return {"apiVersion": template.api_version, "kind": template.kind,
            "metadata": _copy_metadata(template, release=release, namespace=namespace, color=color, commit=commit,
                                       owner=owner),
            "spec": spec}


def render_disruption_budget(template: ObjectTemplate, *, release: str, namespace: str, color: Color, commit: str,
                             owner: Mapping[str, Any] | None) -> dict[str, Any]:
    """The colour's PDB: the source's selector narrowed to that colour's pods."""
    selector = template.spec["selector"]
    ours = {LABEL_RELEASE: release, LABEL_COLOR: str(Color(color))}
    spec = {**template.spec, "selector": {**selector, "matchLabels": {**(selector.get("matchLabels") or {}), **ours}}}
    return {"apiVersion": template.api_version, "kind": template.kind,
            "metadata": _copy_metadata(template, release=release, namespace=namespace, color=color, commit=commit,
                                       owner=owner),
            "spec": spec}


def rewrite_config_refs(pod_spec: dict[str, Any], names: Iterable[str], color: Color) -> None:
    """Point every reference of ``pod_spec`` to a ConfigMap in ``names`` at the colour's copy (in place)."""
    ours = set(names)
    if not ours:
        return

    def rename(ref: object) -> None:
        if isinstance(ref, dict) and ref.get("name") in ours:
            ref["name"] = copy_name(ref["name"], color)

    for volume in pod_spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        rename(volume.get("configMap"))
        for source in _as_dict(volume.get("projected")).get("sources") or []:
            if isinstance(source, dict):
                rename(source.get("configMap"))
    for list_name in ("initContainers", "containers"):
        for container in pod_spec.get(list_name) or []:
            if not isinstance(container, dict):
                continue
            for env_from in container.get("envFrom") or []:
                if isinstance(env_from, dict):
                    rename(env_from.get("configMapRef"))
            for env in container.get("env") or []:
                if isinstance(env, dict):
                    rename(_as_dict(env.get("valueFrom")).get("configMapKeyRef"))


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
