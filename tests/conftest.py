"""Session-wide fixtures: a real Kubernetes API server for e2e tests, a namespace per test.

The cluster is the one ``$KUBECONFIG`` points at when it is set (kind, a CI cluster...), otherwise the
local control plane in ``tests/cluster/``, started on demand and stopped again at the end of the session
if this session started it (set ``BLUEGREEN_KEEP_CLUSTER=1`` to keep it running).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CONTROLPLANE = Path(__file__).parent / "cluster" / "controlplane.py"
sys.path.insert(0, str(CONTROLPLANE.parent))
from kubesetup import wait_for_token  # noqa: E402


def _controlplane(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CONTROLPLANE), command], capture_output=True, text=True)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """Path of a kubeconfig for a real cluster (admin rights in the test namespaces)."""
    given = os.environ.get("KUBECONFIG")
    if given:
        yield given
        return
    already_running = _controlplane("status").returncode == 0
    result = _controlplane("up")
    if result.returncode != 0:
        pytest.fail(f"local control plane did not start:\n{result.stdout}\n{result.stderr}")
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"export KUBECONFIG=(\S+)", last)
    assert match, f"unexpected last line from controlplane up: {last!r}"
    os.environ["KUBECONFIG"] = match.group(1)
    try:
        yield match.group(1)
    finally:
        del os.environ["KUBECONFIG"]
        if not already_running and not os.environ.get("BLUEGREEN_KEEP_CLUSTER"):
            _controlplane("down")


@pytest.fixture(scope="session")
def kube_client(kubeconfig: str):  # type: ignore[no-untyped-def]
    """An ApiClient for the test cluster."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture
def namespace(kube_client, request: pytest.FixtureRequest) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh namespace for one test (its default ServiceAccount ready), deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(kube_client)
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"bluegreen.dev/test": "true"}}})
    wait_for_token(core, name)
    yield name
    core.delete_namespace(name, propagation_policy="Background")
