"""The release loop as a user sees it: merge a commit, watch traffic move; git revert, watch it move back."""

from __future__ import annotations

import time

from waiting import wait_until

from conftest import Cluster, GitRepo, Operator


def test_first_release_comes_up_blue_and_takes_traffic(cluster: Cluster, repo: GitRepo, operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", replicas=3)
    cluster.create_release(repo)

    assert cluster.wait_serving(v1) == "blue"
    blue = cluster.deployment("blue")
    assert blue is not None and blue.status.ready_replicas == 3
    assert blue.metadata.labels["bluegreen.dev/release"] == "shop"
    assert blue.metadata.annotations["bluegreen.dev/commit"] == v1
    assert not blue.metadata.owner_references, "deletionPolicy Orphan: the Deployment outlives the release"
    assert cluster.selector() == {"app": "shop", "bluegreen.dev/color": "blue"}, "only the colour key is ours"
    status = cluster.status()
    assert status["phase"] == "Healthy" and status["lastAttemptedRevision"] == v1
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "Reconciling", "Stalled", "SourceReady"}
    assert status["history"][0]["revision"] == v1 and status["history"][0]["outcome"] == "Succeeded"
    assert status["history"][0]["author"] == "Dev One <dev@example.com>"
    assert cluster.events("Promote"), "the cut-over is visible as an Event"
    switch_lines = operator.actions("Switch")
    assert switch_lines and switch_lines[0]["release"] == "shop" and switch_lines[0]["commit"] == v1[:12]


def test_new_commit_cuts_over_without_a_moment_of_downtime(cluster: Cluster, repo: GitRepo, operator: Operator,
                                                           endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", replicas=3, delay=1)
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    blue_ips = {p.status.pod_ip for p in cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector="bluegreen.dev/color=blue").items}

    with endpoints() as recorded:
        v2 = repo.release("registry.local/shop:v2", replicas=3, delay=2)
        cluster.check_now()
        # While green comes up, traffic stays on blue: the switch waits for every replica.
        wait_until(lambda: (d := cluster.deployment("green")) is not None and d.status.replicas, timeout=30,
                   what="green being created")
        assert cluster.selector()["bluegreen.dev/color"] == "blue"
        assert cluster.wait_serving(v2, "green") == "green"
    recorded.assert_never_empty()
    green_ips = {p.status.pod_ip for p in cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector="bluegreen.dev/color=green").items}
    sets = recorded.distinct_sets()
    assert sets[0] == blue_ips and sets[-1] == green_ips, f"traffic went {sets}"
    assert all(s in (blue_ips, green_ips) for s in sets), "the Service never mixed colours"
    blue = cluster.deployment("blue")
    assert blue is not None and blue.spec.replicas == 3, "the previous colour stays warm"
    assert cluster.status()["idleScaleDownAt"]


def test_git_revert_switches_back_at_once_while_the_previous_colour_is_warm(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(repo.head(), "blue")
    repo.release("registry.local/shop:v2")
    cluster.check_now()
    cluster.wait_serving(repo.head(), "green")
    versions = {c: cluster.deployment(c).metadata.resource_version for c in ("blue", "green")}  # type: ignore[union-attr]

    with endpoints() as recorded:
        reverted = repo.revert()
        started = time.monotonic()
        cluster.check_now()
        cluster.wait_serving(reverted, "blue", timeout=20)
        elapsed = time.monotonic() - started
    recorded.assert_never_empty()
    after = {c: cluster.deployment(c).metadata.resource_version for c in ("blue", "green")}  # type: ignore[union-attr]
    assert after == versions, "a warm rollback writes no Deployment: it only moves the selector"
    assert elapsed < 10, f"warm rollback took {elapsed:.1f}s"
    history = cluster.status()["history"]
    assert history[0]["revision"] == reverted and history[0]["outcome"] == "RolledBack"
    assert cluster.events("Rollback")


def test_git_revert_after_scale_down_scales_up_waits_then_switches(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    repo.release("registry.local/shop:v1", replicas=2)
    cluster.create_release(repo, scaleDownDelaySeconds=1)
    cluster.wait_serving(repo.head(), "blue")
    repo.release("registry.local/shop:v2", replicas=2)
    cluster.check_now()
    cluster.wait_serving(repo.head(), "green")
    wait_until(lambda: cluster.deployment("blue").spec.replicas == 0, timeout=30,  # type: ignore[union-attr]
               what="blue scaled down after scaleDownDelaySeconds")
    assert cluster.deployment("blue") is not None, "scaled down, not deleted"

    with endpoints() as recorded:
        reverted = repo.revert()
        cluster.check_now()
        wait_until(lambda: cluster.deployment("blue").spec.replicas == 2, timeout=20,  # type: ignore[union-attr]
                   what="blue scaled back up")
        assert cluster.selector()["bluegreen.dev/color"] == "green", "no switch before blue is ready"
        cluster.wait_serving(reverted, "blue")
    recorded.assert_never_empty()
    assert cluster.status()["history"][0]["outcome"] == "RolledBack"
    wait_until(lambda: cluster.deployment("green").spec.replicas == 0, timeout=30,  # type: ignore[union-attr]
               what="green scaled down in turn")
