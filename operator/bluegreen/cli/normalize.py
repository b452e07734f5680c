"""A Deployment reduced to what a release changes, so the manifest in git (as the operator renders it) and the
live Deployment compare equal when the next release would change nothing (pure; docs/cli.md#diff).

Both sides go through the same steps:

- only ``metadata.labels``, ``metadata.annotations`` and ``spec`` are kept (no name, namespace, uid,
  resourceVersion, generation, timestamps, managedFields, ownerReferences or status);
- the colour label ``bluegreen.dev/color`` is dropped from the labels, the selector and the pod labels (the
  rendered side is the idle colour, the live side the serving one: they always differ);
- annotations set by the API server, kubectl or the operator's bookkeeping are dropped
  (``IGNORED_ANNOTATIONS``); the template hash stays, so a change shows as a new hash too;
- ``align_quantities`` then gives the rendered side the live spelling of a resource quantity that the API
  server stored in its canonical form (``0.5`` CPU is stored as ``500m``, ``1024Mi`` as ``1Gi``);
- every value that equals the default the API server would fill in is dropped (checked
  against kube-apiserver v1.20: a field left out in git and the same field defaulted live then agree; a
  value differing from the default stays, on both sides; the ``*_DEFAULTS`` tables below).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from bluegreen.core.spec import (
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_COMMIT,
    ANNOTATION_EXPAND_JOB,
    ANNOTATION_ROLLOUT_STARTED_AT,
    LABEL_COLOR,
)

IGNORED_ANNOTATIONS = frozenset({
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    ANNOTATION_COMMIT,
    ANNOTATION_ROLLOUT_STARTED_AT,
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_EXPAND_JOB,
})
"""Deployment annotations that say nothing about what runs: the API server's revision counter, kubectl's
copy of the last apply, and the operator's bookkeeping (the commit is named in the diff's header instead)."""

DEPLOYMENT_DEFAULTS: Mapping[str, Any] = {"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10}
ROLLING_UPDATE_DEFAULTS: Mapping[str, Any] = {"maxSurge": "25%", "maxUnavailable": "25%"}
POD_DEFAULTS: Mapping[str, Any] = {
    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30, "securityContext": {},
}
CONTAINER_DEFAULTS: Mapping[str, Any] = {
    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {},
    "stdin": False, "stdinOnce": False, "tty": False,
}
PROBE_DEFAULTS: Mapping[str, Any] = {
    "failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1, "initialDelaySeconds": 0,
}
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
VOLUME_MODE_SOURCES = ("secret", "configMap", "projected", "downwardAPI")
DEFAULT_VOLUME_MODE = 420  # 0644



def default_pull_policy(image: str) -> str:
    """The ``imagePullPolicy`` the API server fills in: ``Always`` for ``:latest`` or no tag, else ``IfNotPresent``
    (an image by digest counts as tagged)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def normalize_deployment(body: Mapping[str, Any] | None) -> dict[str, Any]:
    """``body`` (a rendered or a live Deployment) reduced as the module docstring says; ``body`` is not modified.
    None (no Deployment) gives {}."""
    if not body:
        return {}
    meta = body.get("metadata") or {}
    metadata: dict[str, Any] = {}
    labels = _without(meta.get("labels"), {LABEL_COLOR})
    annotations = _without(meta.get("annotations"), IGNORED_ANNOTATIONS)
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = copy.deepcopy(dict(body.get("spec") or {}))
    _drop_defaults(spec, DEPLOYMENT_DEFAULTS)
    _strategy(spec)
    selector = spec.get("selector")
    if isinstance(selector, dict) and isinstance(selector.get("matchLabels"), dict):
        selector["matchLabels"] = _without(selector["matchLabels"], {LABEL_COLOR})
    template = spec.get("template")
    if isinstance(template, dict):
        _template(template)
    out: dict[str, Any] = {}
    if metadata:
        out["metadata"] = metadata
    out["spec"] = spec
    return out


def _without(mapping: object, keys: frozenset[str] | set[str]) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        return {}
    return {key: value for key, value in mapping.items() if key not in keys}


def _drop_defaults(mapping: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, value in defaults.items():
        if key in mapping and mapping[key] == value:
            del mapping[key]


def _strategy(spec: dict[str, Any]) -> None:
    """``strategy`` defaults to RollingUpdate with 25 % surge and 25 % unavailable."""
    strategy = spec.get("strategy")
    if not isinstance(strategy, dict):
        return
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if isinstance(rolling, dict):
            _drop_defaults(rolling, ROLLING_UPDATE_DEFAULTS)
            if not rolling:
                del strategy["rollingUpdate"]
        if strategy.get("type") == "RollingUpdate":
            del strategy["type"]
    if not strategy:
        del spec["strategy"]


def _template(template: dict[str, Any]) -> None:
    meta = template.get("metadata")
    if isinstance(meta, dict):
        if meta.get("creationTimestamp", "") is None:
            del meta["creationTimestamp"]
        if isinstance(meta.get("labels"), dict):
            meta["labels"] = _without(meta["labels"], {LABEL_COLOR})
        if not meta:
            del template["metadata"]
    pod = template.get("spec")
    if not isinstance(pod, dict):
        return
    _drop_defaults(pod, POD_DEFAULTS)
    for list_name in ("initContainers", "containers"):
        for container in pod.get(list_name) or []:
            if isinstance(container, dict):
                _container(container)
    for volume in pod.get("volumes") or []:
        if isinstance(volume, dict):
            _volume(volume)
    _field_refs(pod)


def _container(container: dict[str, Any]) -> None:
    _drop_defaults(container, CONTAINER_DEFAULTS)
    image = container.get("image")
    if isinstance(image, str) and container.get("imagePullPolicy") == default_pull_policy(image):
        del container["imagePullPolicy"]
    for port in container.get("ports") or []:
        if isinstance(port, dict) and port.get("protocol") == "TCP":
            del port["protocol"]
    for name in PROBES:
        probe = container.get(name)
        if isinstance(probe, dict):
            _drop_defaults(probe, PROBE_DEFAULTS)
            _handler(probe)
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in lifecycle.values():
            if isinstance(hook, dict):
                _handler(hook)


def _handler(handler: dict[str, Any]) -> None:
    """A probe's or lifecycle hook's ``httpGet`` defaults to scheme HTTP."""
    http = handler.get("httpGet")
    if isinstance(http, dict) and http.get("scheme") == "HTTP":
        del http["scheme"]


def _volume(volume: dict[str, Any]) -> None:
    for source in VOLUME_MODE_SOURCES:
        item = volume.get(source)
        if isinstance(item, dict) and item.get("defaultMode") == DEFAULT_VOLUME_MODE:
            del item["defaultMode"]
    host = volume.get("hostPath")
    if isinstance(host, dict) and host.get("type") == "":
        del host["type"]


def _field_refs(node: object) -> None:
    """Anywhere in the pod spec: ``fieldRef.apiVersion`` defaults to v1, ``resourceFieldRef.divisor`` to 0."""
    if isinstance(node, dict):
        ref = node.get("fieldRef")
        if isinstance(ref, dict) and ref.get("apiVersion") == "v1":
            del ref["apiVersion"]
        resource = node.get("resourceFieldRef")
        if isinstance(resource, dict) and resource.get("divisor") in ("0", 0):
            del resource["divisor"]
        for value in node.values():
            _field_refs(value)
    elif isinstance(node, list):
        for value in node:
            _field_refs(value)


_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$")
_SUFFIXES = {"Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
             "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "n": Decimal("1e-9"), "u": Decimal("1e-6"),
             "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
             "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}


def quantity_value(value: object) -> Decimal | None:
    """The amount a Kubernetes quantity (``500m``, ``1Gi``, ``1e3``, ``2``) stands for; None if it is none."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIXES[suffix]
    except (InvalidOperation, ValueError):
        return None


def _containers(body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    pod = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
    for list_name in ("initContainers", "containers"):
        for container in pod.get(list_name) or []:
            if isinstance(container, dict):
                yield f"{list_name}/{container.get('name')}", container


def align_quantities(live: Mapping[str, Any], rendered: dict[str, Any]) -> None:
    """Where a container's ``resources`` hold the same amount on both sides in another spelling, ``rendered``
    (normalized, modified in place) takes the live spelling, so only real changes of an amount show."""
    stored = dict(_containers(live))
    for key, container in _containers(rendered):
        other = stored.get(key)
        if other is None:
            continue
        for section in ("requests", "limits"):
            mine = (container.get("resources") or {}).get(section)
            theirs = (other.get("resources") or {}).get(section)
            if not isinstance(mine, dict) or not isinstance(theirs, dict):
                continue
            for resource, amount in mine.items():
                live_amount = theirs.get(resource)
                if live_amount != amount and quantity_value(amount) is not None \
                        and quantity_value(amount) == quantity_value(live_amount):
                    mine[resource] = live_amount
