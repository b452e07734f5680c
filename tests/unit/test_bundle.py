"""A release's source as a bundle (core/bundle.py): what a directory (or a multi-document file) may hold, every
refusal word for word (it names the file and the document, and says what to fix), the template hash over the
ConfigMaps, the HPA and the PDB, and a single-document file read exactly as before."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from test_planner import NOW

from bluegreen.core.bundle import parse_bundle, parse_source
from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.desired import DesiredTemplate, ManifestError, parse_manifest

NS = "shop"
DIR = "apps/shop"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: shop}}
spec:
  replicas: 3
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop, tier: web}}
    spec:
      containers:
      - name: web
        image: shop:1
        envFrom: [{configMapRef: {name: settings}}]
"""
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {team: web}}
data: {GREETING: hello}
"""
HPA = """\
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 8
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]
"""
PDB = """\
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: shop}}
"""


def directory(**files: str) -> list[tuple[str, bytes]]:
    """The files of ``apps/shop/`` by name (``deployment_yaml`` -> ``apps/shop/deployment.yaml``)."""
    return [(f"{DIR}/{name.replace('_', '.')}", text.encode()) for name, text in sorted(files.items())]


def parse_dir(files: list[tuple[str, bytes]]) -> DesiredTemplate:
    return parse_bundle(files, namespace=NS, path=DIR, directory=True)


def edited(text: str, change: Any) -> str:
    doc = yaml.safe_load(text)
    change(doc)
    return yaml.safe_dump(doc)


def test_a_directory_of_a_deployment_configmaps_an_hpa_and_a_pdb() -> None:
    other = CONFIG.replace("settings", "features").replace("GREETING: hello", "NEW_CART: 'on'")
    desired = parse_dir(directory(deployment_yaml=DEPLOYMENT, config_yml=CONFIG + "---\n" + other, hpa_yaml=HPA,
                                  pdb_yaml=PDB))
    assert [c.name for c in desired.config_maps] == ["features", "settings"], "sorted by name"
    assert desired.config_maps[1].data == {"GREETING": "hello"} and desired.config_maps[1].labels == {"team": "web"}
    assert desired.autoscaler is not None and desired.autoscaler.api_version == "autoscaling/v2beta2"
    assert desired.autoscale == (2, 8)
    assert desired.disruption_budget is not None and desired.disruption_budget.spec["minAvailable"] == 1
    assert desired.replicas == 3


def test_a_source_of_just_the_deployment_hashes_as_the_single_file_did() -> None:
    alone = parse_manifest(DEPLOYMENT, namespace=NS, path="d.yaml")
    in_a_directory = parse_dir(directory(deployment_yaml=DEPLOYMENT))
    assert in_a_directory.template_hash == alone.template_hash
    assert in_a_directory == alone


def test_a_file_holding_one_document_is_read_as_before() -> None:
    single = parse_bundle([("d.yaml", DEPLOYMENT.encode())], namespace=NS, path="d.yaml", directory=False)
    assert single == parse_manifest(DEPLOYMENT, namespace=NS, path="d.yaml")
    with pytest.raises(ManifestError) as caught:
        parse_bundle([("d.yaml", b"# nothing\n")], namespace=NS, path="d.yaml", directory=False)
    assert (caught.value.reason, caught.value.message) == (
        "NotOneDocument", "d.yaml must hold exactly one YAML document (a Deployment); found no document.")


def test_a_file_may_hold_the_extra_documents_too() -> None:
    text = "---\n".join([DEPLOYMENT, CONFIG, HPA, PDB])
    from_file = parse_bundle([("d.yaml", text.encode())], namespace=NS, path="d.yaml", directory=False)
    from_dir = parse_dir(directory(a_yaml=DEPLOYMENT, b_yaml=CONFIG, c_yaml=HPA, d_yaml=PDB))
    assert from_file.template_hash == from_dir.template_hash, "where the documents live does not matter"
    assert from_file.config_maps == from_dir.config_maps and from_file.autoscaler == from_dir.autoscaler


def test_parse_source_reads_a_file_or_a_directory_snapshot() -> None:
    commit = CommitInfo("c" * 40, "s", "a <a@b>", NOW)
    as_file = parse_source(Snapshot(commit, "d.yaml", DEPLOYMENT.encode()), namespace=NS)
    as_dir = parse_source(Snapshot(commit, DIR, b"", tuple(directory(deployment_yaml=DEPLOYMENT, c_yaml=CONFIG))),
                          namespace=NS)
    assert as_file.config_maps == () and [c.name for c in as_dir.config_maps] == ["settings"]


def hash_of(**files: str) -> str:
    return parse_dir(directory(**files)).template_hash


BASE = {"deployment_yaml": DEPLOYMENT, "config_yaml": CONFIG, "hpa_yaml": HPA, "pdb_yaml": PDB}


@pytest.mark.parametrize(("name", "text"), [
    pytest.param("config_yaml", CONFIG.replace("hello", "bonjour"), id="a-configmap-value"),
    pytest.param("config_yaml", CONFIG.replace("GREETING", "WELCOME"), id="a-configmap-key"),
    pytest.param("config_yaml", CONFIG.replace("team: web", "team: shop"), id="a-configmap-label"),
    pytest.param("config_yaml", CONFIG + "binaryData: {logo: aGk=}\n", id="configmap-binary-data"),
    pytest.param("config_yaml", CONFIG + "---\n" + CONFIG.replace("settings", "more"), id="one-more-configmap"),
    pytest.param("hpa_yaml", HPA.replace("maxReplicas: 8", "maxReplicas: 9"), id="the-hpa-range"),
    pytest.param("hpa_yaml", HPA.replace("autoscaling/v2beta2", "autoscaling/v2"), id="the-hpa-version"),
    pytest.param("pdb_yaml", PDB.replace("minAvailable: 1", "minAvailable: 2"), id="the-pdb"),
    pytest.param("pdb_yaml", "", id="no-pdb"),
    pytest.param("hpa_yaml", "", id="no-hpa"),
    pytest.param("config_yaml", "", id="no-configmap"),
])
def test_the_hash_changes_with_what_travels_with_the_colour(name: str, text: str) -> None:
    assert hash_of(**{**BASE, name: text}) != hash_of(**BASE)


@pytest.mark.parametrize(("name", "text"), [
    pytest.param("deployment_yaml", DEPLOYMENT.replace("replicas: 3", "replicas: 5"), id="the-replicas"),
    pytest.param("config_yaml", "# the settings\n" + CONFIG, id="a-comment"),
    pytest.param("config_yaml", "apiVersion: v1\nmetadata: {labels: {team: web}, name: settings}\nkind: ConfigMap\n"
                 "data: {GREETING: hello}\n", id="key-order"),
])
def test_the_hash_ignores_replicas_and_formatting(name: str, text: str) -> None:
    assert hash_of(**{**BASE, name: text}) == hash_of(**BASE)


def test_file_names_do_not_change_the_hash() -> None:
    renamed = {"a_yaml": DEPLOYMENT, "b_yml": CONFIG, "c_yaml": HPA, "d_yaml": PDB}
    assert hash_of(**renamed) == hash_of(**BASE)


SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: x}\n"
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: shop}}\n"
W = f"{DIR}/x.yaml"

# (id, the files of apps/shop/ besides deployment.yaml (None: no deployment.yaml either), reason, message)
REFUSALS: list[tuple[str, dict[str, str] | None, str, str]] = [
    ("no-document", {"deployment_yaml": "# nothing yet\n---\n"}, "NotADeployment",
     f"{DIR} holds no YAML document in a .yaml or .yml file directly inside it (subdirectories are not read); it "
     "must hold an apps/v1 Deployment."),
    ("no-deployment", None, "NotADeployment",
     f"{DIR} holds no apps/v1 Deployment (it holds ConfigMap in {W}); a source holds exactly one apps/v1 "
     "Deployment, any ConfigMaps, at most one HorizontalPodAutoscaler and at most one PodDisruptionBudget."),
    ("two-deployments", {"x_yaml": DEPLOYMENT.replace("name: web", "name: api")}, "NotOneDeployment",
     f"{DIR} holds 2 Deployments ({DIR}/deployment.yaml, {W}); a source holds exactly one apps/v1 Deployment, any "
     "ConfigMaps, at most one HorizontalPodAutoscaler and at most one PodDisruptionBudget: release the others "
     "separately."),
    ("old-deployment-api", {"x_yaml": DEPLOYMENT.replace("apps/v1", "apps/v1beta1")}, "NotADeployment",
     f"{W} is a Deployment of apiVersion 'apps/v1beta1'; use apps/v1."),
    ("a-list-document", {"x_yaml": CONFIG + "---\n- a\n"}, "NotADeployment",
     f"{W} (document 2) must be a Kubernetes object (a mapping with apiVersion and kind), not a list."),
    ("a-secret", {"x_yaml": SECRET}, "UnsupportedKind",
     f"{W} is a Secret: Secrets are never read from git; create it in the cluster and refer to it by name from "
     "the Deployment."),
    ("a-service", {"x_yaml": CONFIG + "---\n" + SERVICE}, "UnsupportedKind",
     f"{W} (document 2) is a v1 Service; a source holds exactly one apps/v1 Deployment, any ConfigMaps, at most "
     "one HorizontalPodAutoscaler and at most one PodDisruptionBudget (manage other objects outside the release)."),
    ("no-kind", {"x_yaml": "apiVersion: v1\nmetadata: {name: x}\n"}, "UnsupportedKind",
     f"{W} is a v1 None; a source holds exactly one apps/v1 Deployment, any ConfigMaps, at most one "
     "HorizontalPodAutoscaler and at most one PodDisruptionBudget (manage other objects outside the release)."),
    ("a-kustomization", {"kustomization_yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"},
     "UnsupportedKind",
     f"{DIR}/kustomization.yaml is a kustomize.config.k8s.io/v1beta1 Kustomization; a source holds exactly one "
     "apps/v1 Deployment, any ConfigMaps, at most one HorizontalPodAutoscaler and at most one PodDisruptionBudget "
     "(manage other objects outside the release)."),
    ("duplicate-configmap", {"x_yaml": CONFIG, "y_yaml": CONFIG.replace("hello", "hi")}, "InvalidConfigMap",
     f"{DIR}/y.yaml: ConfigMap 'settings' is defined again (first in {W}); give each ConfigMap its own name."),
    ("configmap-in-another-namespace", {"x_yaml": CONFIG.replace("name: settings", "name: settings, namespace: x")},
     "WrongNamespace",
     f"{W} sets metadata.namespace 'x', but the release is in namespace 'shop'; remove metadata.namespace or set it "
     "to 'shop'."),
    ("configmap-reserved-label", {"x_yaml": CONFIG.replace("team: web", "bluegreen.dev/color: blue")},
     "InvalidConfigMap",
     f"{W}: metadata.labels 'bluegreen.dev/color' uses the reserved prefix bluegreen.dev/; the operator sets those "
     "labels and annotations itself, remove it."),
    ("configmap-reserved-annotation", {"x_yaml": CONFIG.replace("labels: {team: web}",
                                                                "annotations: {bluegreen.dev/commit: x}")},
     "InvalidConfigMap",
     f"{W}: metadata.annotations 'bluegreen.dev/commit' uses the reserved prefix bluegreen.dev/; the operator sets "
     "those labels and annotations itself, remove it."),
    ("configmap-without-name", {"x_yaml": CONFIG.replace("name: settings, ", "")}, "InvalidConfigMap",
     f"{W}: metadata.name must be a non-empty string."),
    ("configmap-bad-name", {"x_yaml": CONFIG.replace("name: settings", "name: Settings_1")}, "InvalidConfigMap",
     f"{W}: metadata.name 'Settings_1' must be a DNS subdomain (lower-case letters, digits, '-' and '.') of at most "
     "247 characters (the operator appends the colour)."),
    ("configmap-name-too-long", {"x_yaml": CONFIG.replace("name: settings", "name: " + "a" * 248)},
     "InvalidConfigMap",
     f"{W}: metadata.name '{'a' * 248}' must be a DNS subdomain (lower-case letters, digits, '-' and '.') of at "
     "most 247 characters (the operator appends the colour)."),
    ("configmap-immutable", {"x_yaml": CONFIG + "immutable: true\n"}, "InvalidConfigMap",
     f"{W}: immutable must not be set: the operator rewrites the idle colour's copy when it is applied again (the "
     "serving colour's copy is never changed); remove it."),
    ("configmap-number-value", {"x_yaml": CONFIG.replace("GREETING: hello", "PORT: 80")}, "InvalidConfigMap",
     f"{W}: data.PORT must be a string, not 80 (quote it)."),
    ("configmap-unknown-field", {"x_yaml": CONFIG + "spec: {}\n"}, "InvalidConfigMap",
     f"{W}: spec is not a ConfigMap field."),
    ("configmap-key-twice", {"x_yaml": CONFIG + "binaryData: {GREETING: aGk=}\n"}, "InvalidConfigMap",
     f"{W}: key 'GREETING' is in both data and binaryData."),
    ("configmap-wrong-version", {"x_yaml": CONFIG.replace("apiVersion: v1", "apiVersion: v2")}, "InvalidConfigMap",
     f"{W}: apiVersion 'v2' of a ConfigMap is not supported; use v1."),
    ("two-hpas", {"x_yaml": HPA, "y_yaml": HPA.replace("name: web}", "name: web2}", 1)}, "InvalidAutoscaler",
     f"{DIR}/y.yaml is a second HorizontalPodAutoscaler (the first is in {W}); a source holds at most one."),
    ("hpa-v2beta1", {"x_yaml": HPA.replace("v2beta2", "v2beta1")}, "InvalidAutoscaler",
     f"{W}: apiVersion 'autoscaling/v2beta1' of a HorizontalPodAutoscaler is not supported; use autoscaling/v1 or "
     "autoscaling/v2beta2 or autoscaling/v2."),
    ("hpa-of-another-deployment", {"x_yaml": HPA.replace("kind: Deployment, name: web", "kind: Deployment, name: api")},
     "InvalidAutoscaler",
     f"{W}: spec.scaleTargetRef.name is 'api'; it must name the source's Deployment 'web' (the operator points "
     "each colour's copy at that colour)."),
    ("hpa-of-a-statefulset", {"x_yaml": HPA.replace("kind: Deployment", "kind: StatefulSet")}, "InvalidAutoscaler",
     f"{W}: spec.scaleTargetRef must be the source's apps/v1 Deployment (kind Deployment, apiVersion apps/v1), not "
     "'apps/v1' 'StatefulSet'."),
    ("hpa-min-above-max", {"x_yaml": HPA.replace("minReplicas: 2", "minReplicas: 9")}, "InvalidAutoscaler",
     f"{W}: spec.minReplicas (9) must not exceed spec.maxReplicas (8)."),
    ("hpa-without-max", {"x_yaml": HPA.replace("  maxReplicas: 8\n", "")}, "InvalidAutoscaler",
     f"{W}: spec.maxReplicas must be a whole number >= 1, not None."),
    ("hpa-min-zero", {"x_yaml": HPA.replace("minReplicas: 2", "minReplicas: 0")}, "InvalidAutoscaler",
     f"{W}: spec.minReplicas must be a whole number >= 1, not 0."),
    ("hpa-without-target", {"x_yaml": HPA.replace("  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, "
                                                  "name: web}\n", "")}, "InvalidAutoscaler",
     f"{W}: spec.scaleTargetRef must be a mapping (it is missing)."),
    ("two-pdbs", {"x_yaml": PDB + "---\n" + PDB.replace("name: web", "name: web2")}, "InvalidDisruptionBudget",
     f"{W} (document 2) is a second PodDisruptionBudget (the first is in {W} (document 1)); a source holds at most "
     "one."),
    ("pdb-selecting-other-pods", {"x_yaml": PDB.replace("app: shop", "app: cart")}, "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchLabels app=cart does not match the Deployment's spec.template.metadata.labels; the "
     "selector must select the Deployment's pods."),
    ("pdb-expression-not-matching", {"x_yaml": PDB.replace(
        "selector: {matchLabels: {app: shop}}",
        "selector: {matchExpressions: [{key: tier, operator: In, values: [db]}]}")}, "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchExpressions[0] does not match the Deployment's spec.template.metadata.labels; the "
     "selector must select the Deployment's pods."),
    ("pdb-without-selector", {"x_yaml": PDB.replace("  selector: {matchLabels: {app: shop}}\n", "")},
     "InvalidDisruptionBudget", f"{W}: spec.selector must be a mapping (it is missing)."),
    ("pdb-empty-selector", {"x_yaml": PDB.replace("{matchLabels: {app: shop}}", "{}")}, "InvalidDisruptionBudget",
     f"{W}: spec.selector needs matchLabels (or matchExpressions)."),
    ("pdb-reserved-selector", {"x_yaml": PDB.replace("{app: shop}", "{app: shop, bluegreen.dev/color: blue}")},
     "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchLabels 'bluegreen.dev/color' uses the reserved prefix bluegreen.dev/; the operator "
     "sets those labels and annotations itself, remove it."),
    ("pdb-v1beta2", {"x_yaml": PDB.replace("policy/v1beta1", "policy/v1beta2")}, "InvalidDisruptionBudget",
     f"{W}: apiVersion 'policy/v1beta2' of a PodDisruptionBudget is not supported; use policy/v1 or policy/v1beta1."),
    ("configmap-binary-not-a-string", {"x_yaml": CONFIG + "binaryData: {logo: 1}\n"}, "InvalidConfigMap",
     f"{W}: binaryData.logo must be a string, not 1 (quote it)."),
    ("configmap-label-not-a-string", {"x_yaml": CONFIG.replace("team: web", "team: 7")}, "InvalidConfigMap",
     f"{W}: metadata.labels.team must be a string, not 7 (quote it)."),
    ("configmap-metadata-not-a-mapping", {"x_yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: settings\n"},
     "InvalidConfigMap", f"{W}: metadata must be a mapping."),
    ("configmap-name-a-number", {"x_yaml": CONFIG.replace("name: settings", "name: 5")}, "InvalidConfigMap",
     f"{W}: metadata.name must be a non-empty string."),
    ("hpa-annotation-not-a-string", {"x_yaml": HPA.replace("{name: web}", "{name: web, annotations: {a: 1}}", 1)},
     "InvalidAutoscaler", f"{W}: metadata.annotations.a must be a string, not 1 (quote it)."),
    ("hpa-reserved-label", {"x_yaml": HPA.replace("{name: web}", "{name: web, labels: {bluegreen.dev/x: y}}", 1)},
     "InvalidAutoscaler", f"{W}: metadata.labels 'bluegreen.dev/x' uses the reserved prefix bluegreen.dev/; the "
     "operator sets those labels and annotations itself, remove it."),
    ("hpa-without-name", {"x_yaml": HPA.replace("metadata: {name: web}", "metadata: {}", 1)}, "InvalidAutoscaler",
     f"{W}: metadata.name must be a non-empty string."),
    ("hpa-without-spec", {"x_yaml": "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: w}\n"},
     "InvalidAutoscaler", f"{W}: spec must be a mapping (it is missing)."),
    ("hpa-of-an-old-deployment-api", {"x_yaml": HPA.replace("{apiVersion: apps/v1,", "{apiVersion: apps/v1beta1,")},
     "InvalidAutoscaler",
     f"{W}: spec.scaleTargetRef must be the source's apps/v1 Deployment (kind Deployment, apiVersion apps/v1), not "
     "'apps/v1beta1' 'Deployment'."),
    ("hpa-max-not-a-number", {"x_yaml": HPA.replace("maxReplicas: 8", "maxReplicas: '8'")}, "InvalidAutoscaler",
     f"{W}: spec.maxReplicas must be a whole number >= 1, not '8'."),
    ("hpa-min-a-boolean", {"x_yaml": HPA.replace("minReplicas: 2", "minReplicas: true")}, "InvalidAutoscaler",
     f"{W}: spec.minReplicas must be a whole number >= 1, not True."),
    ("pdb-without-spec", {"x_yaml": "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: w}\n"},
     "InvalidDisruptionBudget", f"{W}: spec must be a mapping (it is missing)."),
    ("pdb-label-value-not-a-string", {"x_yaml": PDB.replace("{app: shop}", "{app: 1}")}, "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchLabels.app must be a string, not 1 (quote it)."),
    ("pdb-expressions-not-a-list", {"x_yaml": PDB.replace("{matchLabels: {app: shop}}", "{matchExpressions: x}")},
     "InvalidDisruptionBudget", f"{W}: spec.selector.matchExpressions must be a list."),
    ("pdb-expression-without-key", {"x_yaml": PDB.replace("{matchLabels: {app: shop}}",
                                                          "{matchExpressions: [{operator: Exists}]}")},
     "InvalidDisruptionBudget", f"{W}: spec.selector.matchExpressions[0] must be a mapping with a string key."),
    ("pdb-expression-bad-operator", {"x_yaml": PDB.replace("{matchLabels: {app: shop}}",
                                                           "{matchExpressions: [{key: app, operator: Is}]}")},
     "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchExpressions[0].operator must be one of In, NotIn, Exists, DoesNotExist."),
    ("pdb-expression-values-not-strings", {"x_yaml": PDB.replace(
        "{matchLabels: {app: shop}}", "{matchExpressions: [{key: app, operator: In, values: [1]}]}")},
     "InvalidDisruptionBudget", f"{W}: spec.selector.matchExpressions[0].values must be a list of strings."),
    ("pdb-expression-in-without-values", {"x_yaml": PDB.replace(
        "{matchLabels: {app: shop}}", "{matchExpressions: [{key: app, operator: In}]}")}, "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchExpressions[0].values must be non-empty for In/NotIn and empty for "
     "Exists/DoesNotExist."),
    ("pdb-expression-reserved-key", {"x_yaml": PDB.replace(
        "{matchLabels: {app: shop}}", "{matchExpressions: [{key: bluegreen.dev/color, operator: Exists}]}")},
     "InvalidDisruptionBudget",
     f"{W}: spec.selector.matchExpressions[0].key 'bluegreen.dev/color' uses the reserved prefix bluegreen.dev/; "
     "remove it."),
    ("pdb-in-another-namespace", {"x_yaml": PDB.replace("{name: web}", "{name: web, namespace: x}")},
     "WrongNamespace",
     f"{W} sets metadata.namespace 'x', but the release is in namespace 'shop'; remove metadata.namespace or set it "
     "to 'shop'."),
    ("normalizing-names-the-document", {"x_yaml": CONFIG + "---\n1: one\n"}, "InvalidYAML",
     f"{W} (document 2): key 1 under the top must be a string."),
    ("invalid-yaml-names-the-file", {"x_yaml": "kind: [unclosed\n"}, "InvalidYAML", f"{W} is not valid YAML: "),
    ("deployment-rules-name-the-file", {"deployment_yaml": DEPLOYMENT.replace("replicas: 3", "replicas: 0"),
                                        "x_yaml": CONFIG}, "InvalidDeployment",
     f"{DIR}/deployment.yaml: spec.replicas must be a whole number >= 1 (a colour with no replica cannot take "
     "traffic), not 0."),
    ("deployment-namespace-names-the-document", {"deployment_yaml": CONFIG + "---\n" + DEPLOYMENT.replace(
        "name: web,", "name: web, namespace: x,")}, "WrongNamespace",
     f"{DIR}/deployment.yaml (document 2) sets metadata.namespace 'x', but the release is in namespace 'shop'; "
     "remove metadata.namespace or set it to 'shop'."),
]


@pytest.mark.parametrize(("others", "reason", "message"), [pytest.param(*case[1:], id=case[0]) for case in REFUSALS])
def test_refusals_name_the_file_and_what_to_fix(others: dict[str, str] | None, reason: str, message: str) -> None:
    files = {"x_yaml": CONFIG} if others is None else {"deployment_yaml": DEPLOYMENT, **others}
    with pytest.raises(ManifestError) as caught:
        parse_dir(directory(**files))
    assert caught.value.reason == reason
    if reason == "InvalidYAML":
        assert caught.value.message.startswith(message)
    else:
        assert caught.value.message == message


def test_an_hpa_needs_a_named_deployment() -> None:
    nameless = edited(DEPLOYMENT, lambda d: d["metadata"].pop("name"))
    with pytest.raises(ManifestError) as caught:
        parse_dir(directory(deployment_yaml=nameless, hpa_yaml=HPA))
    assert (caught.value.reason, caught.value.message) == ("InvalidAutoscaler", (
        f"{DIR}/hpa.yaml: spec.scaleTargetRef.name must name the source's Deployment, which has no metadata.name; "
        "give the Deployment a name."))
    numbered = edited(DEPLOYMENT, lambda d: d["metadata"].update(name=5))
    with pytest.raises(ManifestError) as caught:
        parse_dir(directory(deployment_yaml=numbered, hpa_yaml=HPA))
    assert "which has no metadata.name" in caught.value.message


def test_an_autoscaling_v1_hpa_without_min_replicas_defaults_to_one() -> None:
    v1 = ("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n"
          "  scaleTargetRef: {kind: Deployment, name: web}\n  maxReplicas: 4\n"
          "  targetCPUUtilizationPercentage: 60\n")
    assert parse_dir(directory(deployment_yaml=DEPLOYMENT, hpa_yaml=v1)).autoscale == (1, 4)


def test_a_pdb_selecting_by_expression_is_accepted() -> None:
    pdb = PDB.replace("selector: {matchLabels: {app: shop}}",
                      "selector: {matchExpressions: [{key: tier, operator: In, values: [web]}]}")
    desired = parse_dir(directory(deployment_yaml=DEPLOYMENT, pdb_yaml=pdb))
    assert desired.disruption_budget is not None


def test_the_bundle_hash_is_pinned() -> None:
    """A changed hash after an upgrade would re-release every colour: the canonical form must not drift."""
    assert hash_of(**BASE) == PINNED_HASH


PINNED_HASH = "df7f94086d908046"


@pytest.mark.parametrize(("hpa", "expected"), [
    pytest.param(HPA.replace("minReplicas: 2", "minReplicas: 8"), (8, 8), id="min-equal-to-max"),
    pytest.param(HPA.replace("  minReplicas: 2\n", "").replace("maxReplicas: 8", "maxReplicas: 1"), (1, 1),
                 id="default-min-with-max-one"),
])
def test_hpa_ranges_at_their_edges(hpa: str, expected: tuple[int, int]) -> None:
    assert parse_dir(directory(deployment_yaml=DEPLOYMENT, hpa_yaml=hpa)).autoscale == expected


def test_a_configmap_name_of_the_longest_length_is_accepted() -> None:
    name = "a" * 247
    desired = parse_dir(directory(deployment_yaml=DEPLOYMENT, c_yaml=CONFIG.replace("name: settings", f"name: {name}")))
    assert desired.config_maps[0].name == name


def test_a_single_document_file_that_is_not_a_deployment_says_so_as_before() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_bundle([("d.yaml", CONFIG.encode())], namespace=NS, path="d.yaml", directory=False)
    assert (caught.value.reason, caught.value.message) == (
        "NotADeployment", "d.yaml must be an apps/v1 Deployment; found apiVersion 'v1', kind 'ConfigMap'.")


def test_a_file_of_the_deployment_and_one_configmap() -> None:
    desired = parse_bundle([("d.yaml", (DEPLOYMENT + "---\n" + CONFIG).encode())], namespace=NS, path="d.yaml",
                           directory=False)
    assert [c.name for c in desired.config_maps] == ["settings"]


@pytest.mark.parametrize("directory_source", [False, True], ids=["file", "directory"])
def test_the_namespace_and_size_limit_reach_every_document(directory_source: bool) -> None:
    commit = CommitInfo("c" * 40, "s", "a <a@b>", NOW)
    moved = DEPLOYMENT.replace("name: web,", "name: web, namespace: other,")

    def snap(text: str) -> Snapshot:
        if directory_source:
            return Snapshot(commit, DIR, b"", ((f"{DIR}/d.yaml", text.encode()),))
        return Snapshot(commit, "d.yaml", text.encode())

    with pytest.raises(ManifestError) as caught:
        parse_source(snap(moved), namespace=NS)
    assert caught.value.reason == "WrongNamespace"
    with pytest.raises(ManifestError) as caught:
        parse_source(snap(DEPLOYMENT), namespace=NS, max_bytes=len(DEPLOYMENT) - 1)
    assert caught.value.reason == "ManifestTooLarge"
    assert parse_source(snap(DEPLOYMENT), namespace=NS, max_bytes=len(DEPLOYMENT)).replicas == 3
    with pytest.raises(ManifestError) as caught:
        parse_source(snap(DEPLOYMENT + "---\n" + CONFIG.replace("name: settings", "name: s, namespace: o")),
                     namespace=NS)
    assert caught.value.reason == "WrongNamespace"


def test_an_empty_file_and_an_empty_directory_are_told_apart() -> None:
    commit = CommitInfo("c" * 40, "s", "a <a@b>", NOW)
    with pytest.raises(ManifestError) as caught:
        parse_source(Snapshot(commit, "d.yaml", b""), namespace=NS)
    assert caught.value.reason == "NotOneDocument" and caught.value.message.startswith("d.yaml ")
    with pytest.raises(ManifestError) as caught:
        parse_source(Snapshot(commit, DIR, b"", ()), namespace=NS)
    assert caught.value.reason == "NotADeployment" and caught.value.message.startswith(f"{DIR} holds no YAML")


def test_a_source_without_a_deployment_lists_what_it_holds_up_to_four() -> None:
    many = "---\n".join(CONFIG.replace("settings", f"c{n}") for n in range(6))
    with pytest.raises(ManifestError) as caught:
        parse_dir(directory(x_yaml=many))
    found = ", ".join(f"ConfigMap in {W} (document {n})" for n in range(1, 5))
    assert caught.value.message.startswith(f"{DIR} holds no apps/v1 Deployment (it holds {found} and 2 more); ")
    with pytest.raises(ManifestError) as caught:
        parse_dir(directory(x_yaml="---\n".join(CONFIG.replace("settings", f"c{n}") for n in range(4))))
    assert "(document 4)); " in caught.value.message and "more" not in caught.value.message


def test_the_hash_with_companions_still_covers_the_deployment_metadata() -> None:
    annotated = DEPLOYMENT.replace("labels: {app: shop}}", "labels: {app: shop}, annotations: {team: web}}", 1)
    relabelled = DEPLOYMENT.replace("labels: {app: shop}}", "labels: {app: cart}}", 1)
    plain = hash_of(deployment_yaml=DEPLOYMENT, config_yaml=CONFIG)
    assert hash_of(deployment_yaml=annotated, config_yaml=CONFIG) != plain
    assert hash_of(deployment_yaml=relabelled, config_yaml=CONFIG) != plain


def test_configmap_annotations_are_kept() -> None:
    desired = parse_dir(directory(deployment_yaml=DEPLOYMENT, c_yaml=CONFIG.replace(
        "labels: {team: web}", "labels: {team: web}, annotations: {owner: web-team}")))
    assert desired.config_maps[0].annotations == {"owner": "web-team"}
    assert desired.config_maps[0].labels == {"team": "web"}
