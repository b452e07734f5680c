"""Cluster set-up shared by the e2e harness, `make demo` and the benchmarks (not by the operator, which
installs nothing): apply the CRD from crds/, and give a run a fresh namespace whose pods can start."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

CRD = Path(__file__).resolve().parents[2] / "crds" / "bluegreenreleases.bluegreen.dev.yaml"


def install_crd(api: client.ApiClient, timeout: float = 30) -> None:
    """Create or update the CRD (like `kubectl apply -f crds/`) and wait until the API serves it."""
    ext = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD.read_text())
    name = body["metadata"]["name"]
    try:
        body["metadata"]["resourceVersion"] = ext.read_custom_resource_definition(name).metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        body["metadata"].pop("resourceVersion", None)
        ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + timeout
    while not any(c.type == "Established" and c.status == "True"
                  for c in ext.read_custom_resource_definition(name).status.conditions or []):
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {name} not established after {timeout}s")
        time.sleep(0.2)
    time.sleep(1)  # let discovery catch up before a client asks for the new kind


def wait_for_token(core: client.CoreV1Api, namespace: str, timeout: float = 30) -> None:
    """Wait for the namespace's default ServiceAccount token: pods cannot be created before it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        accounts = core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items
        if accounts and accounts[0].secrets:
            return
        time.sleep(0.1)
    raise TimeoutError(f"no default ServiceAccount token in namespace {namespace} after {timeout}s")


def fresh_namespace(core: client.CoreV1Api, name: str, *, on_delete: Callable[[], None] | None = None) -> None:
    """Delete ``name`` if an earlier run left it (waiting until it is gone), then create it anew."""
    try:
        core.delete_namespace(name)
        if on_delete is not None:
            on_delete()
        while True:
            core.read_namespace(name)
            time.sleep(0.5)
    except ApiException as exc:
        if exc.status != 404:
            raise
    core.create_namespace({"metadata": {"name": name}})
    wait_for_token(core, name)
