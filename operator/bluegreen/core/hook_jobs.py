"""Job manifests of a commit -> the Job the operator creates for one hook run (pure).

A *hook Job* is a batch/v1 Job read from the release's commit and run once for a hook of that commit: a
``prePromotion`` / ``postPromotion`` check, an ``expand`` / ``contract`` migration. ``parse_job_manifest``
validates the file (errors: ``JobManifestError``, reason ``InvalidJobManifest``, naming the file and the
field); ``render_job`` makes the Job of one run (``HookJobRun``): a deterministic name, the operator's
labels and annotations, the ``BLUEGREEN_*`` environment, a deadline and a default ``backoffLimit``.

The operator's labels go on the Job and on its pods, never ``bluegreen.dev/color`` on the pods: a Service
selects a colour's pods by that label, and a Job's pod must never take a colour's traffic.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn, cast

import yaml

from bluegreen.core.errors import ReasonedError
from bluegreen.core.manifest_fields import check_reserved, invalid, mapping, string_map
from bluegreen.core.spec import (
    ANNOTATION_COMMIT,
    LABEL_COLOR,
    LABEL_HOOK,
    LABEL_RELEASE,
    Color,
    ReleaseRef,
)
from bluegreen.core.yaml_docs import DEFAULT_MAX_BYTES, ManifestError, ManifestLoader, normalize

INVALID_JOB_MANIFEST: Final = "InvalidJobManifest"
ANNOTATION_CHECK: Final = "bluegreen.dev/check"
"""On a check's Job: the name of the check (``spec.checks.<hook>[].name``)."""
HOOK_EXPAND: Final = "expand"
HOOK_CONTRACT: Final = "contract"
ENV_RELEASE: Final = "BLUEGREEN_RELEASE"
ENV_COLOR: Final = "BLUEGREEN_COLOR"
ENV_COMMIT: Final = "BLUEGREEN_COMMIT"
ENV_HOOK: Final = "BLUEGREEN_HOOK"
ENV_PREVIEW_SERVICE: Final = "BLUEGREEN_PREVIEW_SERVICE"
RESERVED_ENV: Final = (ENV_RELEASE, ENV_COLOR, ENV_COMMIT, ENV_HOOK, ENV_PREVIEW_SERVICE)
"""Set by the operator in every container; a manifest that sets one in ``env`` is refused."""
DEFAULT_BACKOFF_LIMIT: Final = 0
"""A hook Job runs its pod once unless the manifest asks for retries (Kubernetes' own default is 6)."""
MAX_NAME_LENGTH: Final = 63
"""A Job's name becomes its pods' ``job-name`` label value: at most 63 characters."""
NAME_HASH_LENGTH: Final = 8
COMMIT_LENGTH: Final = 10
RESTART_POLICIES: Final = ("Never", "OnFailure")
HOOK_SHORT_NAMES: Final = {"prePromotion": "pre", "postPromotion": "post"}

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_UNSAFE_RE = re.compile(r"[^a-z0-9-]+")
_REFUSED_SPEC_FIELDS: Final = {
    "selector": "the Job controller chooses the selector itself; remove spec.selector",
    "manualSelector": "the Job controller chooses the selector itself; remove spec.manualSelector",
    "ttlSecondsAfterFinished": "the operator deletes finished hook Jobs itself (it keeps the last few runs); a Job "
                               "removed earlier would run again, remove spec.ttlSecondsAfterFinished",
}

JobManifest = Mapping[str, Any]
"""A validated Job manifest as ``parse_job_manifest`` returns it (JSON values only, nulls dropped)."""


class JobManifestError(ReasonedError):
    """A Job manifest of the commit cannot be run: reason ``InvalidJobManifest``, the message names the file."""

    def __init__(self, message: str) -> None:
        super().__init__(INVALID_JOB_MANIFEST, message)


@dataclass(frozen=True)
class HookJobRun:
    """One Job to run: a hook (``prePromotion``, ``expand``...) of one commit for one colour of a release,
    for one check when the hook has several Jobs. It runs once: its Job's name is derived from all of it."""

    release: ReleaseRef
    hook: str
    commit: str
    color: Color | None = None
    check: str | None = None
    preview_service: str | None = None

    @property
    def job_name(self) -> str:
        return job_name(self.release.name, self.hook, self.commit, self.color, self.check)


def parse_job_manifest(content: str | bytes, *, namespace: str, path: str,
                       max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Validate one batch/v1 Job manifest of a commit (``path`` names it in messages) and return it,
    normalized. ``namespace``: the release's; the manifest may omit it or name the same one. Raises
    ``JobManifestError``; the shared manifest rules (``core.yaml_docs``, ``core.manifest_fields``) report theirs
    as ``ManifestError``, turned into it here."""
    try:
        return _parse_job_manifest(content, namespace=namespace, path=path, max_bytes=max_bytes)
    except ManifestError as exc:
        raise JobManifestError(exc.message) from None


def _parse_job_manifest(content: str | bytes, *, namespace: str, path: str, max_bytes: int) -> dict[str, Any]:
    where = path or "the Job manifest"
    raw = content.encode("utf-8") if isinstance(content, str) else content
    if len(raw) > max_bytes:
        raise JobManifestError(f"{where} is {len(raw)} bytes; the limit is {max_bytes} bytes.")
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobManifestError(f"{where} is not UTF-8 text ({exc.reason}).") from None
    try:
        documents = [doc for doc in yaml.load_all(decoded, Loader=ManifestLoader) if doc is not None]
        if len(documents) != 1:
            found = "no document" if not documents else f"{len(documents)} documents"
            _invalid(where, f"must hold exactly one YAML document (a batch/v1 Job); found {found}")
        doc = normalize(documents[0], where)
    except yaml.YAMLError as exc:
        raise JobManifestError(f"{where} is not valid YAML: {' '.join(str(exc).split())}.") from None
    except RecursionError:
        raise JobManifestError(f"{where} is nested too deeply to be read.") from None
    if not isinstance(doc, dict) or doc.get("apiVersion") != "batch/v1" or doc.get("kind") != "Job":
        found = (f"apiVersion {doc.get('apiVersion')!r}, kind {doc.get('kind')!r}" if isinstance(doc, dict)
                 else f"a {type(doc).__name__}")
        _invalid(where, f"must be a batch/v1 Job; found {found}")
    metadata = _mapping(doc.get("metadata", {}), "metadata", where)
    if metadata.get("namespace") not in (None, namespace):
        _invalid(where, f"metadata.namespace is {metadata['namespace']!r}, but the release is in namespace "
                        f"{namespace!r}; remove it or set it to {namespace!r}")
    for name in ("labels", "annotations"):
        _check_reserved(_string_map(metadata.get(name, {}), f"metadata.{name}", where), f"metadata.{name}", where)
    spec = _mapping(doc.get("spec"), "spec", where)
    for refused, why in _REFUSED_SPEC_FIELDS.items():
        if refused in spec:
            _invalid(where, f"spec.{refused}: {why}")
    for name, minimum in (("activeDeadlineSeconds", 1), ("backoffLimit", 0)):
        value = spec.get(name, minimum)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _invalid(where, f"spec.{name} must be a whole number >= {minimum}, not {value!r}")
    template = _mapping(spec.get("template"), "spec.template", where)
    pod_meta = _mapping(template.get("metadata", {}), "spec.template.metadata", where)
    for name in ("labels", "annotations"):
        at = f"spec.template.metadata.{name}"
        _check_reserved(_string_map(pod_meta.get(name, {}), at, where), at, where)
    _check_pod_spec(_mapping(template.get("spec"), "spec.template.spec", where), where)
    return cast(dict[str, Any], doc)


def _check_pod_spec(pod_spec: Mapping[str, Any], where: str) -> None:
    policy = pod_spec.get("restartPolicy", "Never")
    if policy not in RESTART_POLICIES:
        _invalid(where, f"spec.template.spec.restartPolicy must be Never or OnFailure (or absent: Never), "
                        f"not {policy!r}")
    names: set[str] = set()
    for list_name in ("initContainers", "containers"):
        at_list = f"spec.template.spec.{list_name}"
        containers = pod_spec.get(list_name, [])
        if not isinstance(containers, list) or (list_name == "containers" and not containers):
            _invalid(where, f"{at_list} must be a {'non-empty ' if list_name == 'containers' else ''}list of "
                            "containers")
        for index, container in enumerate(containers):
            at = f"{at_list}[{index}]"
            if not isinstance(container, dict):
                _invalid(where, f"{at} must be a mapping")
            for required in ("name", "image"):
                if not isinstance(container.get(required), str) or not container[required]:
                    _invalid(where, f"{at}.{required} must be a non-empty string")
            if container["name"] in names:
                _invalid(where, f"{at}.name {container['name']!r} is used by more than one container")
            names.add(container["name"])
            _check_env(container.get("env", []), f"{at}.env", where)


def _check_env(env: object, at: str, where: str) -> None:
    if not isinstance(env, list):
        _invalid(where, f"{at} must be a list")
    for index, variable in enumerate(env):
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str) or not variable["name"]:
            _invalid(where, f"{at}[{index}] must be a mapping with a non-empty name")
        if variable["name"] in RESERVED_ENV:
            _invalid(where, f"{at}[{index}].name {variable['name']!r} is set by the operator "
                            f"({', '.join(RESERVED_ENV)}); remove it")


def job_name(release: str, hook: str, commit: str, color: Color | str | None = None,
             check: str | None = None) -> str:
    """The Job of one run: ``<release>-<hook>[-<check>]-<commit[:10]>[-<colour>]`` (``pre``/``post`` for the
    promotion hooks), lowercase. A name that would not be a valid 63-character label value is shortened (or
    its unsafe characters replaced) and ends with 8 hex digits of a hash of the whole identity instead."""
    parts = [release, HOOK_SHORT_NAMES.get(hook, hook), *([check] if check else []), commit[:COMMIT_LENGTH],
             *([str(color)] if color else [])]
    plain = "-".join(parts)
    if len(plain) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(plain):
        return plain
    identity = "\0".join([release, hook, check or "", commit, str(color or "")])
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:NAME_HASH_LENGTH]
    safe = _UNSAFE_RE.sub("-", plain.lower())
    prefix = safe[:MAX_NAME_LENGTH - NAME_HASH_LENGTH - 1].strip("-")  # never empty: the release leads
    return f"{prefix}-{digest}"


def render_job(manifest: JobManifest, run: HookJobRun, *, timeout_seconds: float | None = None,
               owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Job to create for ``run`` from a manifest ``parse_job_manifest`` accepted (not modified).

    ``timeout_seconds`` becomes ``activeDeadlineSeconds`` (rounded up) unless the manifest sets one;
    ``backoffLimit`` defaults to 0; ``restartPolicy`` to Never. The ``BLUEGREEN_*`` variables come first in
    every container's ``env``, so the manifest's own variables may refer to them as ``$(BLUEGREEN_COMMIT)``;
    ``BLUEGREEN_PREVIEW_SERVICE`` only when the run has a preview Service, ``BLUEGREEN_COLOR`` with a colour.
    """
    doc = copy.deepcopy(dict(manifest))
    metadata = doc.get("metadata") or {}
    ours = {LABEL_RELEASE: run.release.name, LABEL_HOOK: run.hook}
    annotations = {**(metadata.get("annotations") or {}), ANNOTATION_COMMIT: run.commit}
    if run.check:
        annotations[ANNOTATION_CHECK] = run.check
    labels = {**(metadata.get("labels") or {}), **ours}
    if run.color:
        labels[LABEL_COLOR] = str(run.color)
    new_meta: dict[str, Any] = {"name": run.job_name, "namespace": run.release.namespace, "labels": labels,
                                "annotations": annotations}
    if owner is not None:
        new_meta["ownerReferences"] = [copy.deepcopy(dict(owner))]
    spec: dict[str, Any] = doc["spec"]
    if timeout_seconds is not None and "activeDeadlineSeconds" not in spec:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(timeout_seconds))
    spec.setdefault("backoffLimit", DEFAULT_BACKOFF_LIMIT)
    template = spec["template"]
    pod_meta = template.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **ours}
    pod_spec = template["spec"]
    pod_spec.setdefault("restartPolicy", "Never")
    env = job_environment(run)
    for list_name in ("initContainers", "containers"):
        for container in pod_spec.get(list_name, []):
            container["env"] = [*env, *container.get("env", [])]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": new_meta, "spec": spec}


def job_environment(run: HookJobRun) -> list[dict[str, str]]:
    """The variables every container of the run's Job gets, in this order."""
    env = [{"name": ENV_RELEASE, "value": run.release.name}, {"name": ENV_COMMIT, "value": run.commit},
           {"name": ENV_HOOK, "value": run.hook}]
    if run.color:
        env.append({"name": ENV_COLOR, "value": str(run.color)})
    if run.preview_service:
        env.append({"name": ENV_PREVIEW_SERVICE, "value": run.preview_service})
    return env


def _invalid(where: str, problem: str) -> NoReturn:
    invalid(where, problem, INVALID_JOB_MANIFEST)


def _mapping(value: object, name: str, where: str) -> dict[str, Any]:
    return mapping(value, name, where, INVALID_JOB_MANIFEST)


def _string_map(value: object, name: str, where: str) -> dict[str, str]:
    return string_map(value, name, where, INVALID_JOB_MANIFEST)


def _check_reserved(keys: Mapping[str, str], name: str, where: str) -> None:
    check_reserved(keys, name, where, INVALID_JOB_MANIFEST)
