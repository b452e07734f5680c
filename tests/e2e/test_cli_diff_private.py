"""``bluegreen diff`` of a private repository: the CLI reads the credentials from the release's
``spec.source.secretRef`` with the user's own rights and fetches over HTTPS (basic auth, a private CA) from a
real git server on loopback; a wrong password fails with exit 2 and the password appears nowhere."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirunner import bluegreen

from conftest import Cluster, GitRepo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import gitservers

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[gitservers.HttpsGitServer, gitservers.TlsFiles, Path]]:
    ca = gitservers.make_ca(tmp_path / "tls", "cli-ca")
    served = tmp_path / "served"
    served.mkdir()
    server = gitservers.HttpsGitServer(served, gitservers.issue_server_cert(tmp_path / "tls", "cli-server", ca),
                                       gitservers.HttpAuth(users={"deployer": PASSWORD}))
    yield server, ca, served
    server.stop()


def put_secret(cluster: Cluster, data: dict[str, bytes]) -> None:
    cluster.core.create_namespaced_secret(cluster.namespace, {"metadata": {"name": "git-credentials"}, "data": {
        key: base64.b64encode(value).decode() for key, value in data.items()}})


def test_diff_fetches_a_private_repository_with_the_releases_credentials(
        kubeconfig: str, namespace: str, crd: None, cluster: Cluster, repo: GitRepo, tmp_path: Path,
        https: tuple[gitservers.HttpsGitServer, gitservers.TlsFiles, Path]) -> None:
    server, ca, served = https
    v1 = repo.release("registry.local/shop:v1")
    gitservers.publish(served, "deploy.git", repo.path)
    put_secret(cluster, {"username": b"deployer", "password": PASSWORD.encode(), "caFile": ca.cert_pem})
    cluster.create_release(repo, source={"url": server.url("deploy.git"), "path": repo.manifest_path,
                                         "secretRef": {"name": "git-credentials"}})
    cache = str(tmp_path / "cli-cache")

    result = bluegreen(kubeconfig, "diff", "shop", "-n", namespace, "--cache-dir", cache)
    assert result.returncode == 1, result.stderr  # nothing serves yet: the whole Deployment is new
    assert result.stdout.startswith(f"--- live (no serving colour)\n+++ git {server.url('deploy.git')} "
                                    f"{repo.manifest_path} at {v1[:12]} (as shop-blue)\n")
    body = result.stdout.splitlines()[2:]
    assert body and all(line.startswith(("+", "@@")) for line in body)
    assert any(line.endswith("image: registry.local/shop:v1") for line in body)
    assert any(request.user == "deployer" for request in server.requests), "the CLI authenticated with the Secret"

    server.auth.users["deployer"] = "a-new-password"
    repo.release("registry.local/shop:v2")
    gitservers.push(repo.path, served / "deploy.git")
    refused = bluegreen(kubeconfig, "diff", "shop", "-n", namespace, "--cache-dir", cache)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: cannot read {repo.manifest_path} at branch main of "
                                     f"{server.url('deploy.git')}: "), refused.stderr
    assert PASSWORD not in refused.stdout + refused.stderr + result.stdout + result.stderr
