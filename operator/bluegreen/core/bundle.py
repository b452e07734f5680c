"""A release's source -> its desired template (pure): ``spec.source.path`` names one file, or a directory whose
``.yaml``/``.yml`` files (directly inside it) are read together.

Together the documents must hold exactly one apps/v1 Deployment, any number of v1 ConfigMaps (unique names), at
most one HorizontalPodAutoscaler (autoscaling/v1, v2beta2 or v2) whose ``scaleTargetRef`` names that Deployment,
and at most one PodDisruptionBudget (policy/v1 or v1beta1) whose selector selects the Deployment's pods.
Anything else is refused with a reason and a message naming the file and document:

- ``InvalidYAML``, ``ManifestTooLarge``, ``WrongNamespace``, ``InvalidDeployment``: as for a single manifest
  (``core.desired``); ``InvalidConfigMap``, ``InvalidAutoscaler``, ``InvalidDisruptionBudget``: the field rules
  of those kinds (``core.companions``), duplicates included;
- ``NotADeployment``: no apps/v1 Deployment at all (or a document that is not an object);
  ``NotOneDeployment``: more than one; ``UnsupportedKind``: a Secret, a Service or any other kind;
- ``NotOneDocument``: a file holding no document (as before).

A file holding a single document is read exactly as before (``parse_manifest``), messages included. The
ConfigMaps, the HPA and the PDB are part of the template hash; a source of just the Deployment hashes as it did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from bluegreen.core.commits import Snapshot
from bluegreen.core.companions import (
    AUTOSCALER_VERSIONS,
    DISRUPTION_BUDGET_VERSIONS,
    INVALID_AUTOSCALER,
    INVALID_CONFIG_MAP,
    INVALID_DISRUPTION_BUDGET,
    ConfigMapTemplate,
    ObjectTemplate,
    parse_autoscaler,
    parse_config_map,
    parse_disruption_budget,
)
from bluegreen.core.desired import (
    DesiredTemplate,
    ManifestError,
    check_namespace,
    deployment_template,
    hash_template,
    parse_manifest,
)
from bluegreen.core.yaml_docs import DEFAULT_MAX_BYTES, kind_of, load_documents, normalize

UNSUPPORTED_KIND: Final = "UnsupportedKind"
WHAT_A_SOURCE_HOLDS: Final = ("a source holds exactly one apps/v1 Deployment, any ConfigMaps, at most one "
                              "HorizontalPodAutoscaler and at most one PodDisruptionBudget")

Document = tuple[str, dict[str, Any]]
"""(where: the file, and the document's number when the file holds several; the normalized object)."""


def parse_source(snapshot: Snapshot, *, namespace: str, max_bytes: int = DEFAULT_MAX_BYTES) -> DesiredTemplate:
    """The desired template of what git returned for ``spec.source.path``: a file or a directory's files."""
    if snapshot.files is None:
        return parse_bundle([(snapshot.path, snapshot.content)], namespace=namespace, path=snapshot.path,
                            directory=False, max_bytes=max_bytes)
    return parse_bundle(snapshot.files, namespace=namespace, path=snapshot.path, directory=True, max_bytes=max_bytes)


def parse_bundle(files: Sequence[tuple[str, bytes]], *, namespace: str, path: str, directory: bool,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> DesiredTemplate:
    """Validate the documents of ``files`` ((path, content) each, in order) as one release's source.

    ``path`` is ``spec.source.path``; ``directory``: it names a directory (else ``files`` is that one file).
    Raises ``ManifestError``."""
    loaded = [(name, load_documents(content, name, max_bytes)) for name, content in files]
    if not directory and len(loaded) == 1 and len(loaded[0][1]) <= 1:
        return parse_manifest(files[0][1], namespace=namespace, path=files[0][0], max_bytes=max_bytes)
    documents = _objects(loaded, path)
    where, deployment = _the_deployment(documents, path)
    base = deployment_template(deployment, namespace=namespace, where=where)
    name = (deployment.get("metadata") or {}).get("name")  # a mapping: deployment_template checked it
    pod_labels = base.spec["template"]["metadata"]["labels"]
    config_maps: dict[str, tuple[str, ConfigMapTemplate]] = {}
    autoscaler: tuple[str, ObjectTemplate] | None = None
    budget: tuple[str, ObjectTemplate] | None = None
    for at, doc in documents:
        if doc is deployment:
            continue
        kind = _companion_kind(at, doc)
        if isinstance(doc.get("metadata"), dict):  # else the kind's parser says what is wrong
            check_namespace(doc["metadata"], namespace, at)
        if kind == "ConfigMap":
            config_map = parse_config_map(doc, at)
            if config_map.name in config_maps:
                raise ManifestError(INVALID_CONFIG_MAP, f"{at}: ConfigMap {config_map.name!r} is defined again "
                                                        f"(first in {config_maps[config_map.name][0]}); give each "
                                                        "ConfigMap its own name.")
            config_maps[config_map.name] = (at, config_map)
        elif kind == "HorizontalPodAutoscaler":
            _only_one(autoscaler, at, kind, INVALID_AUTOSCALER)
            autoscaler = (at, parse_autoscaler(doc, at, name if isinstance(name, str) else None))
        else:
            _only_one(budget, at, kind, INVALID_DISRUPTION_BUDGET)
            budget = (at, parse_disruption_budget(doc, at, pod_labels))
    copies = tuple(config_map for _, config_map in sorted(config_maps.values(), key=lambda item: item[1].name))
    extra: dict[str, Any] = {}
    if copies:
        extra["configMaps"] = [config_map.content() for config_map in copies]
    if autoscaler is not None:
        extra["autoscaler"] = autoscaler[1].content()
    if budget is not None:
        extra["disruptionBudget"] = budget[1].content()
    return replace(base, template_hash=hash_template(base.spec, labels=base.labels, annotations=base.annotations,
                                                     extra=extra),
                   config_maps=copies, autoscaler=autoscaler[1] if autoscaler else None,
                   disruption_budget=budget[1] if budget else None)


_REASONS: Final = {"ConfigMap": INVALID_CONFIG_MAP, "HorizontalPodAutoscaler": INVALID_AUTOSCALER,
                   "PodDisruptionBudget": INVALID_DISRUPTION_BUDGET}
_VERSIONS: Final = {"ConfigMap": ("v1",), "HorizontalPodAutoscaler": AUTOSCALER_VERSIONS,
                    "PodDisruptionBudget": DISRUPTION_BUDGET_VERSIONS}


def _objects(loaded: Sequence[tuple[str, list[Any]]], path: str) -> list[Document]:
    """Every document, normalized and named; each must be an object."""
    documents: list[Document] = []
    for name, docs in loaded:
        for number, doc in enumerate(docs, start=1):
            where = name if len(docs) == 1 else f"{name} (document {number})"
            value = normalize(doc, where)
            if not isinstance(value, dict):
                raise ManifestError("NotADeployment", f"{where} must be a Kubernetes object (a mapping with "
                                                      f"apiVersion and kind), not a {kind_of(value)}.")
            documents.append((where, value))
    if not documents:
        raise ManifestError("NotADeployment", f"{path} holds no YAML document in a .yaml or .yml file directly "
                                              "inside it (subdirectories are not read); it must hold an apps/v1 "
                                              "Deployment.")
    return documents


def _the_deployment(documents: Sequence[Document], path: str) -> Document:
    """The one Deployment of the source."""
    deployments = [(where, doc) for where, doc in documents if doc.get("kind") == "Deployment"]
    if not deployments:
        found = ", ".join(f"{doc.get('kind')!s} in {where}" for where, doc in documents[:4])
        more = f" and {len(documents) - 4} more" if len(documents) > 4 else ""
        raise ManifestError("NotADeployment", f"{path} holds no apps/v1 Deployment (it holds {found}{more}); "
                                              f"{WHAT_A_SOURCE_HOLDS}.")
    for where, doc in deployments:
        if doc.get("apiVersion") != "apps/v1":
            raise ManifestError("NotADeployment", f"{where} is a Deployment of apiVersion "
                                                  f"{doc.get('apiVersion')!r}; use apps/v1.")
    if len(deployments) > 1:
        places = ", ".join(where for where, _ in deployments)
        raise ManifestError("NotOneDeployment", f"{path} holds {len(deployments)} Deployments ({places}); "
                                                f"{WHAT_A_SOURCE_HOLDS}: release the others separately.")
    return deployments[0]


def _companion_kind(where: str, doc: Mapping[str, Any]) -> str:
    """The kind of a document other than the Deployment, if the source may hold it."""
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if kind == "Secret":
        raise ManifestError(UNSUPPORTED_KIND, f"{where} is a Secret: Secrets are never read from git; create it in "
                                              "the cluster and refer to it by name from the Deployment.")
    if kind not in _VERSIONS:
        raise ManifestError(UNSUPPORTED_KIND, f"{where} is a {api_version!s} {kind!s}; {WHAT_A_SOURCE_HOLDS} "
                                              "(manage other objects outside the release).")
    assert isinstance(kind, str)
    if api_version not in _VERSIONS[kind]:
        raise ManifestError(_REASONS[kind], f"{where}: apiVersion {api_version!r} of a {kind} is not supported; "
                                            f"use {' or '.join(_VERSIONS[kind])}.")
    return kind


def _only_one(first: tuple[str, ObjectTemplate] | None, where: str, kind: str, reason: str) -> None:
    if first is not None:
        raise ManifestError(reason, f"{where} is a second {kind} (the first is in {first[0]}); a source holds at "
                                    "most one.")
