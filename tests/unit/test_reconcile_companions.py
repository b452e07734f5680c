"""Reconcile passes over a source directory (Deployment, ConfigMap, HPA, PDB) against the recording cluster: the
order of the writes of an apply, a config-only commit released to the other colour at the serving colour's
count with the serving colour's copies never written, its revert a warm switch, the HPA deleted before a
scale-down and back with a cold rollback, and the copies git drops deleted."""

from __future__ import annotations

from typing import Any

from recording_cluster import Harness

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - name: web
        image: shop:1
        env: [{name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}]
"""
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {greeting: %s}\n"
HPA = """\
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, minReplicas: 2, maxReplicas: 6}
"""
PDB = """\
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: shop}}}
"""


def files(greeting: str = "hello", *, hpa: bool = True, pdb: bool = True, config: bool = True) -> dict[str, str]:
    chosen = {"deployment.yaml": DEPLOYMENT}
    if config:
        chosen["config.yaml"] = CONFIG % greeting
    if hpa:
        chosen["hpa.yaml"] = HPA
    if pdb:
        chosen["pdb.yaml"] = PDB
    return chosen


def settle(release: Harness, passes: int = 4) -> None:
    for _ in range(passes):
        release.run()
        release.cluster.roll_out()


def first_release(release: Harness, **kwargs: Any) -> str:
    sha = release.source.commit_directory(files(**kwargs), "v1")
    release.check_git_now()
    settle(release)
    assert release.cluster.status["activeColor"] == "blue"
    return sha


def commit(release: Harness, summary: str, **kwargs: Any) -> int:
    """Commit the directory, ask for a check, return the write mark before it."""
    mark = len(release.cluster.writes)
    release.source.commit_directory(files(**kwargs), summary)
    release.check_git_now()
    return mark


def test_an_apply_writes_configmaps_then_pdb_then_hpa_then_the_deployment() -> None:
    release = Harness()
    release.source.commit_directory(files(), "v1")
    release.run()
    assert release.cluster.writes[:4] == [
        ("configmap", "settings-blue"),
        ("apply-object", "PodDisruptionBudget", "web-blue"),
        ("apply-object", "HorizontalPodAutoscaler", "web-blue"),
        ("apply", "shop-blue", "01".ljust(40, "c"), 2),
    ]
    deployment = release.cluster.deployments["shop-blue"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]
    assert env["valueFrom"]["configMapKeyRef"]["name"] == "settings-blue"
    assert deployment["metadata"]["annotations"]["bluegreen.dev/autoscaler"] == "web-blue"
    assert deployment["metadata"]["annotations"]["bluegreen.dev/disruption-budget"] == "web-blue"
    assert release.cluster.config_maps["settings-blue"]["data"] == {"greeting": "hello"}
    target = release.cluster.objects[("HorizontalPodAutoscaler", "web-blue")]["spec"]["scaleTargetRef"]
    assert target["name"] == "shop-blue"


def test_a_config_only_commit_is_a_release_at_the_serving_count_and_its_revert_is_warm() -> None:
    release = Harness()
    first_release(release)
    serving = release.cluster.deployments["shop-blue"]
    serving["spec"]["replicas"] = 5  # the HPA scaled the serving colour up
    release.cluster.roll_out()
    blue_copy = dict(release.cluster.config_maps["settings-blue"])

    mark = commit(release, "config only", greeting="bonjour")
    settle(release)
    writes = release.writes_since(mark)
    assert writes[:4] == [("configmap", "settings-green"), ("apply-object", "PodDisruptionBudget", "web-green"),
                          ("apply-object", "HorizontalPodAutoscaler", "web-green"),
                          ("apply", "shop-green", "02".ljust(40, "c"), 5)], "brought up at the serving count"
    assert ("switch", "shop", "green") in writes
    assert not any(w[0] == "scale" and w[1] == "shop-blue" for w in writes), "the serving count is the HPA's"
    assert not any("blue" in str(w[1]) and w[0] in ("configmap", "apply-object") for w in writes)
    assert release.cluster.config_maps["settings-blue"] == blue_copy, "the serving colour's copy never changes"
    assert release.cluster.config_maps["settings-green"]["data"] == {"greeting": "bonjour"}

    mark = commit(release, "Revert config only", greeting="hello")
    settle(release, 2)
    assert release.writes_since(mark) == [("switch", "shop", "blue")], "a warm rollback writes one patch"
    assert release.cluster.status["history"][0]["outcome"] == "RolledBack"


def test_the_scale_down_deletes_the_hpa_first_and_a_cold_rollback_brings_it_back() -> None:
    release = Harness()
    first_release(release)
    commit(release, "v2", greeting="bonjour")
    settle(release)
    release.cluster.deployments["shop-green"]["spec"]["replicas"] = 4
    release.cluster.roll_out()
    mark = len(release.cluster.writes)
    release.wait(301)
    settle(release, 2)
    assert release.writes_since(mark)[:2] == [
        ("delete-object", "HorizontalPodAutoscaler", "web-blue"),
        ("scale", "shop-blue", 0, {"bluegreen.dev/rollout-started-at": None, "bluegreen.dev/autoscaler": None})]
    assert ("HorizontalPodAutoscaler", "web-blue") not in release.cluster.objects
    assert ("PodDisruptionBudget", "web-blue") in release.cluster.objects, "the PDB stays with the colour"

    mark = commit(release, "Revert v2", greeting="hello")
    release.run()
    hpa, scale = release.writes_since(mark)[:2]
    assert hpa == ("apply-object", "HorizontalPodAutoscaler", "web-blue")
    assert scale[:3] == ("scale", "shop-blue", 4), "at the serving colour's count"
    assert scale[3]["bluegreen.dev/autoscaler"] == "web-blue"
    settle(release)
    assert release.cluster.status["activeColor"] == "blue"


def test_an_abandoned_colour_loses_its_hpa() -> None:
    release = Harness()
    first_release(release)
    commit(release, "v2", greeting="bonjour")
    release.run()  # green applied, never becomes available
    release.wait(601)
    mark = len(release.cluster.writes)
    release.run()
    writes = release.writes_since(mark)
    assert writes[0] == ("delete-object", "HorizontalPodAutoscaler", "web-green")
    assert writes[1][:3] == ("scale", "shop-green", 0) and writes[1][3]["bluegreen.dev/autoscaler"] is None

    mark = commit(release, "the same source again", greeting="bonjour")  # a new commit retries the template
    release.run()
    hpa, scale = release.writes_since(mark)[:2]
    assert hpa == ("apply-object", "HorizontalPodAutoscaler", "web-green")
    assert scale[:3] == ("scale", "shop-green", 2) and scale[3]["bluegreen.dev/autoscaler"] == "web-green"


def test_copies_git_drops_are_deleted_when_the_colour_is_applied_again() -> None:
    release = Harness()
    first_release(release)
    commit(release, "v2", greeting="bonjour")
    settle(release)  # green serves v2 with all its copies
    release.wait(301)
    settle(release)  # blue scaled down (its HPA gone)
    mark = commit(release, "no more config, hpa, pdb", config=False, hpa=False, pdb=False)
    release.run()
    writes = release.writes_since(mark)
    assert writes[:2] == [("delete-object", "PodDisruptionBudget", "web-blue"), ("apply", "shop-blue", writes[1][2], 2)]
    assert ("scale", "shop-blue", 2, {"bluegreen.dev/disruption-budget": None}) in writes, "its annotation removed"
    assert ("delete-configmap", "settings-blue") in writes
    assert writes.index(("delete-configmap", "settings-blue")) > 1, "deleted once the Deployment no longer refers to it"
    assert "settings-green" in release.cluster.config_maps, "the serving colour's copy stays"


def test_a_stale_hpa_is_deleted_before_the_colour_is_applied() -> None:
    release = Harness()
    first_release(release)
    commit(release, "v2", greeting="bonjour")
    settle(release)  # green serves v2, blue stays warm with its HPA
    mark = commit(release, "v3 without hpa", greeting="hi", hpa=False)
    release.run()
    writes = release.writes_since(mark)
    assert ("delete-object", "HorizontalPodAutoscaler", "web-blue") in writes
    deleted = writes.index(("delete-object", "HorizontalPodAutoscaler", "web-blue"))
    applied = next(i for i, w in enumerate(writes) if w[0] == "apply")
    assert deleted < applied
    assert ("scale", "shop-blue", 2, {"bluegreen.dev/autoscaler": None}) in writes


def test_without_companions_an_apply_writes_only_the_deployment() -> None:
    release = Harness()
    release.source.commit("v1")
    release.run()
    assert [w[0] for w in release.cluster.writes] == ["apply"]
