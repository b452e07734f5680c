"""What the planner needs of a Deployment or a Service, parsed from an API body: small, frozen records.

The view (``kube.view``) keeps these instead of whole bodies, so thousands of releases cost little memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bluegreen.core.errors import ClusterError
from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import (
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_COMMIT,
    ANNOTATION_EXPAND_JOB,
    ANNOTATION_FAILED_COMMIT,
    ANNOTATION_FAILED_MESSAGE,
    ANNOTATION_FAILED_REASON,
    ANNOTATION_ROLLOUT_STARTED_AT,
    ANNOTATION_TEMPLATE_HASH,
    LABEL_COLOR,
    LABEL_RELEASE,
    Color,
)
from bluegreen.core.timestamps import parse_time


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A Deployment labelled ``bluegreen.dev/release``: which release it belongs to and its colour's state."""

    release: str
    """The ``bluegreen.dev/release`` label: the release this Deployment belongs to."""
    uid: str
    resource_version: str
    state: ColorState


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """A Service: does it exist and which colour its selector names; its ClusterIP and port numbers (for the
    HTTP checks that name a Service)."""

    uid: str
    resource_version: str
    state: ServiceState
    cluster_ip: str | None = None
    ports: tuple[int, ...] = ()

    def address(self, port: int | None) -> tuple[str, int] | None:
        """(ClusterIP, port) for ``port`` (None: the first port); None without a ClusterIP or that port."""
        if not self.cluster_ip or self.cluster_ip == "None" or not self.ports:
            return None
        if port is None:
            return self.cluster_ip, self.ports[0]
        return (self.cluster_ip, port) if port in self.ports else None


def release_label(body: Mapping[str, Any]) -> str | None:
    """The ``bluegreen.dev/release`` label of an object, if it has one."""
    value = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_RELEASE)
    return str(value) if value else None


def parse_color(value: object) -> Color | None:
    try:
        return Color(str(value)) if value is not None else None
    except ValueError:
        return None


def deployment_record(body: Mapping[str, Any]) -> DeploymentRecord | None:
    """The record of a Deployment of ours (labelled ``bluegreen.dev/release``); None for any other.

    Its colour is the one its name ends with (``<release>-blue``), else its ``bluegreen.dev/color`` label."""
    release = release_label(body)
    if release is None:
        return None
    meta = body["metadata"]
    spec, status = body.get("spec") or {}, body.get("status") or {}
    annotations = meta.get("annotations") or {}
    color = _color_of_name(str(meta.get("name", ""))) or parse_color((meta.get("labels") or {}).get(LABEL_COLOR))
    state = ColorState(
        color=color or Color.BLUE, exists=True,
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
        expand_job=annotations.get(ANNOTATION_EXPAND_JOB) or None,
        **failure_mark(annotations),
    )
    return DeploymentRecord(release, str(meta.get("uid", "")), str(meta.get("resourceVersion", "")), state)


def failure_mark(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The ``ColorState`` fields of a Deployment's failure mark: ``bluegreen.dev/failed-*``, or the older
    ``bluegreen.dev/abandoned-commit`` (reason ProgressDeadlineExceeded)."""
    commit = annotations.get(ANNOTATION_FAILED_COMMIT)
    if commit:
        mark: dict[str, Any] = {"failed_commit": commit,
                                "failed_message": annotations.get(ANNOTATION_FAILED_MESSAGE, "")}
        if annotations.get(ANNOTATION_FAILED_REASON):
            mark["failed_reason"] = annotations[ANNOTATION_FAILED_REASON]
        return mark
    return {"failed_commit": annotations.get(ANNOTATION_ABANDONED_COMMIT)}


def service_record(body: Mapping[str, Any]) -> ServiceRecord:
    meta = body["metadata"]
    spec = body.get("spec") or {}
    selector = spec.get("selector") or {}
    state = ServiceState(name=str(meta["name"]), exists=True, color=parse_color(selector.get(LABEL_COLOR)))
    ports = tuple(int(p["port"]) for p in spec.get("ports") or [] if isinstance(p, Mapping) and "port" in p)
    cluster_ip = spec.get("clusterIP")
    return ServiceRecord(str(meta.get("uid", "")), str(meta.get("resourceVersion", "")), state,
                         str(cluster_ip) if cluster_ip else None, ports)


def _color_of_name(name: str) -> Color | None:
    for color in Color:
        if name.endswith(f"-{color}"):
            return color
    return None


def deployment_conflict(name: str, release: str) -> ClusterError:
    """The error for a same-named Deployment that does not belong to the release (never touched)."""
    return ClusterError("DeploymentConflict",
                        f"Deployment {name!r} exists but does not belong to release {release!r} "
                        f"(no {LABEL_RELEASE}={release} label); rename or delete it")
