"""Connecting to the API server: the client configuration, and the three API groups the operator uses."""

from __future__ import annotations

from kubernetes import client, config


def load_api_client() -> client.ApiClient:
    """An ApiClient from $KUBECONFIG / ~/.kube/config, or the in-cluster service account."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def current_namespace() -> str | None:
    """The namespace of the current kubeconfig context, if it names one."""
    try:
        _, context = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return None
    namespace = (context or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else None


class Apis:
    """The typed APIs over one ``ApiClient``: apps/v1, core/v1 and custom objects."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
