"""What goes wrong in real life: a release that never becomes ready, a commit that lands while another is
rolling out, the operator killed mid-release, a hand-edited Service selector, a release frozen on purpose.
In every case traffic stays on pods that are ready, and the user can see why."""

from __future__ import annotations

import time

from waiting import stays, wait_until

from conftest import Cluster, GitRepo, Operator, Sampler


def test_never_ready_release_is_abandoned_and_the_next_commit_succeeds(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo, progressDeadlineSeconds=6)
    cluster.wait_serving(v1, "blue")
    blue_ips = cluster.pod_ips("blue")
    assert len(blue_ips) == 2

    with endpoints() as recorded:
        v2 = repo.release("registry.local/shop:v2-never-ready")
        cluster.check_now()
        wait_until(lambda: (d := cluster.deployment("green")) is not None and d.status.replicas == 2, timeout=20,
                   what="green brought up for the never-ready commit")
        # Green runs but never becomes ready: traffic stays on blue until the deadline, and after it.
        stalled = wait_until(lambda: (c := cluster.condition("Stalled")).get("status") == "True" and c, timeout=20,
                             what="Stalled=True after progressDeadlineSeconds")
        assert cluster.color() == "blue"
    recorded.assert_never_empty()
    assert all(ips == blue_ips for _, ips in recorded.history), f"traffic left blue: {recorded.distinct_sets()}"

    assert stalled["reason"] == "ProgressDeadlineExceeded"
    assert v2[:12] in stalled["message"]
    assert cluster.condition("Ready")["status"] == "False"
    warnings = [e for e in cluster.events("ProgressDeadlineExceeded") if e.type == "Warning"]
    assert warnings, "the abandoned release is visible as a Warning Event"
    green = cluster.deployment("green")
    assert green is not None and green.spec.replicas == 0, "the abandoned colour is scaled to 0"
    assert green.metadata.annotations["bluegreen.dev/failed-commit"] == v2
    assert green.metadata.annotations["bluegreen.dev/failed-reason"] == "ProgressDeadlineExceeded"
    history = cluster.status()["history"]
    assert (history[0]["revision"], history[0]["outcome"]) == (v2, "Abandoned")
    assert history[0]["finishedAt"]
    abandon = operator.actions("Abandon")
    assert len(abandon) == 1 and abandon[0]["release"] == "shop" and abandon[0]["color"] == "green"
    assert abandon[0]["reason"] == "ProgressDeadlineExceeded" and abandon[0]["commit"] == v2[:12]
    # The abandoned commit is not retried on later checks.
    cluster.check_now()
    stays(lambda: (d := cluster.deployment("green")) is not None and d.spec.replicas == 0
          and cluster.color() == "blue", seconds=2, what="the abandoned commit stays abandoned")

    v3 = repo.release("registry.local/shop:v3")
    cluster.check_now()
    assert cluster.wait_serving(v3, timeout=30) == "green"
    green = cluster.deployment("green")
    assert green is not None and green.status.ready_replicas == 2
    assert "bluegreen.dev/failed-commit" not in (green.metadata.annotations or {})
    assert cluster.condition("Stalled")["status"] == "False"
    history = cluster.status()["history"]
    assert [(h["revision"], h["outcome"]) for h in history] == [(v3, "Succeeded"), (v2, "Abandoned"),
                                                                (v1, "Succeeded")]


def test_a_newer_commit_supersedes_a_release_under_way(cluster: Cluster, repo: GitRepo, operator: Operator,
                                                       endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")

    def seen() -> tuple[str | None, str | None]:
        green = cluster.deployment("green")  # read before the selector: a switch can only follow this read
        commit = green.metadata.annotations.get("bluegreen.dev/commit") if green is not None else None
        return cluster.color(), commit

    with endpoints() as recorded, Sampler(seen) as samples:
        v2 = repo.release("registry.local/shop:v2", delay=8)
        cluster.check_now()
        wait_until(lambda: (d := cluster.deployment("green")) is not None and d.status.replicas == 2
                   and d.metadata.annotations["bluegreen.dev/commit"] == v2, timeout=20,
                   what="green rolling out v2")
        assert cluster.deployment("green").status.ready_replicas in (None, 0)  # type: ignore[union-attr]
        v3 = repo.release("registry.local/shop:v3", delay=1)
        cluster.check_now()
        assert cluster.wait_serving(v3, timeout=30) == "green"
    recorded.assert_never_empty()

    assert ("blue", v2) in samples.values, f"v2 was never seen rolling out on green: {samples.values}"
    assert ("green", v2) not in samples.values, f"v2 served traffic: {samples.values}"
    assert samples.values[-1] == ("green", v3)
    history = cluster.status()["history"]
    assert [(h["revision"], h["outcome"]) for h in history] == [(v3, "Succeeded"), (v2, "Superseded"),
                                                                (v1, "Succeeded")]
    switches = [(r["color"], r["commit"]) for r in operator.actions("Switch")]
    assert switches == [("blue", v1[:12]), ("green", v3[:12])]
    green = cluster.deployment("green")
    assert green is not None and green.spec.template.spec.containers[0].image == "registry.local/shop:v3"


def test_operator_killed_mid_release_resumes_without_repeating_work(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints) -> None:  # type: ignore[no-untyped-def]
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")

    with endpoints() as recorded:
        v2 = repo.release("registry.local/shop:v2", delay=4)
        cluster.check_now()
        wait_until(lambda: (d := cluster.deployment("green")) is not None and d.status.replicas == 2, timeout=20,
                   what="green being brought up")
        assert cluster.color() == "blue"
        green = cluster.deployment("green")
        assert green is not None and not green.status.ready_replicas, "the kill must happen before the switch"
        operator.kill()
        assert cluster.color() == "blue"
        operator.start()
        assert cluster.wait_serving(v2, timeout=30) == "green"
    recorded.assert_never_empty()

    assert operator.text().count('"operator started"') == 2, "the log holds both runs"
    to_green = [r for r in operator.actions("Switch") if r["color"] == "green"]
    assert len(to_green) == 1, f"one switch to green across both runs: {to_green}"
    applied = [r for r in operator.actions("Apply") if r["color"] == "green"]
    assert len(applied) == 1, f"the restarted operator adopts green as it is, it does not re-apply it: {applied}"
    history = cluster.status()["history"]
    assert [(h["revision"], h["outcome"]) for h in history] == [(v2, "Succeeded"), (v1, "Succeeded")]


def test_hand_edited_selector_is_put_back(cluster: Cluster, repo: GitRepo, operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    history = cluster.status()["history"]

    for edit in ("green", None):
        started = time.monotonic()
        cluster.set_selector_color(edit)
        wait_until(lambda: cluster.color() == "blue", timeout=10, what=f"selector restored after setting {edit}")
        assert time.monotonic() - started < 5, "a selector edit is seen through the Service watch, not the interval"
        assert cluster.selector() == {"app": "shop", "bluegreen.dev/color": "blue"}
    drift = [r for r in operator.actions("Switch") if r["reason"] == "SelectorDrift"]
    assert len(drift) == 2 and all(r["color"] == "blue" and r["release"] == "shop" for r in drift)
    assert len(cluster.events("SelectorDrift")) == 2
    cluster.wait_serving(v1, "blue")
    assert cluster.status()["history"] == history, "putting the selector back is not a new release"

    # The edit that matters most: traffic moved by hand to the previous release, which is still warm.
    v2 = repo.release("registry.local/shop:v2")
    cluster.check_now()
    cluster.wait_serving(v2, "green")
    before = cluster.status()
    cluster.set_selector_color("blue")
    wait_until(lambda: cluster.color() == "green", timeout=5, what="selector moved back to green")
    cluster.wait_serving(v2, "green")
    after = cluster.status()
    assert after["history"] == before["history"]
    assert after["idleScaleDownAt"] == before["idleScaleDownAt"], "the warm colour's scale-down time is kept"
    assert len(cluster.events("SelectorDrift")) == 3


def test_suspended_release_ignores_new_commits_until_resumed(cluster: Cluster, repo: GitRepo,
                                                             operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")

    cluster.patch_release({"spec": {"suspend": True}})
    wait_until(lambda: cluster.status().get("phase") == "Suspended", timeout=10, what="phase Suspended")
    v2 = repo.release("registry.local/shop:v2")
    cluster.check_now()
    stays(lambda: cluster.deployment("green") is None and cluster.color() == "blue"
          and cluster.status().get("phase") == "Suspended", seconds=5, what="a suspended release stays as it is")
    assert cluster.status()["activeRevision"] == v1
    assert cluster.condition("Ready")["reason"] == "Suspended"

    cluster.patch_release({"spec": {"suspend": False}})
    assert cluster.wait_serving(v2, timeout=30) == "green"
