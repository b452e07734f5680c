"""A release's life around the cut-over: the preview Service, deleting the release (Orphan and Delete), and a
replica-only change in git, which is not a new release."""

from __future__ import annotations

from waiting import stays, wait_until

from conftest import GROUP, PLURAL, VERSION, Cluster, GitRepo, Operator, Sampler


def test_preview_service_shows_the_colour_being_released_then_the_idle_one(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    cluster.create_service("shop-preview")
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo, previewService="shop-preview")
    cluster.wait_serving(v1, "blue")
    wait_until(lambda: cluster.color("shop-preview") == "green", timeout=10, what="preview on the idle colour")
    assert cluster.selector("shop-preview") == {"app": "shop", "bluegreen.dev/color": "green"}

    with endpoints() as recorded, endpoints("shop-preview") as previewed, \
            Sampler(lambda: (cluster.color(), cluster.color("shop-preview"))) as colours:
        v2 = repo.release("registry.local/shop:v2", delay=3)
        cluster.check_now()
        wait_until(lambda: (d := cluster.deployment("green")) is not None and d.status.replicas == 2, timeout=20,
                   what="green being brought up")
        assert (cluster.color(), cluster.color("shop-preview")) == ("blue", "green")
        cluster.wait_serving(v2, "green", timeout=30)
        wait_until(lambda: cluster.color("shop-preview") == "blue", timeout=10, what="preview on blue after switch")
    recorded.assert_never_empty()
    # (main, preview): the preview shows green, the colour being released, until the main Service moves there.
    assert colours.values in ([("blue", "green"), ("green", "blue")],
                              [("blue", "green"), ("green", "green"), ("green", "blue")]), colours.values
    green_ips = cluster.pod_ips("green")
    preview_first = min(t for t, ips in previewed.history if ips and ips <= green_ips)
    main_first = min(t for t, ips in recorded.history if ips & green_ips)
    assert preview_first < main_first, "green's pods were reachable through the preview before taking traffic"
    assert previewed.current() == cluster.pod_ips("blue"), "after the switch the preview shows the idle blue"
    assert cluster.status()["previewColor"] == "blue"
    assert [r["color"] for r in operator.actions("SwitchPreview")] == ["blue", "green", "blue"]


def test_deleting_a_release_orphans_its_deployments_and_traffic_keeps_flowing(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(repo.head(), "blue")
    v2 = repo.release("registry.local/shop:v2")
    cluster.check_now()
    cluster.wait_serving(v2, "green")
    before = {c: cluster.deployment(c).metadata.resource_version for c in ("blue", "green")}  # type: ignore[union-attr]

    with endpoints() as recorded:
        cluster.delete_release()
        wait_until(lambda: not cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL)["items"], timeout=10,
            what="the release gone (no finalizer holds it)")
        # Garbage collection is asynchronous: give it time to (wrongly) act.
        stays(lambda: all(cluster.deployment(c) is not None for c in ("blue", "green"))
              and cluster.color() == "green", seconds=4, what="both colours and the selector left as they were")
    recorded.assert_never_empty()
    assert recorded.current() == cluster.pod_ips("green")
    after = {c: cluster.deployment(c).metadata.resource_version for c in ("blue", "green")}  # type: ignore[union-attr]
    assert after == before, "deleting the release writes nothing to its Deployments"
    assert cluster.selector() == {"app": "shop", "bluegreen.dev/color": "green"}


def test_deletion_policy_delete_garbage_collects_the_deployments(cluster: Cluster, repo: GitRepo,
                                                                 operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo, deletionPolicy="Delete")
    cluster.wait_serving(v1, "blue")
    v2 = repo.release("registry.local/shop:v2")
    cluster.check_now()
    cluster.wait_serving(v2, "green")
    uid = cluster.release()["metadata"]["uid"]
    for colour in ("blue", "green"):
        owners = cluster.deployment(colour).metadata.owner_references  # type: ignore[union-attr]
        assert [(o.kind, o.name, o.uid, o.controller) for o in owners] == [("BlueGreenRelease", "shop", uid, True)]

    cluster.delete_release()
    wait_until(lambda: cluster.deployment("blue") is None and cluster.deployment("green") is None, timeout=30,
               what="both colour Deployments garbage-collected")
    wait_until(lambda: not cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector="bluegreen.dev/release=shop").items, timeout=30, what="their pods gone")
    assert cluster.core.read_namespaced_service("shop", cluster.namespace), "the Service is the user's: it stays"


def test_replica_change_in_git_scales_the_serving_colour_in_place(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", replicas=2)
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    history = cluster.status()["history"]

    with endpoints() as recorded:
        v2 = repo.release("registry.local/shop:v1", replicas=4, message="scale to 4")
        cluster.check_now()
        wait_until(lambda: (d := cluster.deployment("blue")) is not None and d.spec.replicas == 4
                   and d.status.ready_replicas == 4, timeout=20, what="blue scaled to 4 ready replicas")
        cluster.wait_serving(v2, "blue")
    recorded.assert_never_empty()
    assert len(recorded.current()) == 4, recorded.distinct_sets()
    assert all(len(ips) >= 2 for _, ips in recorded.history)
    assert cluster.deployment("green") is None, "a replica change is not a new release"
    assert cluster.color() == "blue"
    blue = cluster.deployment("blue")
    assert blue is not None and blue.metadata.annotations["bluegreen.dev/commit"] == v1, \
        "the pods run what they ran: the template did not change"
    scaled = operator.actions("Scale")
    assert [(r["color"], r["reason"]) for r in scaled] == [("blue", "ReplicasChanged")]
    assert len(operator.actions("Switch")) == 1, "no cut-over after the first release"
    assert cluster.status()["history"] == history
