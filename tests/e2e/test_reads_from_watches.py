"""Passes plan from the in-memory view the watches feed: an idle release costs no API request (counted by the
API server's audit log), a restarted operator plans from a fully listed view, and writes stay safe when the
view is stale or a foreign Deployment is in the way."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from waiting import wait_until

from bluegreen.core.errors import ClusterError
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.kube.client import RequestTimeouts, TimedApiClient
from bluegreen.kube.cluster import ClusterView, KubeCluster
from conftest import Cluster, GitRepo, Operator

WRITES = ("create", "patch", "update", "delete")


def audit_log() -> Path:
    """The local control plane's audit log (tests/cluster/controlplane.py)."""
    cache = Path(os.environ.get("BLUEGREEN_CACHE", Path.home() / ".cache" / "bluegreen"))
    return Path(os.environ.get("BLUEGREEN_CLUSTER_DIR", cache / "cluster")) / "logs" / "audit.log"


def operator_requests(namespace: str, since: datetime, until: datetime | None = None) -> list[tuple[str, str, str]]:
    """(verb, resource, name) of each completed request of the operator's ServiceAccount in the window, watches
    excepted (a watch is logged only when it ends)."""
    user = f"system:serviceaccount:{namespace}:bluegreen-operator"
    found = []
    for line in audit_log().read_text().splitlines():
        entry = json.loads(line)
        if entry.get("stage") != "ResponseComplete" or entry["user"]["username"] != user:
            continue
        at = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if at < since or (until is not None and at >= until) or entry["verb"] == "watch":
            continue
        ref = entry.get("objectRef") or {}
        found.append((entry["verb"], ref.get("resource", entry["requestURI"]), ref.get("name", "")))
    return found


def require_audit_log() -> None:
    if not audit_log().exists():
        pytest.fail(f"no audit log at {audit_log()}: the local control plane writes one (audit-policy.yaml)")


def test_an_idle_release_makes_no_api_request(cluster: Cluster, repo: GitRepo, operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)  # interval 2s: a pass every 2 s
    cluster.wait_serving(v1, "blue")
    require_audit_log()
    time.sleep(3)  # the last status patch and Events of the release settle
    start = datetime.now(UTC)
    for i in range(5):  # events that each queue a pass: the user labels the Service and the Deployment (a label,
        # unlike an annotation, does not bump a Deployment's generation, which would make it briefly not rolled out)
        touch = {"metadata": {"labels": {"touch": str(i)}}}
        cluster.core.patch_namespaced_service("shop", cluster.namespace, touch)
        cluster.apps.patch_namespaced_deployment("shop-blue", cluster.namespace, touch)
        time.sleep(3)
    end = datetime.now(UTC)
    assert operator.process is not None and operator.process.poll() is None
    made = operator_requests(cluster.namespace, start, end)
    assert not [r for r in made if r[0] == "get"], f"an idle release read the API: {made}"
    assert not [r for r in made if r[0] in WRITES], f"an idle release wrote: {made}"
    assert cluster.status()["phase"] == "Healthy"


def test_a_restarted_operator_plans_from_the_fully_listed_view(cluster: Cluster, repo: GitRepo,
                                                               operator: Operator) -> None:
    for i in range(40):  # more to list before the view is complete
        cluster.create_service(f"other-{i}")
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    blue = cluster.deployment("blue")
    assert blue is not None
    service_version = cluster.core.read_namespaced_service("shop", cluster.namespace).metadata.resource_version
    operator.stop()
    restarted_at = datetime.now(UTC)
    operator.start()
    wait_until(lambda: operator.text().count('"operator started"') == 2, timeout=20, what="the second start")
    time.sleep(4)  # the first passes of the new process (a git look every 2 s)

    lines = operator.lines()
    starts = [i for i, r in enumerate(lines) if r.get("event") == "operator started"]
    actions = [r for r in lines[starts[1]:] if r.get("action") not in (None, "None", "Wait")]
    assert actions == [], "the restarted operator saw blue and the selector as they are"
    after = cluster.deployment("blue")
    assert after is not None and after.metadata.resource_version == blue.metadata.resource_version
    assert cluster.core.read_namespaced_service("shop", cluster.namespace).metadata.resource_version == \
        service_version
    if audit_log().exists():
        made = operator_requests(cluster.namespace, restarted_at)
        reads_or_writes = [r for r in made if r[1] in ("deployments", "services") and r[0] != "list"]
        assert not reads_or_writes, f"the restarted operator read or wrote workloads one by one: {made}"


def test_a_foreign_deployment_in_the_way_is_never_taken_over(cluster: Cluster, repo: GitRepo,
                                                             operator: Operator) -> None:
    cluster.create_service()
    foreign = {"metadata": {"name": "shop-green", "labels": {"app": "legacy"}},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "legacy"}},
                        "template": {"metadata": {"labels": {"app": "legacy"}},
                                     "spec": {"containers": [{"name": "web", "image": "registry.local/legacy:v0"}]}}}}
    cluster.apps.create_namespaced_deployment(cluster.namespace, foreign)
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")  # green is not needed yet: the name next to ours does not block

    v2 = repo.release("registry.local/shop:v2")
    cluster.check_now()
    stalled = wait_until(lambda: (c := cluster.condition("Stalled")).get("reason") == "DeploymentConflict" and c,
                         timeout=20, what="the release stalled by the foreign Deployment")
    assert stalled["status"] == "True" and "shop-green" in stalled["message"]
    assert cluster.events("DeploymentConflict"), "a Warning Event says so"
    legacy = cluster.deployment("green")
    assert legacy is not None and legacy.metadata.generation == 1
    assert "bluegreen.dev/release" not in (legacy.metadata.labels or {})
    assert legacy.spec.template.spec.containers[0].image == "registry.local/legacy:v0"
    assert cluster.color() == "blue" and cluster.status()["activeRevision"] == v1

    cluster.apps.delete_namespaced_deployment("shop-green", cluster.namespace)
    wait_until(lambda: cluster.deployment("green") is None, timeout=20, what="the foreign Deployment gone")
    cluster.check_now()
    cluster.wait_serving(v2, "green", timeout=40)


# ---- the write path against the real API server, with a view that is stale on purpose ----------------
def deployment(name: str, labels: dict[str, str], image: str = "registry.local/shop:v1") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"bluegreen.dev/template-hash": image[-2:]}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


@pytest.fixture
def kube(kube_client: client.ApiClient) -> KubeCluster:
    return KubeCluster(TimedApiClient(kube_client.configuration, RequestTimeouts()), ClusterView())


def test_writes_feed_the_view_and_a_stale_view_never_overwrites_a_replacement(
        kube: KubeCluster, cluster: Cluster) -> None:
    ns = cluster.namespace
    release = ReleaseRef(ns, "shop", "u")
    ours = {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "blue"}
    body = deployment("shop-blue", ours)
    body["metadata"]["namespace"] = ns

    kube.apply_deployment(body)  # nothing in the view: checked once, then created
    state = kube.color_state(release, Color.BLUE)
    assert state.exists and state.template_hash == "v1", "the response is in the view at once"
    kube.scale(release, Color.BLUE, 2, {"bluegreen.dev/note": "x"})
    assert kube.color_state(release, Color.BLUE).replicas == 2
    cluster.create_service()
    assert not kube.service_state(ns, "shop").exists  # no watch feeds this view
    kube.switch_selector(ns, "shop", Color.GREEN)
    assert kube.service_state(ns, "shop").color is Color.GREEN

    # Behind the view's back: ours is deleted and a foreign Deployment takes its name.
    cluster.apps.delete_namespaced_deployment("shop-blue", ns, propagation_policy="Background")
    wait_until(lambda: cluster.deployment("blue") is None, timeout=20, what="shop-blue deleted")
    cluster.apps.create_namespaced_deployment(ns, deployment("shop-blue", {"app": "legacy"}, "registry.local/x:v0"))
    assert kube.color_state(release, Color.BLUE).exists, "the view has not seen it (no watch feeds it here)"
    with pytest.raises(ApiException):
        kube.scale(release, Color.BLUE, 0, {})  # the uid the view knows is the precondition
    with pytest.raises(ApiException):
        kube.apply_deployment(body)
    legacy = cluster.deployment("blue")
    assert legacy is not None and legacy.spec.replicas == 1 and legacy.metadata.generation == 1
    assert "bluegreen.dev/release" not in (legacy.metadata.labels or {})

    # The watch catches up (the DELETED event): the next plan applies, and the foreign one is refused.
    kube.view.deployment_gone({"metadata": {"name": "shop-blue", "namespace": ns, "resourceVersion": ""}})
    assert not kube.color_state(release, Color.BLUE).exists
    with pytest.raises(ClusterError) as raised:
        kube.apply_deployment(body)
    assert raised.value.reason == "DeploymentConflict"
    legacy_after = cluster.deployment("blue")
    assert legacy_after is not None and legacy_after.metadata.generation == 1  # its spec never changed
    assert legacy_after.spec.template.spec.containers[0].image == "registry.local/x:v0"
