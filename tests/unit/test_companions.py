"""What travels with a colour (core/companions.py, render_deployment): the colour's Deployment refers to its own
ConfigMap copies in all four places, in containers and init containers, and leaves foreign ConfigMaps and Secrets
alone; the copies, the HPA and the PDB as rendered for one colour."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_bundle import CONFIG, DEPLOYMENT, HPA, PDB, directory, parse_dir

from bluegreen.core.companions import (
    copy_name,
    render_autoscaler,
    render_config_map,
    render_disruption_budget,
    rewrite_config_refs,
)
from bluegreen.core.desired import owner_reference, render_deployment
from bluegreen.core.spec import Color

POD_SPEC: dict[str, Any] = {
    "volumes": [
        {"name": "conf", "configMap": {"name": "settings", "items": [{"key": "GREETING", "path": "greeting"}]}},
        {"name": "shared", "configMap": {"name": "shared-ca"}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "settings"}}, {"configMap": {"name": "shared-ca"}},
            {"secret": {"name": "settings"}}, {"downwardAPI": {"items": []}}]}},
        {"name": "creds", "secret": {"secretName": "settings"}},
        {"name": "scratch", "emptyDir": {}},
    ],
    "initContainers": [{"name": "init", "image": "i", "envFrom": [{"configMapRef": {"name": "settings"}}],
                        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "features", "key": "a"}}}]}],
    "containers": [{"name": "web", "image": "w",
                    "envFrom": [{"configMapRef": {"name": "features"}}, {"secretRef": {"name": "settings"}},
                                {"configMapRef": {"name": "shared-ca"}, "prefix": "CA_"}],
                    "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "b"}}},
                            {"name": "C", "valueFrom": {"secretKeyRef": {"name": "settings", "key": "c"}}},
                            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "shared-ca", "key": "d"}}},
                            {"name": "E", "value": "settings"}]}],
}


def rewritten(color: Color = Color.GREEN) -> dict[str, Any]:
    spec = copy.deepcopy(POD_SPEC)
    rewrite_config_refs(spec, ["settings", "features"], color)
    return spec


def test_every_kind_of_reference_to_a_source_configmap_names_the_colours_copy() -> None:
    spec = rewritten()
    assert spec["volumes"][0]["configMap"] == {"name": "settings-green",
                                               "items": [{"key": "GREETING", "path": "greeting"}]}
    assert spec["volumes"][2]["projected"]["sources"][0] == {"configMap": {"name": "settings-green"}}
    init, web = spec["initContainers"][0], spec["containers"][0]
    assert init["envFrom"] == [{"configMapRef": {"name": "settings-green"}}]
    assert init["env"][0]["valueFrom"]["configMapKeyRef"] == {"name": "features-green", "key": "a"}
    assert web["envFrom"][0] == {"configMapRef": {"name": "features-green"}}
    assert web["env"][0]["valueFrom"]["configMapKeyRef"] == {"name": "settings-green", "key": "b"}


def test_foreign_configmaps_secrets_and_plain_values_are_left_alone() -> None:
    spec = rewritten()
    assert spec["volumes"][1] == POD_SPEC["volumes"][1], "shared-ca is not in the source: the user's own"
    assert spec["volumes"][2]["projected"]["sources"][1:] == POD_SPEC["volumes"][2]["projected"]["sources"][1:]
    assert spec["volumes"][3:] == POD_SPEC["volumes"][3:], "a Secret named like a ConfigMap is a Secret"
    web, original = spec["containers"][0], POD_SPEC["containers"][0]
    assert web["envFrom"][1:] == original["envFrom"][1:]
    assert web["env"][1:] == original["env"][1:]


def test_blue_gets_blue_copies() -> None:
    assert rewritten(Color.BLUE)["volumes"][0]["configMap"]["name"] == "settings-blue"


def test_no_source_configmap_changes_nothing() -> None:
    spec = copy.deepcopy(POD_SPEC)
    rewrite_config_refs(spec, [], Color.GREEN)
    assert spec == POD_SPEC


def test_odd_shapes_are_skipped_not_crashed_on() -> None:
    spec: dict[str, Any] = {"volumes": ["x", {"projected": ["y"]}, {"configMap": "settings"}],
                            "containers": ["z", {"env": ["w", {"valueFrom": "v"}], "envFrom": ["u"]}]}
    before = copy.deepcopy(spec)
    rewrite_config_refs(spec, ["settings"], Color.GREEN)
    assert spec == before


BUNDLE = parse_dir(directory(deployment_yaml=DEPLOYMENT, config_yaml=CONFIG, hpa_yaml=HPA, pdb_yaml=PDB))
OWNER = owner_reference("shop", "uid-1")
COMMIT = "c" * 40


def test_the_colour_deployment_refers_to_its_copies_and_names_its_hpa_and_pdb() -> None:
    before = copy.deepcopy(BUNDLE.spec)
    body = render_deployment(BUNDLE, release="shop", namespace="shop", color=Color.GREEN, commit=COMMIT, replicas=4,
                             owner=None)
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "settings-green"}}]
    annotations = body["metadata"]["annotations"]
    assert annotations["bluegreen.dev/autoscaler"] == "web-green"
    assert annotations["bluegreen.dev/disruption-budget"] == "web-green"
    assert BUNDLE.spec == before, "rendering does not touch the template"


def test_a_deployment_without_companions_carries_no_companion_annotations() -> None:
    plain = parse_dir(directory(deployment_yaml=DEPLOYMENT))
    body = render_deployment(plain, release="shop", namespace="shop", color=Color.BLUE, commit=COMMIT, replicas=1,
                             owner=None)
    assert not {"bluegreen.dev/autoscaler", "bluegreen.dev/disruption-budget"} & set(body["metadata"]["annotations"])
    assert body["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"configMapRef": {"name": "settings"}}]


@pytest.mark.parametrize("owner", [None, OWNER], ids=["orphan", "owned"])
def test_a_configmap_copy(owner: dict[str, Any] | None) -> None:
    body = render_config_map(BUNDLE.config_maps[0], release="shop", namespace="shop", color=Color.BLUE,
                             commit=COMMIT, owner=owner)
    expected: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings-blue", "namespace": "shop",
                     "labels": {"team": "web", "bluegreen.dev/release": "shop", "bluegreen.dev/color": "blue"},
                     "annotations": {"bluegreen.dev/commit": COMMIT}},
        "data": {"GREETING": "hello"}}
    if owner is not None:
        expected["metadata"]["ownerReferences"] = [OWNER]
    assert body == expected


def test_binary_data_is_copied_and_empty_data_left_out() -> None:
    binary = parse_dir(directory(deployment_yaml=DEPLOYMENT, c_yaml=CONFIG.replace(
        "data: {GREETING: hello}", "binaryData: {logo: aGk=}")))
    body = render_config_map(binary.config_maps[0], release="shop", namespace="shop", color=Color.GREEN,
                             commit=COMMIT, owner=None)
    assert body["binaryData"] == {"logo": "aGk="} and "data" not in body


def test_the_hpa_copy_scales_the_colours_deployment() -> None:
    assert BUNDLE.autoscaler is not None
    body = render_autoscaler(BUNDLE.autoscaler, release="shop", namespace="shop", color=Color.GREEN, commit=COMMIT,
                             owner=OWNER)
    assert body["apiVersion"] == "autoscaling/v2beta2" and body["kind"] == "HorizontalPodAutoscaler"
    assert body["metadata"]["name"] == "web-green" and body["metadata"]["ownerReferences"] == [OWNER]
    assert body["metadata"]["labels"] == {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"}
    assert body["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-green"}
    assert (body["spec"]["minReplicas"], body["spec"]["maxReplicas"]) == (2, 8)
    assert body["spec"]["metrics"] == BUNDLE.autoscaler.spec["metrics"]
    assert BUNDLE.autoscaler.spec["scaleTargetRef"]["name"] == "web", "the template is not touched"


def test_the_pdb_copy_selects_only_that_colours_pods() -> None:
    assert BUNDLE.disruption_budget is not None
    body = render_disruption_budget(BUNDLE.disruption_budget, release="shop", namespace="shop", color=Color.BLUE,
                                    commit=COMMIT, owner=None)
    assert body["metadata"]["name"] == "web-blue" and body["apiVersion"] == "policy/v1beta1"
    assert body["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {
        "app": "shop", "bluegreen.dev/release": "shop", "bluegreen.dev/color": "blue"}}}
    assert BUNDLE.disruption_budget.spec["selector"] == {"matchLabels": {"app": "shop"}}


def test_a_pdb_by_expressions_gets_the_colour_labels_too() -> None:
    pdb = parse_dir(directory(deployment_yaml=DEPLOYMENT, p_yaml=PDB.replace(
        "selector: {matchLabels: {app: shop}}", "selector: {matchExpressions: [{key: app, operator: Exists}]}")))
    assert pdb.disruption_budget is not None
    body = render_disruption_budget(pdb.disruption_budget, release="shop", namespace="shop", color=Color.GREEN,
                                    commit=COMMIT, owner=None)
    ours = {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"}
    assert body["spec"]["selector"] == {"matchExpressions": [{"key": "app", "operator": "Exists"}], "matchLabels": ours}


def test_copy_name() -> None:
    assert copy_name("settings", Color.BLUE) == "settings-blue"
    assert copy_name("settings", Color.GREEN) == "settings-green"


def test_an_odd_entry_does_not_stop_the_rewriting_of_the_next_ones() -> None:
    spec: dict[str, Any] = {"volumes": ["x", {"name": "c", "configMap": {"name": "settings"}}],
                            "containers": ["z", {"envFrom": [{"configMapRef": {"name": "settings"}}]}]}
    rewrite_config_refs(spec, ["settings"], Color.BLUE)
    assert spec["volumes"][1]["configMap"]["name"] == "settings-blue"
    assert spec["containers"][1]["envFrom"][0]["configMapRef"]["name"] == "settings-blue"


LABELLED = parse_dir(directory(
    deployment_yaml=DEPLOYMENT,
    hpa_yaml=HPA.replace("metadata: {name: web}", "metadata: {name: web, labels: {tier: web}, annotations: {a: b}}"),
    pdb_yaml=PDB.replace("metadata: {name: web}", "metadata: {name: web, labels: {tier: db}, annotations: {c: d}}")))


@pytest.mark.parametrize(("render", "part", "labels", "annotations"), [
    pytest.param(render_autoscaler, "autoscaler", {"tier": "web"}, {"a": "b"}, id="hpa"),
    pytest.param(render_disruption_budget, "disruption_budget", {"tier": "db"}, {"c": "d"}, id="pdb"),
])
def test_the_hpa_and_pdb_copies_keep_their_metadata(render: Any, part: str, labels: dict[str, str],
                                                   annotations: dict[str, str]) -> None:
    body = render(getattr(LABELLED, part), release="shop", namespace="shop", color=Color.GREEN, commit=COMMIT,
                  owner=OWNER)
    assert body["metadata"] == {
        "name": "web-green", "namespace": "shop",
        "labels": {**labels, "bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"},
        "annotations": {**annotations, "bluegreen.dev/commit": COMMIT}, "ownerReferences": [OWNER]}


def test_the_hash_covers_the_hpa_and_pdb_metadata() -> None:
    assert LABELLED.template_hash != parse_dir(directory(deployment_yaml=DEPLOYMENT, hpa_yaml=HPA,
                                                         pdb_yaml=PDB)).template_hash
