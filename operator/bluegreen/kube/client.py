"""Connecting to the API server: the client configuration, a timeout on every request, and the API
groups the operator uses."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from bluegreen.core.errors import ClusterError


@dataclass(frozen=True)
class RequestTimeouts:
    """Seconds to connect to the API server and to wait for a response (each read of the socket)."""

    connect: float = 5.0
    read: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RequestTimeouts:
        """``BLUEGREEN_API_CONNECT_TIMEOUT`` / ``BLUEGREEN_API_READ_TIMEOUT`` (seconds), else the defaults."""
        default = cls()
        return cls(float(environ.get("BLUEGREEN_API_CONNECT_TIMEOUT") or default.connect),
                   float(environ.get("BLUEGREEN_API_READ_TIMEOUT") or default.read))

    def pair(self) -> tuple[float, float]:
        return self.connect, self.read


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotLeaderError(ClusterError):
    """A write refused before it was sent: this operator does not hold the leader Lease (any more)."""

    def __init__(self) -> None:
        super().__init__("NotLeader", "this operator process does not hold the leader Lease: it writes nothing "
                                      "(another replica leads)")


class TimedApiClient(client.ApiClient):
    """An ``ApiClient`` whose every request carries a ``(connect, read)`` timeout unless the call names its
    own: a half-open connection to the API server fails the call instead of blocking a worker forever.

    ``write_guard`` (leader election): every request that is not a read is sent only while it returns True,
    else ``NotLeaderError`` is raised: a standby, or a leader past its renew deadline, writes nothing."""

    write_guard: Callable[[], bool] | None = None

    def __init__(self, configuration: client.Configuration, timeouts: RequestTimeouts) -> None:
        super().__init__(configuration)
        self.timeouts = timeouts

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None, post_params: Any = None,
                 _request_timeout: Any = None) -> Any:
        guard = self.write_guard
        if guard is not None and method.upper() not in READ_METHODS and not guard():
            raise NotLeaderError()
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or self.timeouts.pair())


def load_api_client(timeouts: RequestTimeouts | None = None, *, config_file: str | None = None,
                    context: str | None = None) -> client.ApiClient:
    """An ApiClient from $KUBECONFIG / ~/.kube/config, or the in-cluster service account, with request
    timeouts (``RequestTimeouts.from_env()`` unless given). $KUBECONFIG is read now, not when the kubernetes
    package was imported (its default location is fixed at import). ``config_file`` or ``context`` (the CLI's
    ``--kubeconfig`` and ``--context``) select a kubeconfig and skip the in-cluster account."""
    configuration = client.Configuration()
    try:
        if config_file or context:
            raise config.ConfigException("a kubeconfig was asked for")
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(config_file=config_file or os.environ.get("KUBECONFIG") or None,  # type: ignore[no-untyped-call]
                                context=context or None, client_configuration=configuration)
    return TimedApiClient(configuration, timeouts or RequestTimeouts.from_env())


def current_namespace(config_file: str | None = None, context: str | None = None) -> str | None:
    """The namespace of the kubeconfig's current context (or of ``context``), if it names one."""
    try:
        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=config_file or os.environ.get("KUBECONFIG") or None)
    except (config.ConfigException, OSError):
        return None
    if context:
        current = next((entry for entry in contexts or [] if entry.get("name") == context), None)
    namespace = (current or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else None


class Apis:
    """The typed APIs over one ``ApiClient``: apps/v1, batch/v1, core/v1 and custom objects."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
