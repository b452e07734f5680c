"""An HPA and a PDB per colour, with the real web app under load and the real HPA and disruption controllers.

The local cluster has no metrics server: an HPA whose target's replicas lie within minReplicas..maxReplicas and
whose metrics cannot be read leaves the count alone; the test first checks that this holds on the real
controller (it reports the failed metrics and keeps the count). The serving colour is then scaled up as an HPA
would, and the operator does not scale it back; a new commit brings the idle colour up at that count from its
first apply, so the cut-over never has fewer ready pods than before; after the scale-down the old colour has no
HPA. Each colour's PDB selects exactly that colour's pods (the disruption controller counts them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appbundle import PDB as BUDGET
from appbundle import autoscaler, commit_files, directory_repo, plain_app
from kubernetes.client.exceptions import ApiException
from waiting import stays, wait_until
from zerodowntime import PhasedLoad, service_url, wait_answering

from conftest import Cluster, EndpointsRecorder, Operator

AUTOSCALING, POLICY = ("autoscaling", "v2beta2", "horizontalpodautoscalers"), ("policy", "v1beta1",
                                                                              "poddisruptionbudgets")


def _object(cluster: Cluster, kind: tuple[str, str, str], name: str) -> dict[str, Any] | None:
    group, version, plural = kind
    try:
        found: dict[str, Any] = cluster.custom.get_namespaced_custom_object(group, version, cluster.namespace, plural,
                                                                            name)
        return found
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _replicas(cluster: Cluster, color: str) -> int | None:
    deployment = cluster.deployment(color)
    return None if deployment is None else int(deployment.spec.replicas)


def _pods(cluster: Cluster, selector: dict[str, str]) -> set[str]:
    labels = ",".join(f"{k}={v}" for k, v in selector.items())
    return {p.metadata.name for p in cluster.core.list_namespaced_pod(cluster.namespace, label_selector=labels).items
            if p.metadata.deletion_timestamp is None}


def test_a_cut_over_with_an_hpa_keeps_the_scaled_up_capacity(cluster: Cluster, operator: Operator, endpoints,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    repo = directory_repo(tmp_path / "deploy")
    cluster.create_service()
    ip = str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)
    v1 = commit_files(repo, {"deployment.yaml": plain_app("v1", replicas=2), "hpa.yaml": autoscaler(2, 6),
                             "pdb.yaml": BUDGET}, "shop v1, autoscaled")
    cluster.create_release(repo, scaleDownDelaySeconds=5)
    cluster.wait_serving(v1, "blue", timeout=60)

    hpa = _object(cluster, AUTOSCALING, "shop-blue")
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "shop-blue"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    # The HPA scales as an HPA would: here, by hand, to 4 of its 2..6.
    cluster.apps.patch_namespaced_deployment_scale("shop-blue", cluster.namespace, {"spec": {"replicas": 4}})
    wait_until(lambda: len(cluster.pod_ips("blue")) == 4, timeout=60, what="blue at 4 ready pods")
    # The real HPA controller looks at it (its status shows 4 replicas and why it cannot read metrics) and leaves
    # the count alone; nor does the operator scale the serving colour back to the manifest's 2.
    looked = wait_until(lambda: (h := _object(cluster, AUTOSCALING, "shop-blue")) and
                        (h.get("status") or {}).get("currentReplicas") == 4 and (h["status"].get("conditions")) and h,
                        timeout=60, what="the HPA controller's look at blue")
    conditions = {c["type"]: c for c in looked["status"]["conditions"]}
    assert conditions["ScalingActive"]["status"] == "False", conditions
    stays(lambda: _replicas(cluster, "blue") == 4, seconds=20, interval=0.5, what="blue kept at 4 replicas")
    assert not operator.actions("Scale"), "the operator never scaled the serving colour back"
    assert _pods(cluster, _object(cluster, POLICY, "shop-blue")["spec"]["selector"]["matchLabels"]) == \
        _pods(cluster, {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "blue"})

    recorded: EndpointsRecorder
    first_replicas: list[int] = []
    with endpoints() as recorded:
        wait_answering(ip)
        with PhasedLoad(service_url(ip)) as load:
            load.phase("cut-over with an HPA", ["v1", "v2"])
            load.wait_more("v1", 40)
            v2 = commit_files(repo, {"deployment.yaml": plain_app("v2", replicas=2)}, "shop v2")
            cluster.check_now()
            first_replicas.append(wait_until(lambda: _replicas(cluster, "green"), timeout=30, interval=0.02,
                                             what="green applied"))
            cluster.wait_serving(v2, "green", timeout=90)
            load.wait_more("v2", 100)
            load.phase("scale-down of blue", ["v2"])
            wait_until(lambda: _replicas(cluster, "blue") == 0 and not cluster.pod_ips("blue"), timeout=60,
                       what="blue scaled down")
            load.wait_more("v2", 40)
    load.verdict("autoscaled")

    assert first_replicas == [4], "green was created with blue's current count, not the manifest's 2"
    apply_lines = operator.actions("Apply")
    assert any("green at 4 replicas" in line["event"] for line in apply_lines), apply_lines
    counts = [len(ips) for _, ips in recorded.history]
    print(f"autoscaled ready endpoints through the cut-over: {counts}")
    assert counts and min(counts) >= 4, f"fewer ready pods than before the cut-over: {counts}"

    assert _object(cluster, AUTOSCALING, "shop-blue") is None, "a scaled-down colour has no HPA"
    blue = cluster.deployment("blue")
    assert blue is not None and "bluegreen.dev/autoscaler" not in (blue.metadata.annotations or {})
    green_hpa = _object(cluster, AUTOSCALING, "shop-green")
    assert green_hpa is not None and green_hpa["spec"]["scaleTargetRef"]["name"] == "shop-green"
    assert _replicas(cluster, "green") == 4

    # Each colour's PDB selects exactly that colour's pods, as the disruption controller counts them.
    green_pods = _pods(cluster, {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"})
    assert len(green_pods) == 4
    budgets = {color: _object(cluster, POLICY, f"shop-{color}") for color in ("blue", "green")}
    assert all(budgets.values()), "the PDB stays while its colour exists"
    for color, budget in budgets.items():
        assert budget is not None
        assert budget["spec"]["selector"]["matchLabels"] == {"app": "shop", "bluegreen.dev/release": "shop",
                                                             "bluegreen.dev/color": color}
    wait_until(lambda: ((_object(cluster, POLICY, "shop-green") or {}).get("status") or {}).get("expectedPods") == 4
               and ((_object(cluster, POLICY, "shop-blue") or {}).get("status") or {}).get("expectedPods", 0) == 0,
               timeout=60, what="the disruption controller counting 4 green pods and no blue one")
    assert _pods(cluster, budgets["green"]["spec"]["selector"]["matchLabels"]) == green_pods  # type: ignore[index]
