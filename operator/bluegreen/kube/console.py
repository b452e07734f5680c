"""What the ``bluegreen`` CLI reads besides releases: one Deployment or Service by name, and API errors as plain
data (the CLI does not import ``kubernetes``)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bluegreen.kube.client import load_api_client
from bluegreen.kube.cluster import ClusterView, KubeCluster


@dataclass(frozen=True)
class ApiFailure:
    """An API server's refusal: the HTTP status and the message of its ``Status`` body."""

    status: int
    reason: str
    message: str


def api_failure(exc: BaseException) -> ApiFailure | None:
    """``exc`` as an ``ApiFailure`` when the API server answered with an error, else None."""
    if not isinstance(exc, ApiException):
        return None
    reason, message = str(exc.reason or ""), ""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict):
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or "")
    return ApiFailure(int(exc.status or 0), reason, message or reason or f"HTTP {exc.status}")


class ConsoleCluster(KubeCluster):
    """``KubeCluster`` with the CLI's GETs; every read goes to the API server (no watch). Each API group is made
    on first use: the kubernetes package imports an API's module then, and core/v1's alone takes about a second,
    which a command reading only releases need not pay (the operator makes all three at start)."""

    def __init__(self, api: client.ApiClient) -> None:  # not KubeCluster's: it makes every API group at once
        self.api = api
        self.view = ClusterView()
        self.on_release = None

    @functools.cached_property
    def apps(self) -> client.AppsV1Api:  # type: ignore[override]
        return client.AppsV1Api(self.api)

    @functools.cached_property
    def core(self) -> client.CoreV1Api:  # type: ignore[override]
        return client.CoreV1Api(self.api)

    @functools.cached_property
    def custom(self) -> client.CustomObjectsApi:  # type: ignore[override]
        return client.CustomObjectsApi(self.api)

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_json(self.apps.read_namespaced_deployment, name, namespace)

    def read_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_json(self.core.read_namespaced_service, name, namespace)


def console_cluster(config_file: str | None = None, context: str | None = None) -> ConsoleCluster:
    """A ``ConsoleCluster`` from ``config_file`` / ``context``, else $KUBECONFIG or the in-cluster account."""
    return ConsoleCluster(load_api_client(config_file=config_file, context=context))
