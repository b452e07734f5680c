"""Config that travels with the colour, for real: the web app reads its version and message from a ConfigMap of
the source directory (``configMapKeyRef``) and its greeting from the same ConfigMap mounted as a file (read on
every request). A commit that changes only the ConfigMap is a blue/green release under load: zero failed
requests, the new answer from the other colour, and the serving colour's copy never changed (its
resourceVersion sampled throughout); its ``git revert`` is a warm rollback to the very pods that served. An
invalid source directory (two Deployments) is reported while the serving colour keeps serving."""

from __future__ import annotations

import json
import time
from pathlib import Path

from appbundle import DIRECTORY, PDB, autoscaler, commit_files, configured_app, directory_repo, settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from nodepods import get
from waiting import stays, wait_until
from zerodowntime import PhasedLoad, service_url, wait_answering

from conftest import MANIFEST, Cluster, EndpointsRecorder, Operator, Sampler


def _cluster_ip(cluster: Cluster) -> str:
    return str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)


def _version(cluster: Cluster, name: str) -> str | None:
    """A ConfigMap's resourceVersion (None: absent)."""
    try:
        return str(cluster.core.read_namespaced_config_map(name, cluster.namespace).metadata.resource_version)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _answer(ip: str) -> dict[str, object]:
    status, body = get(ip, "/", port=80)
    assert status == 200, body
    answer: dict[str, object] = json.loads(body)
    return answer


def test_a_config_only_commit_and_its_revert_under_load(cluster: Cluster, operator: Operator, endpoints,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    repo = directory_repo(tmp_path / "deploy")
    cluster.create_service()
    ip = _cluster_ip(cluster)
    c1 = commit_files(repo, {"deployment.yaml": configured_app(),
                             "config.yaml": settings("c1", "first config", "hello")}, "shop and its config")
    cluster.create_release(repo)  # scaleDownDelaySeconds 300: blue stays warm for the revert
    recorded: EndpointsRecorder
    with endpoints() as recorded:
        wait_answering(ip)
        with PhasedLoad(service_url(ip)) as load:
            load.phase("first release", ["c1"])
            cluster.wait_serving(c1, "blue", timeout=60)
            load.wait_more("c1", 50)
            first = _answer(ip)
            assert (first["message"], first["config"]) == ("first config", "hello")
            blue_pods = cluster.pod_ips("blue")
            blue_copy = _version(cluster, "settings-blue")
            assert blue_copy is not None and _version(cluster, "settings") is None, "only the colour's copy exists"

            with Sampler(lambda: _version(cluster, "settings-blue"), interval=0.05) as blue_versions:
                load.phase("config-only commit", ["c1", "c2"])
                c2 = commit_files(repo, {"config.yaml": settings("c2", "second config", "bonjour")},
                                  "config only: the greeting")
                asked = time.monotonic()
                cluster.check_now()
                cluster.wait_serving(c2, "green", timeout=60)
                switched = time.monotonic() - asked
                load.wait_more("c2", 100)
                second = _answer(ip)
                green_copy = _version(cluster, "settings-green")

                with Sampler(lambda: _version(cluster, "settings-green"), interval=0.05) as green_versions:
                    load.phase("git revert (warm)", ["c2", "c1"])
                    reverted = repo.revert()
                    asked = time.monotonic()
                    cluster.check_now()
                    wait_until(lambda: cluster.color() == "blue", timeout=30, interval=0.02,
                               what="the Service back on blue")
                    reverted_in = time.monotonic() - asked
                    cluster.wait_serving(reverted, "blue", timeout=30)
                    load.wait_more("c1", 100)
                    third = _answer(ip)
    load.verdict("config-per-colour")
    print(f"config-per-colour timings: config-only release {switched:.2f}s from the forced check to serving "
          f"green; warm revert {reverted_in:.2f}s from the forced check to the Service selecting blue")

    assert (second["version"], second["message"], second["config"]) == ("c2", "second config", "bonjour")
    assert str(second["pod"]).startswith("shop-green-"), second
    assert (third["message"], third["config"]) == ("first config", "hello")
    assert blue_versions.values == [blue_copy], "the serving colour's ConfigMap was never changed"
    assert green_versions.values == [green_copy], "a warm rollback writes no ConfigMap"
    assert cluster.pod_ips("blue") == blue_pods, "the warm rollback went back to the very pods that served c1"
    green = cluster.deployment("green")
    assert green is not None
    env = {e.name: e for e in green.spec.template.spec.containers[0].env}
    assert env["APP_VERSION"].value_from.config_map_key_ref.name == "settings-green"
    assert green.spec.template.spec.volumes[0].config_map.name == "settings-green"
    labels = cluster.core.read_namespaced_config_map("settings-green", cluster.namespace).metadata.labels
    assert labels == {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"}
    first_ready = next(i for i, (_, ips) in enumerate(recorded.history) if ips)
    assert all(ips for _, ips in recorded.history[first_ready:]), \
        f"no ready endpoint at some moment after the first: {recorded.distinct_sets()}"
    assert [entry["outcome"] for entry in cluster.status()["history"][:2]] == ["RolledBack", "Succeeded"]


def test_an_invalid_source_directory_is_reported_and_traffic_stays(cluster: Cluster, operator: Operator,  # type: ignore[no-untyped-def]
                                                                   endpoints, tmp_path: Path) -> None:
    repo = directory_repo(tmp_path / "deploy")
    cluster.create_service()
    deployment = MANIFEST.format(name="shop", app="shop", replicas=2, image="registry.local/shop:v1", delay=0)
    v1 = commit_files(repo, {"deployment.yaml": deployment,
                             "config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"},
                      "shop")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    blue = cluster.deployment("blue")
    assert blue is not None
    blue_version = blue.metadata.resource_version

    with endpoints() as recorded:
        broken = commit_files(repo, {"cart.yaml": deployment.replace("name: shop", "name: cart", 1)},
                              "add the cart to the shop's directory")
        cluster.check_now()
        source = wait_until(lambda: (c := cluster.condition("SourceReady")).get("status") == "False" and c,
                            timeout=20, what="SourceReady=False")
        stays(lambda: cluster.color() == "blue" and cluster.deployment("green") is None, seconds=1.5,
              what="traffic on blue, nothing new applied")
    expected = (f"commit {broken[:7]}: {DIRECTORY} holds 2 Deployments ({DIRECTORY}/cart.yaml, "
                f"{DIRECTORY}/deployment.yaml); a source holds exactly one apps/v1 Deployment")
    assert source["reason"] == "NotOneDeployment" and source["message"].startswith(expected), source
    recorded.assert_never_empty()
    blue = cluster.deployment("blue")
    assert blue is not None and blue.metadata.resource_version == blue_version, "the serving colour is untouched"
    stalled = cluster.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "NotOneDeployment")
    events = wait_until(lambda: [e for e in cluster.events("NotOneDeployment") if e.type == "Warning"], timeout=10,
                        what="a Warning Event")
    assert expected in events[0].message
    wait_until(lambda: any(line.get("reason") == "NotOneDeployment" and line.get("level") == "warning"
                           for line in operator.lines()), timeout=10, what="the operator's log line")

    commit_files(repo, {"cart.yaml": None}, "the cart gets a directory of its own")
    cluster.check_now()
    wait_until(lambda: cluster.condition("SourceReady").get("status") == "True", timeout=20,
               what="SourceReady=True again")
    assert cluster.color() == "blue" and cluster.deployment("green") is None, "the same template: nothing to do"
    copies = client.CoreV1Api(cluster.api).list_namespaced_config_map(
        cluster.namespace, label_selector="bluegreen.dev/release=shop").items
    assert [c.metadata.name for c in copies] == ["settings-blue"]


def test_deletion_policy_delete_garbage_collects_the_copies(cluster: Cluster, operator: Operator,
                                                            tmp_path: Path) -> None:
    """With ``deletionPolicy: Delete`` every copy is owned by the release, like the Deployments, and goes with it."""
    repo = directory_repo(tmp_path / "deploy")
    cluster.create_service()
    deployment = MANIFEST.format(name="shop", app="shop", replicas=2, image="registry.local/shop:v1", delay=0)
    v1 = commit_files(repo, {"deployment.yaml": deployment, "hpa.yaml": autoscaler(2, 4), "pdb.yaml": PDB,
                             "config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"},
                      "shop")
    cluster.create_release(repo, deletionPolicy="Delete")
    cluster.wait_serving(v1, "blue")
    uid = cluster.release()["metadata"]["uid"]
    copies = {("configmaps", "", "v1"): "settings-blue", ("horizontalpodautoscalers", "autoscaling", "v2beta2"):
              "shop-blue", ("poddisruptionbudgets", "policy", "v1beta1"): "shop-blue"}

    def owners(plural: str, group: str, version: str, name: str) -> list[tuple[str, str]] | None:
        try:
            if group == "":
                body = cluster.api.sanitize_for_serialization(
                    cluster.core.read_namespaced_config_map(name, cluster.namespace))
            else:
                body = cluster.custom.get_namespaced_custom_object(group, version, cluster.namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return [(o["kind"], o["uid"]) for o in body["metadata"].get("ownerReferences") or []]

    for (plural, group, version), name in copies.items():
        assert owners(plural, group, version, name) == [("BlueGreenRelease", uid)], plural
    cluster.delete_release()
    wait_until(lambda: all(owners(p, g, v, n) is None for (p, g, v), n in copies.items()), timeout=60,
               what="every copy garbage-collected with the release")
