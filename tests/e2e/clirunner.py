"""The ``bluegreen`` CLI as a user runs it: a child process with the test cluster's kubeconfig, and the
``kubectl bluegreen`` plugin found by kubectl on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client

GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
VENV_BIN = Path(sys.executable).parent
AWAITING_SCHEMA = {"type": "object", "nullable": True, "properties": {
    "revision": {"type": "string"}, "color": {"type": "string", "enum": ["blue", "green"]},
    "since": {"type": "string", "format": "date-time"}}}


def cli_env(kubeconfig: str) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1"}


def bluegreen(kubeconfig: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``bluegreen ARGS`` (``python -m bluegreen.cli``), its output captured."""
    return subprocess.run([sys.executable, "-m", "bluegreen.cli", *args], env=cli_env(kubeconfig),
                          capture_output=True, text=True, timeout=timeout, check=False)


def bluegreen_background(kubeconfig: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bluegreen.cli", *args], env=cli_env(kubeconfig),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kubectl(kubeconfig: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``kubectl ARGS`` with the venv's bin first on PATH, where ``pip install`` put ``kubectl-bluegreen``."""
    return subprocess.run(["kubectl", *args], env=cli_env(kubeconfig), capture_output=True, text=True,
                          timeout=timeout, check=False)


def allow_awaiting_promotion(api: client.ApiClient) -> None:
    """Make sure the installed CRD keeps ``status.awaitingPromotion`` (the operator side of manual promotion adds
    it to crds/; until then the structural schema would prune what the tests write there). A no-op once there."""
    ext = client.ApiextensionsV1Api(api)
    name = f"{PLURAL}.{GROUP}"
    for _ in range(5):
        crd = ext.read_custom_resource_definition(name)
        status = crd.spec.versions[0].schema.open_apiv3_schema.properties["status"]
        if "awaitingPromotion" in (status.properties or {}):
            return
        body = api.sanitize_for_serialization(crd)
        body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
            "awaitingPromotion"] = AWAITING_SCHEMA
        try:
            ext.replace_custom_resource_definition(name, body)
        except client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
        time.sleep(1)  # the API server picks the new schema up asynchronously
    raise AssertionError("the CRD did not take status.awaitingPromotion")


def set_status(api: client.ApiClient, namespace: str, status: dict[str, Any], name: str = "shop") -> None:
    """Write the release's status as the operator would (the status subresource)."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status})


def release_annotations(api: client.ApiClient, namespace: str, name: str = "shop") -> dict[str, str]:
    release = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return dict(release["metadata"].get("annotations") or {})


def remove_annotation(api: client.ApiClient, namespace: str, key: str, name: str = "shop") -> None:
    """What the operator does once it handled a request."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": {key: None}}})


def viewer_kubeconfig(api: client.ApiClient, namespace: str, path: Path) -> Path:
    """A kubeconfig for a ServiceAccount that may read releases, Deployments and Services, but no Secret."""
    from kubesetup import wait_for_token  # tests/cluster, on sys.path through conftest

    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "viewer"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "viewer"}, "rules": [
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}]})
    wait_for_token(core, namespace)
    deadline = time.monotonic() + 30
    while not (account := core.read_namespaced_service_account("viewer", namespace)).secrets:
        assert time.monotonic() < deadline, "no token for the viewer ServiceAccount"
        time.sleep(0.2)
    import base64
    import json

    token = base64.b64decode(core.read_namespaced_secret(account.secrets[0].name, namespace).data["token"]).decode()
    conf = api.configuration
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "viewer",
        "clusters": [{"name": "c", "cluster": {"server": conf.host, "certificate-authority": conf.ssl_ca_cert}}],
        "users": [{"name": "viewer", "user": {"token": token}}],
        "contexts": [{"name": "viewer", "context": {"cluster": "c", "user": "viewer", "namespace": namespace}}]}))
    return path
