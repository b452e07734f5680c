"""Bad input, as it happens: a broken manifest merged to git, a spec pointing at nothing, a repository that is
down. Each time the release says why (condition, Warning Event, log line), traffic stays where it was without
a moment of downtime, nothing is written to the serving Deployment, and the next good change releases.
A spec that the schema can refuse never gets in at all."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from waiting import stays, wait_until

from conftest import GROUP, MANIFEST, PLURAL, VERSION, Cluster, GitRepo, Operator

Break = Callable[[Cluster, GitRepo, Path], dict[str, Any] | None]
"""Makes the release's input bad; returns the spec patch that restores it (None: the next commit does)."""


def manifest(image: str = "registry.local/shop:v9") -> str:
    return MANIFEST.format(name="shop", app="shop", replicas=2, image=image, delay=0)


def invalid_yaml(cluster: Cluster, repo: GitRepo, tmp: Path) -> None:
    repo.write(manifest().replace("  replicas: 2", "  replicas: [2"), message="typo")
    return None


def two_documents(cluster: Cluster, repo: GitRepo, tmp: Path) -> None:
    repo.write(manifest() + "---\n" + manifest("registry.local/shop:v10"), message="two documents")
    return None


def a_service(cluster: Cluster, repo: GitRepo, tmp: Path) -> None:
    repo.write("apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  selector: {app: shop}\n"
               "  ports: [{port: 80}]\n", message="a Service instead")
    return None


def another_namespace(cluster: Cluster, repo: GitRepo, tmp: Path) -> None:
    text = manifest().replace("  name: shop\n", "  name: shop\n  namespace: elsewhere\n", 1)
    assert "namespace: elsewhere" in text
    repo.write(text, message="move to another namespace")
    return None


def manifest_deleted(cluster: Cluster, repo: GitRepo, tmp: Path) -> None:
    repo.git("rm", "-q", repo.manifest_path)
    repo.git("commit", "-q", "-m", "remove the manifest")
    return None


def missing_branch(cluster: Cluster, repo: GitRepo, tmp: Path) -> dict[str, Any]:
    cluster.patch_release({"spec": {"source": {"ref": {"branch": "nope"}}}})
    return {"spec": {"source": {"ref": {"branch": "main"}}}}


def unknown_commit(cluster: Cluster, repo: GitRepo, tmp: Path) -> dict[str, Any]:
    cluster.patch_release({"spec": {"source": {"ref": {"branch": None, "commit": "5f" * 20}}}})
    return {"spec": {"source": {"ref": {"commit": None, "branch": "main"}}}}


def missing_repository(cluster: Cluster, repo: GitRepo, tmp: Path) -> dict[str, Any]:
    cluster.patch_release({"spec": {"source": {"url": str(tmp / "no-such-repository")}}})
    return {"spec": {"source": {"url": repo.url}}}


def server_down(cluster: Cluster, repo: GitRepo, tmp: Path) -> dict[str, Any]:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster.patch_release({"spec": {"source": {"url": f"git://127.0.0.1:{port}/deploy"}}})
    return {"spec": {"source": {"url": repo.url}}}


CASES = [
    pytest.param(invalid_yaml, "InvalidYAML", id="invalid-yaml"),
    pytest.param(two_documents, "NotOneDeployment", id="two-deployments-in-one-file"),
    pytest.param(a_service, "NotADeployment", id="a-service-not-a-deployment"),
    pytest.param(another_namespace, "WrongNamespace", id="another-namespace"),
    pytest.param(manifest_deleted, "PathNotFound", id="manifest-deleted"),
    pytest.param(missing_branch, "RefNotFound", id="missing-branch"),
    pytest.param(unknown_commit, "RefNotFound", id="unknown-commit"),
    pytest.param(missing_repository, "RepositoryUnreachable", id="missing-repository"),
    pytest.param(server_down, "RepositoryUnreachable", id="git-server-down"),
]
TRANSIENT = {"RepositoryUnreachable"}  # may cure itself: Ready=False but not Stalled


@pytest.mark.parametrize(("make_bad", "reason"), CASES)
def test_bad_input_is_reported_and_traffic_stays(make_bad: Break, reason: str, cluster: Cluster, repo: GitRepo,
                                                 operator: Operator, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", delay=0)
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    blue_ips = cluster.pod_ips("blue")
    blue_version = cluster.deployment("blue").metadata.resource_version  # type: ignore[union-attr]

    with endpoints() as recorded:
        restore = make_bad(cluster, repo, tmp_path)
        cluster.check_now()
        source = wait_until(lambda: (c := cluster.condition("SourceReady")).get("status") == "False" and c,
                            timeout=20, what=f"SourceReady=False ({reason})")
        assert source["reason"] == reason, source
        stays(lambda: cluster.color() == "blue" and cluster.deployment("green") is None, seconds=1.5,
              what="traffic on blue, nothing new applied")
    recorded.assert_never_empty()
    assert all(ips == blue_ips for _, ips in recorded.history), f"traffic moved: {recorded.distinct_sets()}"
    blue = cluster.deployment("blue")
    assert blue is not None and blue.metadata.resource_version == blue_version, "the serving Deployment is untouched"

    ready = cluster.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert "blue keeps serving" in ready["message"]
    stalled = cluster.condition("Stalled")
    assert stalled["status"] == ("False" if reason in TRANSIENT else "True"), stalled
    status = cluster.status()
    assert (status["activeColor"], status["activeRevision"]) == ("blue", v1)
    assert [e.type for e in cluster.events(reason)] == ["Warning"], "one Warning Event, not one per pass"
    logged = [r for r in operator.lines() if r.get("reason") == reason]
    assert logged, f"no log line with reason {reason}"
    assert logged[0]["level"] == "warning"
    assert (logged[0]["release"], logged[0]["namespace"]) == ("shop", cluster.namespace)
    assert "action" in logged[0]

    v2 = repo.release("registry.local/shop:v2", delay=0)
    if restore is not None:
        cluster.patch_release(restore)
    cluster.check_now()
    assert cluster.wait_serving(v2, timeout=30) == "green"
    source = cluster.condition("SourceReady")
    assert (source["status"], source["reason"]) == ("True", "Fetched")
    assert cluster.condition("Stalled")["status"] == "False"
    assert any(r.get("event") == "recovered" for r in operator.lines())


SOURCE = {"url": "/srv/git/deploy", "path": "apps/shop/deployment.yaml"}


@pytest.mark.parametrize(("spec", "field"), [
    pytest.param({"source": {**SOURCE, "ref": {"branch": "main", "tag": "v1"}}}, "spec.source.ref", id="two-refs"),
    pytest.param({"source": {**SOURCE, "interval": "30"}}, "spec.source.interval", id="interval-without-unit"),
    pytest.param({"source": SOURCE, "service": "Bad_Name"}, "spec.service", id="service-not-a-dns-name"),
])
def test_invalid_spec_is_refused_by_the_api_server(spec: dict[str, Any], field: str, cluster: Cluster,
                                                   crd: None) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": "shop"},
            "spec": {"source": SOURCE, "service": "shop", **spec}}
    with pytest.raises(ApiException) as refused:
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL, body)
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert field in message, message
    assert not cluster.custom.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL)["items"]
