"""Manifest text -> validated desired template, its hash, and the colour Deployments (pure).

The template hash identifies a release: two manifests whose Deployment specs are equal (ignoring
``replicas``, the manifest's name/namespace, YAML comments, key order and explicit nulls) hash equal,
so a ``git revert`` hashes to what the previous colour still runs. The ConfigMaps, the HPA and the PDB of a
source directory (``core.bundle``, ``core.companions``) are part of the hash too: a commit that changes only
config is a release of its own.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bluegreen.core.companions import ConfigMapTemplate, ObjectTemplate, copy_name, rewrite_config_refs
from bluegreen.core.manifest_fields import (
    check_reserved,
    expression_matches,
    invalid,
    mapping,
    string_map,
)
from bluegreen.core.spec import (
    ANNOTATION_AUTOSCALER,
    ANNOTATION_COMMIT,
    ANNOTATION_DISRUPTION_BUDGET,
    ANNOTATION_TEMPLATE_HASH,
    API_VERSION,
    KIND,
    LABEL_COLOR,
    LABEL_RELEASE,
    Color,
    check_release_name,
    deployment_name,
)
from bluegreen.core.yaml_docs import DEFAULT_MAX_BYTES, ManifestError, kind_of, load_documents, normalize

__all__ = ["DEFAULT_MAX_BYTES", "HASH_LENGTH", "DesiredTemplate", "ManifestError", "deployment_template",
           "hash_template", "owner_reference", "parse_manifest", "render_deployment"]

HASH_LENGTH = 16


@dataclass(frozen=True)
class DesiredTemplate:
    """What git asks for: a Deployment spec (without ``replicas``) and its identity hash, plus the objects
    that travel with each colour (a source directory's ConfigMaps, HPA and PDB)."""

    spec: Mapping[str, Any]
    replicas: int
    template_hash: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    config_maps: tuple[ConfigMapTemplate, ...] = ()
    autoscaler: ObjectTemplate | None = None
    disruption_budget: ObjectTemplate | None = None

    @property
    def autoscale(self) -> tuple[int, int] | None:
        """(minReplicas, maxReplicas) of the HPA, None without one."""
        return self.autoscaler.replica_range if self.autoscaler is not None else None


def parse_manifest(
    text: str | bytes, *, namespace: str, path: str = "", max_bytes: int = DEFAULT_MAX_BYTES
) -> DesiredTemplate:
    """Validate one apps/v1 Deployment manifest and return its desired template.

    ``namespace`` is the release's namespace (the manifest may omit it or must name the same one);
    ``path`` only improves messages. Raises ``ManifestError``.
    """
    where = path or "the manifest"
    documents = load_documents(text, where, max_bytes)
    if len(documents) != 1:
        found = "no document" if not documents else f"{len(documents)} documents"
        raise ManifestError(
            "NotOneDocument", f"{where} must hold exactly one YAML document (a Deployment); found {found}."
        )
    return deployment_template(normalize(documents[0], where), namespace=namespace, where=where)


def deployment_template(doc: object, *, namespace: str, where: str) -> DesiredTemplate:
    """The desired template of one normalized document, which must be an apps/v1 Deployment (``where`` names
    it in messages)."""
    if not isinstance(doc, dict):
        raise ManifestError(
            "NotADeployment", f"{where} must be an apps/v1 Deployment object, not a {kind_of(doc)}."
        )
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != "apps/v1" or kind != "Deployment":
        raise ManifestError(
            "NotADeployment",
            f"{where} must be an apps/v1 Deployment; found apiVersion {api_version!r}, kind {kind!r}.",
        )

    metadata = mapping(doc.get("metadata", {}), "metadata", where)
    check_namespace(metadata, namespace, where)
    labels = string_map(metadata.get("labels", {}), "metadata.labels", where)
    annotations = string_map(metadata.get("annotations", {}), "metadata.annotations", where)
    check_reserved(labels, "metadata.labels", where)
    check_reserved(annotations, "metadata.annotations", where)

    spec = mapping(doc.get("spec"), "spec", where)
    replicas = spec.pop("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        invalid(where, f"spec.replicas must be a whole number >= 1 (a colour with no replica cannot take "
                       f"traffic), not {replicas!r}")
    _check_pod_spec(spec, where)
    return DesiredTemplate(
        spec=spec,
        replicas=replicas,
        template_hash=hash_template(spec, labels=labels, annotations=annotations),
        labels=labels,
        annotations=annotations,
    )


def check_namespace(metadata: Mapping[str, Any], namespace: str, where: str) -> None:
    """A manifest may omit metadata.namespace or name the release's own."""
    manifest_namespace = metadata.get("namespace")
    if manifest_namespace is not None and manifest_namespace != namespace:
        raise ManifestError(
            "WrongNamespace",
            f"{where} sets metadata.namespace {manifest_namespace!r}, but the release is in namespace "
            f"{namespace!r}; remove metadata.namespace or set it to {namespace!r}.",
        )


def hash_template(
    spec: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Short stable hash of a Deployment spec (and its metadata labels/annotations), ignoring ``replicas``
    and key order: equal hashes mean equal Deployments, so a changed label in git is a new release too.
    ``extra`` (a source directory's ConfigMaps, HPA and PDB) is covered too; without it the hash is what it
    has always been, so an upgrade re-releases nothing."""
    content: dict[str, Any] = {key: value for key, value in spec.items() if key != "replicas"}
    if labels or annotations or extra:
        content = {"spec": content, "labels": dict(labels or {}), "annotations": dict(annotations or {})}
    if extra:
        content["with"] = dict(extra)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def render_deployment(
    desired: DesiredTemplate,
    *,
    release: str,
    namespace: str,
    color: Color,
    commit: str,
    replicas: int,
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The complete Deployment body for ``color`` of ``release``; ``desired`` is not modified."""
    check_release_name(release)
    color = Color(color)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ValueError(f"replicas must be a whole number >= 0, not {replicas!r}")
    ours = {LABEL_RELEASE: release, LABEL_COLOR: str(color)}

    spec: dict[str, Any] = copy.deepcopy(dict(desired.spec))
    spec["replicas"] = replicas
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **ours}
    template = spec.setdefault("template", {})
    pod_meta = template.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **ours}
    pod_meta["annotations"] = {
        **(pod_meta.get("annotations") or {}),
        ANNOTATION_TEMPLATE_HASH: desired.template_hash,
    }
    rewrite_config_refs(template.setdefault("spec", {}), (c.name for c in desired.config_maps), color)

    metadata: dict[str, Any] = {
        "name": deployment_name(release, color),
        "namespace": namespace,
        "labels": {**desired.labels, **ours},
        "annotations": {
            **desired.annotations,
            ANNOTATION_COMMIT: commit,
            ANNOTATION_TEMPLATE_HASH: desired.template_hash,
        },
    }
    for key, companion in ((ANNOTATION_AUTOSCALER, desired.autoscaler),
                           (ANNOTATION_DISRUPTION_BUDGET, desired.disruption_budget)):
        if companion is not None:  # the colour's copy: what a scale-down or the next apply deletes
            metadata["annotations"][key] = copy_name(companion.name, color)
    if owner is not None:
        metadata["ownerReferences"] = [copy.deepcopy(dict(owner))]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """ownerReference to a BlueGreenRelease: deleting the release garbage-collects its Deployments."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _check_pod_spec(spec: dict[str, Any], where: str) -> None:
    """Selector, template labels, containers and reserved keys of a Deployment spec."""
    template = mapping(spec.get("template"), "spec.template", where)
    pod_meta = mapping(template.get("metadata"), "spec.template.metadata", where)
    pod_labels = string_map(pod_meta.get("labels"), "spec.template.metadata.labels", where)
    if not pod_labels:
        invalid(where, "spec.template.metadata.labels must not be empty")

    pod_annotations = string_map(
        pod_meta.get("annotations", {}), "spec.template.metadata.annotations", where
    )
    selector = mapping(spec.get("selector"), "spec.selector", where)
    match_labels = string_map(selector.get("matchLabels", {}), "spec.selector.matchLabels", where)
    expressions = selector.get("matchExpressions", [])
    if not isinstance(expressions, list):
        invalid(where, "spec.selector.matchExpressions must be a list")
    for name, keys in (
        ("spec.selector.matchLabels", match_labels),
        ("spec.template.metadata.labels", pod_labels),
        ("spec.template.metadata.annotations", pod_annotations),
    ):
        check_reserved(keys, name, where)

    if not match_labels and not expressions:
        invalid(where, "spec.selector needs matchLabels (or matchExpressions)")
    for key, value in match_labels.items():
        if pod_labels.get(key) != value:
            invalid(
                where,
                f"spec.selector.matchLabels {key}={value} is not among spec.template.metadata.labels; "
                "the selector must select the template's own labels",
            )
    for index, expression in enumerate(expressions):
        at = f"spec.selector.matchExpressions[{index}]"
        if not expression_matches(expression, pod_labels, at, where):
            invalid(where, f"{at} does not match spec.template.metadata.labels")

    pod_spec = mapping(template.get("spec"), "spec.template.spec", where)
    names: set[str] = set()
    for list_name in ("containers", "initContainers"):
        containers = pod_spec.get(list_name, [])
        if not isinstance(containers, list) or (list_name == "containers" and not containers):
            invalid(where, f"spec.template.spec.{list_name} must be a non-empty list of containers")
        for index, container in enumerate(containers):
            at = f"spec.template.spec.{list_name}[{index}]"
            if not isinstance(container, dict):
                invalid(where, f"{at} must be a mapping")
            for required in ("name", "image"):
                if not isinstance(container.get(required), str) or not container[required]:
                    invalid(where, f"{at}.{required} must be a non-empty string")
            if container["name"] in names:
                invalid(where, f"{at}.name {container['name']!r} is used by more than one container")
            names.add(container["name"])
