"""Manifest text -> validated desired template, its hash, and the colour Deployments (pure).

The template hash identifies a release: two manifests whose Deployment specs are equal (ignoring
``replicas``, the manifest's name/namespace, YAML comments, key order and explicit nulls) hash equal,
so a ``git revert`` hashes to what the previous colour still runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import yaml

from bluegreen.core.errors import ReasonedError
from bluegreen.core.spec import (
    ANNOTATION_COMMIT,
    ANNOTATION_TEMPLATE_HASH,
    API_VERSION,
    KIND,
    LABEL_COLOR,
    LABEL_RELEASE,
    RESERVED_PREFIX,
    Color,
    check_release_name,
    deployment_name,
)

DEFAULT_MAX_BYTES = 1_000_000
MAX_VALUES = 200_000
"""Most scalars/collections a manifest may expand to (guards against YAML alias bombs)."""
MAX_DEPTH = 100
HASH_LENGTH = 16

_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class ManifestError(ReasonedError):
    """The manifest cannot be released; ``reason`` is CamelCase, ``message`` tells what to fix."""


@dataclass(frozen=True)
class DesiredTemplate:
    """What git asks for: a Deployment spec (without ``replicas``) and its identity hash."""

    spec: Mapping[str, Any]
    replicas: int
    template_hash: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class _Loader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys and keeps timestamps as strings (as Kubernetes does)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_manifest(
    text: str | bytes, *, namespace: str, path: str = "", max_bytes: int = DEFAULT_MAX_BYTES
) -> DesiredTemplate:
    """Validate one apps/v1 Deployment manifest and return its desired template.

    ``namespace`` is the release's namespace (the manifest may omit it or must name the same one);
    ``path`` only improves messages. Raises ``ManifestError``.
    """
    where = path or "the manifest"
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise ManifestError(
            "ManifestTooLarge", f"{where} is {len(raw)} bytes; the limit is {max_bytes} bytes."
        )
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError("InvalidYAML", f"{where} is not UTF-8 text ({exc.reason}).") from None

    try:
        documents = [doc for doc in yaml.load_all(decoded, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError("InvalidYAML", f"{where} is not valid YAML: {_one_line(exc)}.") from None
    except RecursionError:
        raise ManifestError("InvalidYAML", f"{where} is nested too deeply to be read.") from None
    if len(documents) != 1:
        found = "no document" if not documents else f"{len(documents)} documents"
        raise ManifestError(
            "NotOneDocument", f"{where} must hold exactly one YAML document (a Deployment); found {found}."
        )

    doc = _normalize(documents[0], where)
    if not isinstance(doc, dict):
        raise ManifestError(
            "NotADeployment", f"{where} must be an apps/v1 Deployment object, not a {_kind_of(doc)}."
        )
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != "apps/v1" or kind != "Deployment":
        raise ManifestError(
            "NotADeployment",
            f"{where} must be an apps/v1 Deployment; found apiVersion {api_version!r}, kind {kind!r}.",
        )

    metadata = _mapping(doc.get("metadata", {}), "metadata", where)
    manifest_namespace = metadata.get("namespace")
    if manifest_namespace is not None and manifest_namespace != namespace:
        raise ManifestError(
            "WrongNamespace",
            f"{where} sets metadata.namespace {manifest_namespace!r}, but the release is in namespace "
            f"{namespace!r}; remove metadata.namespace or set it to {namespace!r}.",
        )
    labels = _string_map(metadata.get("labels", {}), "metadata.labels", where)
    annotations = _string_map(metadata.get("annotations", {}), "metadata.annotations", where)
    _check_reserved(labels, "metadata.labels", where)
    _check_reserved(annotations, "metadata.annotations", where)

    spec = _mapping(doc.get("spec"), "spec", where)
    replicas = spec.pop("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        _invalid(where, f"spec.replicas must be a whole number >= 1 (a colour with no replica cannot take "
                        f"traffic), not {replicas!r}")
    _check_pod_spec(spec, where)
    return DesiredTemplate(
        spec=spec,
        replicas=replicas,
        template_hash=hash_template(spec, labels=labels, annotations=annotations),
        labels=labels,
        annotations=annotations,
    )


def hash_template(
    spec: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """Short stable hash of a Deployment spec (and its metadata labels/annotations), ignoring ``replicas``
    and key order: equal hashes mean equal Deployments, so a changed label in git is a new release too."""
    content: dict[str, Any] = {key: value for key, value in spec.items() if key != "replicas"}
    if labels or annotations:
        content = {"spec": content, "labels": dict(labels or {}), "annotations": dict(annotations or {})}
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
    template = _mapping(spec.get("template"), "spec.template", where)
    pod_meta = _mapping(template.get("metadata"), "spec.template.metadata", where)
    pod_labels = _string_map(pod_meta.get("labels"), "spec.template.metadata.labels", where)
    if not pod_labels:
        _invalid(where, "spec.template.metadata.labels must not be empty")

    pod_annotations = _string_map(
        pod_meta.get("annotations", {}), "spec.template.metadata.annotations", where
    )
    selector = _mapping(spec.get("selector"), "spec.selector", where)
    match_labels = _string_map(selector.get("matchLabels", {}), "spec.selector.matchLabels", where)
    expressions = selector.get("matchExpressions", [])
    if not isinstance(expressions, list):
        _invalid(where, "spec.selector.matchExpressions must be a list")
    for name, mapping in (
        ("spec.selector.matchLabels", match_labels),
        ("spec.template.metadata.labels", pod_labels),
        ("spec.template.metadata.annotations", pod_annotations),
    ):
        _check_reserved(mapping, name, where)

    if not match_labels and not expressions:
        _invalid(where, "spec.selector needs matchLabels (or matchExpressions)")
    for key, value in match_labels.items():
        if pod_labels.get(key) != value:
            _invalid(
                where,
                f"spec.selector.matchLabels {key}={value} is not among spec.template.metadata.labels; "
                "the selector must select the template's own labels",
            )
    for index, expression in enumerate(expressions):
        at = f"spec.selector.matchExpressions[{index}]"
        if not _expression_matches(expression, pod_labels, at, where):
            _invalid(where, f"{at} does not match spec.template.metadata.labels")

    pod_spec = _mapping(template.get("spec"), "spec.template.spec", where)
    names: set[str] = set()
    for list_name in ("containers", "initContainers"):
        containers = pod_spec.get(list_name, [])
        if not isinstance(containers, list) or (list_name == "containers" and not containers):
            _invalid(where, f"spec.template.spec.{list_name} must be a non-empty list of containers")
        for index, container in enumerate(containers):
            at = f"spec.template.spec.{list_name}[{index}]"
            if not isinstance(container, dict):
                _invalid(where, f"{at} must be a mapping")
            for required in ("name", "image"):
                if not isinstance(container.get(required), str) or not container[required]:
                    _invalid(where, f"{at}.{required} must be a non-empty string")
            if container["name"] in names:
                _invalid(where, f"{at}.name {container['name']!r} is used by more than one container")
            names.add(container["name"])


def _check_reserved(mapping: Mapping[str, str], name: str, where: str) -> None:
    for key in mapping:
        if key.startswith(RESERVED_PREFIX):
            _invalid(
                where,
                f"{name} {key!r} uses the reserved prefix {RESERVED_PREFIX}; the operator sets those "
                "labels and annotations itself, remove it",
            )


def _expression_matches(expression: object, labels: Mapping[str, str], at: str, where: str) -> bool:
    """Evaluate one label selector requirement against ``labels``."""
    if not isinstance(expression, dict) or not isinstance(expression.get("key"), str):
        _invalid(where, f"{at} must be a mapping with a string key")
    expr = cast(dict[str, Any], expression)
    operator: object = expr.get("operator")
    values: object = expr.get("values", [])
    if operator not in _SELECTOR_OPERATORS:
        _invalid(where, f"{at}.operator must be one of {', '.join(_SELECTOR_OPERATORS)}")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        _invalid(where, f"{at}.values must be a list of strings")
    if (operator in ("In", "NotIn")) != bool(values):
        _invalid(where, f"{at}.values must be non-empty for In/NotIn and empty for Exists/DoesNotExist")
    key: str = expr["key"]
    if key.startswith(RESERVED_PREFIX):
        _invalid(where, f"{at}.key {key!r} uses the reserved prefix {RESERVED_PREFIX}; remove it")
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return (key in labels) == (operator == "Exists")


def _normalize(value: object, where: str) -> Any:
    """Deep copy of a loaded document with nulls in mappings dropped; refuses non-JSON values."""
    budget = [MAX_VALUES]

    def walk(node: object, at: str, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ManifestError(
                "ManifestTooLarge", f"{where} expands to more than {MAX_VALUES} values (YAML aliases?)."
            )
        if depth > MAX_DEPTH:
            raise ManifestError("InvalidYAML", f"{where} is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, item in node.items():
                if not isinstance(key, str):
                    raise ManifestError(
                        "InvalidYAML", f"{where}: key {key!r} under {at or 'the top'} must be a string."
                    )
                if item is not None:
                    out[key] = walk(item, f"{at}.{key}" if at else key, depth + 1)
            return out
        if isinstance(node, list):
            return [walk(item, f"{at}[{index}]", depth + 1) for index, item in enumerate(node)]
        if isinstance(node, float) and not math.isfinite(node):
            raise ManifestError("InvalidYAML", f"{where}: {at} is {node}, which JSON cannot hold.")
        if node is None or isinstance(node, str | int | float | bool):
            return node
        raise ManifestError(
            "InvalidYAML",
            f"{where}: {at or 'the document'} is a {_kind_of(node)}; only JSON values are allowed "
            "(quote it if it is meant as text).",
        )

    return walk(value, "", 0)


def _mapping(value: object, name: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _invalid(where, f"{name} must be a mapping" + (" (it is missing)" if value is None else ""))
    return cast(dict[str, Any], value)


def _string_map(value: object, name: str, where: str) -> dict[str, str]:
    mapping = _mapping(value, name, where)
    for key, item in mapping.items():
        if not isinstance(item, str):
            _invalid(where, f"{name}.{key} must be a string, not {item!r} (quote it)")
    return cast(dict[str, str], mapping)


def _invalid(where: str, problem: str) -> NoReturn:
    raise ManifestError("InvalidDeployment", f"{where}: {problem}.")


def _kind_of(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
