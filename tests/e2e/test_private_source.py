"""Private repositories and signed commits, end to end: the operator (under its least-privilege
ServiceAccount) reads credentials and trusted keys from Secrets, against real git servers on loopback.

Nothing secret may leave the Secret: the operator's whole output, the release's status and its Events are
scanned for every secret value.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import stays, wait_until

from conftest import Cluster, GitRepo, Operator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import gitservers

SECRET = "git-credentials"
KEYS = "trusted-keys"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[gitservers.TlsFiles, gitservers.TlsFiles]:
    base = tmp_path_factory.mktemp("tls")
    ca = gitservers.make_ca(base, "e2e-ca")
    return ca, gitservers.issue_server_cert(base, "e2e-server", ca)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def https(served: Path, tls: tuple[gitservers.TlsFiles, gitservers.TlsFiles]) -> Iterator[gitservers.HttpsGitServer]:
    auth = gitservers.HttpAuth(users={"deployer": "correct-horse-battery-staple"})
    server = gitservers.HttpsGitServer(served, tls[1], auth)
    yield server
    server.stop()


def put_secret(cluster: Cluster, name: str, data: dict[str, bytes]) -> None:
    body = {"metadata": {"name": name}, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    try:
        cluster.core.replace_namespaced_secret(name, cluster.namespace, body)
    except Exception:
        cluster.core.create_namespaced_secret(cluster.namespace, body)


def publish(repo: GitRepo, served: Path) -> None:
    bare = served / "deploy.git"
    if bare.exists():
        gitservers.push(repo.path, bare)
    else:
        gitservers.publish(served, "deploy.git", repo.path)


def leaks(operator: Operator, cluster: Cluster, secrets: list[str]) -> list[str]:
    """Which secret values appear in the operator's output, the release's status or its Events."""
    seen = operator.text() + json.dumps(cluster.status()) + " ".join(e.message or "" for e in cluster.events())
    return [s for s in secrets if s and s in seen]


def test_private_https_repository_with_basic_auth_and_a_private_ca(
        cluster: Cluster, repo: GitRepo, operator: Operator, served: Path, https: gitservers.HttpsGitServer,
        tls: tuple[gitservers.TlsFiles, gitservers.TlsFiles]) -> None:
    password = "correct-horse-battery-staple"
    put_secret(cluster, SECRET, {"username": b"deployer", "password": password.encode(),
                                 "caFile": tls[0].cert_pem})
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    publish(repo, served)
    cluster.create_release(repo, source={"url": https.url("deploy.git"), "path": repo.manifest_path,
                                         "interval": "2s", "secretRef": {"name": SECRET}})
    cluster.wait_serving(v1, "blue")
    assert any(r.user == "deployer" for r in https.requests), "the operator authenticated with the Secret"

    # The server's password changes: the operator fails fast, says why, keeps serving; nothing leaks.
    https.auth.users["deployer"] = "a-new-password"
    repo.release("registry.local/shop:v2")
    publish(repo, served)
    requests_before = len(https.requests)
    cluster.check_now()
    wait_until(lambda: cluster.condition("SourceReady").get("reason") == "AuthenticationFailed", timeout=20,
               what="AuthenticationFailed")
    assert cluster.color() == "blue" and cluster.deployment("green") is None
    assert cluster.events("AuthenticationFailed")
    stays(lambda: len(https.requests) - requests_before < 10, seconds=3, what="no credential retry loop")

    # Rotating the Secret takes effect without a restart.
    put_secret(cluster, SECRET, {"username": b"deployer", "password": b"a-new-password",
                                 "caFile": tls[0].cert_pem})
    cluster.check_now()
    cluster.wait_serving(repo.head(), "green", timeout=30)
    assert not leaks(operator, cluster, [password, "a-new-password"])


def test_wrong_ca_is_refused(cluster: Cluster, repo: GitRepo, operator: Operator, served: Path,
                             https: gitservers.HttpsGitServer, tmp_path: Path) -> None:
    other_ca = gitservers.make_ca(tmp_path / "other", "other-ca")
    put_secret(cluster, SECRET, {"username": b"deployer", "password": b"correct-horse-battery-staple",
                                 "caFile": other_ca.cert_pem})
    cluster.create_service()
    repo.release("registry.local/shop:v1")
    publish(repo, served)
    cluster.create_release(repo, source={"url": https.url("deploy.git"), "path": repo.manifest_path,
                                         "secretRef": {"name": SECRET}})
    wait_until(lambda: cluster.condition("SourceReady").get("reason") == "CertificateInvalid", timeout=20,
               what="CertificateInvalid")
    assert cluster.deployment("blue") is None
    assert not leaks(operator, cluster, ["correct-horse-battery-staple"])


def test_private_ssh_repository_with_verified_host_key(cluster: Cluster, repo: GitRepo, operator: Operator,
                                                       served: Path, tmp_path: Path) -> None:
    key = gitservers.SshKey.generate(tmp_path / "deploy-key", "deployer")
    sshd = gitservers.SshServer(tmp_path / "sshd", served, [key])
    try:
        cluster.create_service()
        v1 = repo.release("registry.local/shop:v1")
        publish(repo, served)
        # Without known_hosts the operator refuses to connect rather than trust the host blindly.
        put_secret(cluster, SECRET, {"identity": key.private})
        cluster.create_release(repo, source={"url": sshd.url("deploy.git"), "path": repo.manifest_path,
                                             "interval": "2s", "secretRef": {"name": SECRET}})
        wait_until(lambda: cluster.condition("SourceReady").get("reason") == "KnownHostsMissing", timeout=20,
                   what="KnownHostsMissing")
        assert sshd.log_count("Accepted publickey") == 0, "no connection is made without known_hosts"
        put_secret(cluster, SECRET, {"identity": key.private, "known_hosts": sshd.known_hosts_line.encode()})
        cluster.check_now()
        cluster.wait_serving(v1, "blue", timeout=30)
        private_text = key.private.decode()
        body = "".join(line for line in private_text.splitlines() if "PRIVATE KEY" not in line)
        assert not leaks(operator, cluster, [body[:40], body[-40:]])
    finally:
        sshd.stop()


# ---- signed commits ------------------------------------------------------------------------------------
def test_only_commits_signed_by_a_trusted_key_are_deployed(cluster: Cluster, repo: GitRepo, operator: Operator,
                                                           tmp_path: Path, endpoints) -> None:  # type: ignore[no-untyped-def]
    trusted = gitservers.SshKey.generate(tmp_path / "alice", "alice")
    stranger = gitservers.SshKey.generate(tmp_path / "mallory", "mallory")
    put_secret(cluster, KEYS, {"alice.pub": trusted.public.encode()})
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", sign_with=tmp_path / "alice")
    cluster.create_release(repo, source={"url": repo.url, "path": repo.manifest_path, "interval": "2s",
                                         "verify": {"mode": "head", "secretRef": {"name": KEYS}}})
    cluster.wait_serving(v1, "blue")
    assert cluster.condition("SourceVerified")["status"] == "True"

    with endpoints() as recorded:
        for key, reason in ((None, "Unsigned"), (tmp_path / "mallory", "UntrustedSigner")):
            commit = repo.release(f"registry.local/shop:{reason.lower()}", sign_with=key)
            cluster.check_now()
            wait_until(lambda r=reason: cluster.condition("SourceVerified").get("reason") == r, timeout=20,
                       what=f"SourceVerified reason {reason}")
            verified = cluster.condition("SourceVerified")
            assert verified["status"] == "False" and commit[:7] in verified["message"]
            assert cluster.events(reason), f"a Warning Event with reason {reason}"
            assert cluster.color() == "blue" and cluster.deployment("green") is None, "never deployed"
    recorded.assert_never_empty()
    assert stranger.public not in operator.text()

    v4 = repo.release("registry.local/shop:v4", sign_with=tmp_path / "alice")
    cluster.check_now()
    cluster.wait_serving(v4, "green")
    assert cluster.condition("SourceVerified")["status"] == "True"
