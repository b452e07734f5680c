"""Unit tests of bluegreen.core.desired: manifest validation, template hashing and rendering."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from bluegreen.core.desired import (
    DesiredTemplate,
    ManifestError,
    hash_template,
    owner_reference,
    parse_manifest,
    render_deployment,
)
from bluegreen.core.spec import (
    ANNOTATION_COMMIT,
    ANNOTATION_TEMPLATE_HASH,
    LABEL_COLOR,
    LABEL_RELEASE,
    Color,
)

NS = "shop"

MANIFEST = """\
# The shop's Deployment; the operator runs it as shop-blue / shop-green.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels:
    app: shop
  annotations:
    team: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: shop
  strategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        app: shop
        tier: web
    spec:
      containers:
        - name: web
          image: registry.example/shop:1.0
          env:
            - name: MODE
              value: prod
"""


def base() -> dict[str, Any]:
    """MANIFEST as a fresh dict."""
    doc: dict[str, Any] = yaml.safe_load(MANIFEST)
    return doc


def variant(mutate: Callable[[dict[str, Any]], object]) -> str:
    """MANIFEST re-serialized after ``mutate`` changed its dict."""
    doc = base()
    mutate(doc)
    return yaml.safe_dump(doc)


def parse(text: str | bytes, **kwargs: Any) -> DesiredTemplate:
    return parse_manifest(text, namespace=NS, **kwargs)


def pod(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def container(doc: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = pod(doc)["containers"][0]
    return first


# --- parsing ------------------------------------------------------------------------------------


def test_parse_valid_manifest() -> None:
    desired = parse(MANIFEST)
    assert desired.replicas == 3
    assert desired.labels == {"app": "shop"}
    assert desired.annotations == {"team": "web"}
    assert "replicas" not in desired.spec
    assert desired.spec["selector"] == {"matchLabels": {"app": "shop"}}
    assert desired.spec["template"]["spec"]["containers"][0]["image"] == "registry.example/shop:1.0"
    assert re.fullmatch(r"[0-9a-f]{16}", desired.template_hash)
    assert desired.template_hash == hash_template(
        desired.spec, labels=desired.labels, annotations=desired.annotations
    )


@pytest.mark.parametrize(
    ("text", "expected_replicas"),
    [
        pytest.param(variant(lambda d: d["spec"].pop("replicas")), 1, id="absent-defaults-to-1"),
        pytest.param(variant(lambda d: d["spec"].update(replicas=None)), 1, id="null-defaults-to-1"),
        pytest.param(MANIFEST.encode(), 3, id="bytes-input"),
        pytest.param("\ufeff" + MANIFEST, 3, id="byte-order-mark"),
        pytest.param("---\n" + MANIFEST + "---\n", 3, id="empty-documents-around"),
        pytest.param(variant(lambda d: d["metadata"].update(namespace=NS)), 3, id="same-namespace"),
        pytest.param(variant(lambda d: d.pop("metadata")), 3, id="no-metadata"),
        pytest.param(
            variant(
                lambda d: d["spec"]["selector"].update(
                    matchLabels=None,
                    matchExpressions=[
                        {"key": "tier", "operator": "In", "values": ["web", "api"]},
                        {"key": "app", "operator": "Exists"},
                        {"key": "canary", "operator": "DoesNotExist"},
                        {"key": "tier", "operator": "NotIn", "values": ["db"]},
                    ],
                )
            ),
            3,
            id="match-expressions",
        ),
        pytest.param(
            variant(lambda d: pod(d).update(initContainers=[{"name": "init", "image": "busybox"}])),
            3,
            id="init-containers",
        ),
    ],
)
def test_parse_accepts(text: str | bytes, expected_replicas: int) -> None:
    assert parse(text).replicas == expected_replicas


def test_timestamps_and_yes_no_stay_as_written() -> None:
    text = variant(lambda d: d["metadata"]["annotations"].update(released="2024-01-02"))
    assert parse(text).annotations["released"] == "2024-01-02"
    unquoted = MANIFEST.replace("team: web", "released: 2024-01-02")
    assert parse(unquoted).annotations == {"released": "2024-01-02"}


def test_nulls_are_dropped_from_spec() -> None:
    text = MANIFEST.replace("  strategy:\n", "  paused: null\n  strategy:\n")
    assert "paused" not in parse(text).spec


def test_aliases_are_expanded_into_independent_copies() -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
spec:
  selector:
    matchLabels: &labels {app: shop}
  template:
    metadata:
      labels: *labels
    spec:
      containers: [{name: web, image: shop:1}]
"""
    desired = parse(text)
    desired.spec["template"]["metadata"]["labels"]["x"] = "y"
    assert desired.spec["selector"]["matchLabels"] == {"app": "shop"}


def many_documents(count: int) -> str:
    return "---\n".join([MANIFEST] * count)


@pytest.mark.parametrize(
    ("text", "reason", "fragment"),
    [
        pytest.param("kind: [unclosed\n", "InvalidYAML", "not valid YAML", id="invalid-yaml"),
        pytest.param("a: 1\na: 2\n", "InvalidYAML", "duplicate key", id="duplicate-key"),
        pytest.param(b"\xff\xfe\x00bad", "InvalidYAML", "not UTF-8", id="not-utf8"),
        pytest.param(MANIFEST + "  extra: !!binary aGVsbG8=\n", "InvalidYAML", "JSON", id="binary-value"),
        pytest.param(MANIFEST + "  1: one\n", "InvalidYAML", "must be a string", id="integer-key"),
        pytest.param(MANIFEST + "  big: .inf\n", "InvalidYAML", "JSON", id="infinity"),
        pytest.param("[" * 150 + "]" * 150, "InvalidYAML", "nested", id="too-deep"),
        pytest.param("", "NotOneDocument", "found no document", id="empty-file"),
        pytest.param("# only a comment\n---\n", "NotOneDocument", "found no document", id="only-comments"),
        pytest.param(many_documents(2), "NotOneDocument", "found 2 documents", id="two-documents"),
        pytest.param("- a\n- b\n", "NotADeployment", "not a list", id="a-list"),
        pytest.param("just text\n", "NotADeployment", "not a string", id="a-string"),
        pytest.param(
            "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec: {selector: {app: shop}}\n",
            "NotADeployment",
            "'Service'",
            id="service",
        ),
        pytest.param(
            MANIFEST.replace("apps/v1", "apps/v1beta1"), "NotADeployment", "'apps/v1beta1'", id="apps-v1beta1"
        ),
        pytest.param(
            variant(lambda d: d["metadata"].update(namespace="other")),
            "WrongNamespace",
            "'other'",
            id="other-namespace",
        ),
        pytest.param(variant(lambda d: d.pop("spec")), "InvalidDeployment", "spec must be", id="no-spec"),
        pytest.param(
            variant(lambda d: d["spec"].update(replicas="3")),
            "InvalidDeployment",
            "spec.replicas",
            id="replicas-str",
        ),
        pytest.param(
            variant(lambda d: d["spec"].update(replicas=-1)),
            "InvalidDeployment",
            "spec.replicas",
            id="replicas-neg",
        ),
        pytest.param(
            variant(lambda d: d["spec"].update(replicas=0)),
            "InvalidDeployment",
            "traffic",
            id="replicas-zero",
        ),
        pytest.param(
            variant(lambda d: d["spec"].update(replicas=True)),
            "InvalidDeployment",
            "spec.replicas",
            id="replicas-bool",
        ),
        pytest.param(
            variant(lambda d: d["metadata"]["labels"].update(version=2)),
            "InvalidDeployment",
            "metadata.labels.version must be a string",
            id="label-not-string",
        ),
        pytest.param(
            variant(lambda d: d["spec"].pop("template")),
            "InvalidDeployment",
            "spec.template",
            id="no-template",
        ),
        pytest.param(
            variant(lambda d: d["spec"]["template"]["metadata"].pop("labels")),
            "InvalidDeployment",
            "spec.template.metadata.labels",
            id="no-template-labels",
        ),
        pytest.param(
            variant(lambda d: d["spec"]["template"]["metadata"].update(labels={})),
            "InvalidDeployment",
            "must not be empty",
            id="empty-template-labels",
        ),
        pytest.param(
            variant(lambda d: d["spec"].pop("selector")),
            "InvalidDeployment",
            "spec.selector",
            id="no-selector",
        ),
        pytest.param(
            variant(lambda d: d["spec"].update(selector={})),
            "InvalidDeployment",
            "spec.selector needs matchLabels",
            id="empty-selector",
        ),
        pytest.param(
            variant(lambda d: d["spec"]["selector"]["matchLabels"].update(app="other")),
            "InvalidDeployment",
            "app=other",
            id="selector-value-mismatch",
        ),
        pytest.param(
            variant(lambda d: d["spec"]["selector"]["matchLabels"].update(role="x")),
            "InvalidDeployment",
            "role=x",
            id="selector-key-not-in-template",
        ),
        pytest.param(
            variant(
                lambda d: d["spec"]["selector"].update(
                    matchExpressions=[{"key": "tier", "operator": "In", "values": ["db"]}]
                )
            ),
            "InvalidDeployment",
            "matchExpressions[0] does not match",
            id="expression-mismatch",
        ),
        pytest.param(
            variant(
                lambda d: d["spec"]["selector"].update(matchExpressions=[{"key": "tier", "operator": "Near"}])
            ),
            "InvalidDeployment",
            "operator",
            id="expression-bad-operator",
        ),
        pytest.param(
            variant(
                lambda d: d["spec"]["selector"].update(matchExpressions=[{"key": "tier", "operator": "In"}])
            ),
            "InvalidDeployment",
            "values",
            id="expression-in-without-values",
        ),
        pytest.param(
            variant(lambda d: pod(d).pop("containers")), "InvalidDeployment", "containers", id="no-containers"
        ),
        pytest.param(
            variant(lambda d: pod(d).update(containers=[])),
            "InvalidDeployment",
            "containers",
            id="empty-containers",
        ),
        pytest.param(
            variant(lambda d: container(d).pop("image")),
            "InvalidDeployment",
            "containers[0].image",
            id="container-without-image",
        ),
        pytest.param(
            variant(lambda d: container(d).update(name="")),
            "InvalidDeployment",
            "containers[0].name",
            id="container-empty-name",
        ),
        pytest.param(
            variant(lambda d: pod(d).update(containers=[container(d), container(d)])),
            "InvalidDeployment",
            "more than one container",
            id="duplicate-container-name",
        ),
        pytest.param(
            variant(lambda d: pod(d).update(initContainers=[{"name": "init"}])),
            "InvalidDeployment",
            "initContainers[0].image",
            id="init-container-without-image",
        ),
        pytest.param(
            variant(
                lambda d: (
                    d["spec"]["selector"]["matchLabels"].update({LABEL_COLOR: "blue"}),
                    d["spec"]["template"]["metadata"]["labels"].update({LABEL_COLOR: "blue"}),
                )
            ),
            "InvalidDeployment",
            "reserved prefix",
            id="bluegreen-label-in-selector",
        ),
        pytest.param(
            variant(lambda d: d["spec"]["template"]["metadata"]["labels"].update({LABEL_RELEASE: "shop"})),
            "InvalidDeployment",
            "reserved prefix",
            id="bluegreen-label-in-template",
        ),
        pytest.param(
            variant(
                lambda d: d["spec"]["template"]["metadata"].update(
                    annotations={ANNOTATION_TEMPLATE_HASH: "x"}
                )
            ),
            "InvalidDeployment",
            "reserved prefix",
            id="bluegreen-annotation-in-template",
        ),
        pytest.param(
            variant(lambda d: d["metadata"]["annotations"].update({ANNOTATION_COMMIT: "abc"})),
            "InvalidDeployment",
            "reserved prefix",
            id="bluegreen-annotation-in-metadata",
        ),
        pytest.param(
            variant(
                lambda d: d["spec"]["selector"].update(
                    matchExpressions=[{"key": LABEL_COLOR, "operator": "DoesNotExist"}]
                )
            ),
            "InvalidDeployment",
            "reserved prefix",
            id="bluegreen-key-in-expression",
        ),
    ],
)
def test_parse_refuses(text: str | bytes, reason: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse(text, path="apps/shop/deployment.yaml")
    assert info.value.reason == reason
    assert fragment in info.value.message
    assert "apps/shop/deployment.yaml" in info.value.message
    assert str(info.value) == info.value.message


def test_message_without_path_names_the_manifest() -> None:
    with pytest.raises(ManifestError, match=r"^the manifest must hold exactly one"):
        parse("")


@pytest.mark.parametrize(
    ("text", "max_bytes", "ok"),
    [
        pytest.param(MANIFEST, len(MANIFEST.encode()), True, id="at-limit"),
        pytest.param(MANIFEST, len(MANIFEST.encode()) - 1, False, id="one-byte-over"),
        pytest.param(MANIFEST.encode(), len(MANIFEST.encode()) - 1, False, id="bytes-over"),
        pytest.param(
            MANIFEST.replace("prod", "prod-é"), len(MANIFEST.encode()) + 1, False, id="counts-utf8-bytes"
        ),
    ],
)
def test_size_limit(text: str | bytes, max_bytes: int, ok: bool) -> None:
    if ok:
        parse(text, max_bytes=max_bytes)
    else:
        with pytest.raises(ManifestError) as info:
            parse(text, max_bytes=max_bytes)
        assert info.value.reason == "ManifestTooLarge"


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ManifestError) as info:
        parse("\n".join(lines) + "\n")
    assert info.value.reason == "ManifestTooLarge"


# --- hashing ------------------------------------------------------------------------------------


def reorder(doc: Any) -> Any:
    """Same content, every mapping's keys in reverse order."""
    if isinstance(doc, dict):
        return {key: reorder(doc[key]) for key in reversed(list(doc))}
    if isinstance(doc, list):
        return [reorder(item) for item in doc]
    return doc


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(MANIFEST.replace("# The shop", "# Another comment about the shop"), id="comments"),
        pytest.param(MANIFEST + "# trailing comment\n", id="trailing-comment"),
        pytest.param(yaml.safe_dump(reorder(base()), sort_keys=False), id="key-order"),
        pytest.param(yaml.safe_dump(base(), default_flow_style=True), id="flow-style"),
        pytest.param(variant(lambda d: d["metadata"].update(name="renamed")), id="name"),
        pytest.param(variant(lambda d: d["metadata"].update(namespace=NS)), id="namespace"),
        pytest.param(variant(lambda d: d["spec"].update(replicas=10)), id="replicas"),
        pytest.param(variant(lambda d: d["spec"].pop("replicas")), id="replicas-absent"),
        pytest.param(
            variant(lambda d: d["spec"]["template"]["metadata"].update(name=None)), id="explicit-null"
        ),
        pytest.param(variant(lambda d: d.update(status={"replicas": 3})), id="status"),
    ],
)
def test_hash_is_invariant(other: str) -> None:
    assert parse(other).template_hash == parse(MANIFEST).template_hash


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(MANIFEST.replace("shop:1.0", "shop:1.1"), id="image"),
        pytest.param(variant(lambda d: d["metadata"]["labels"].update(extra="x")), id="deployment-labels"),
        pytest.param(variant(lambda d: d["metadata"]["annotations"].update(team="ops")), id="deployment-annotations"),
        pytest.param(MANIFEST.replace("value: prod", "value: staging"), id="env-value"),
        pytest.param(
            variant(lambda d: container(d)["env"].append({"name": "DEBUG", "value": "1"})), id="env-added"
        ),
        pytest.param(
            variant(lambda d: d["spec"]["template"]["metadata"]["labels"].update(extra="x")),
            id="template-label",
        ),
        pytest.param(variant(lambda d: d["spec"].update(strategy={"type": "Recreate"})), id="strategy"),
        pytest.param(variant(lambda d: d["spec"].update(minReadySeconds=10)), id="min-ready-seconds"),
        pytest.param(
            variant(lambda d: container(d).update(args=["--b", "--a"])), id="list-order-matters-args-added"
        ),
    ],
)
def test_hash_changes(other: str) -> None:
    assert parse(other).template_hash != parse(MANIFEST).template_hash


def test_hash_list_order_is_significant() -> None:
    first = variant(lambda d: container(d).update(args=["--a", "--b"]))
    second = variant(lambda d: container(d).update(args=["--b", "--a"]))
    assert parse(first).template_hash != parse(second).template_hash


def test_hash_template_ignores_replicas_and_key_order() -> None:
    spec = {"template": {"b": 1, "a": 2}, "replicas": 3}
    assert hash_template(spec) == hash_template({"template": {"a": 2, "b": 1}})
    assert hash_template(spec) != hash_template({"template": {"a": 2, "b": 2}})


# --- rendering ----------------------------------------------------------------------------------

OWNER = owner_reference("shop", "0000-1111")


def render(desired: DesiredTemplate, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "release": "shop",
        "namespace": NS,
        "color": Color.GREEN,
        "commit": "a" * 40,
        "replicas": 4,
        "owner": OWNER,
    }
    kwargs.update(overrides)
    return render_deployment(desired, **kwargs)


def test_render_complete_body() -> None:
    desired = parse(MANIFEST)
    h = desired.template_hash
    body = render(desired)
    assert body["apiVersion"] == "apps/v1"
    assert body["kind"] == "Deployment"
    assert body["metadata"] == {
        "name": "shop-green",
        "namespace": NS,
        "labels": {"app": "shop", LABEL_RELEASE: "shop", LABEL_COLOR: "green"},
        "annotations": {"team": "web", ANNOTATION_COMMIT: "a" * 40, ANNOTATION_TEMPLATE_HASH: h},
        "ownerReferences": [OWNER],
    }
    spec = body["spec"]
    assert spec["replicas"] == 4
    assert spec["selector"] == {"matchLabels": {"app": "shop", LABEL_RELEASE: "shop", LABEL_COLOR: "green"}}
    assert spec["template"]["metadata"] == {
        "labels": {"app": "shop", "tier": "web", LABEL_RELEASE: "shop", LABEL_COLOR: "green"},
        "annotations": {ANNOTATION_TEMPLATE_HASH: h},
    }
    assert spec["strategy"] == {"type": "RollingUpdate"}
    assert spec["template"]["spec"] == desired.spec["template"]["spec"]


@pytest.mark.parametrize(
    ("color", "name"),
    [pytest.param(Color.BLUE, "shop-blue", id="blue"), pytest.param(Color.GREEN, "shop-green", id="green")],
)
def test_render_colour(color: Color, name: str) -> None:
    body = render(parse(MANIFEST), color=color)
    assert body["metadata"]["name"] == name
    for labels in (
        body["metadata"]["labels"],
        body["spec"]["selector"]["matchLabels"],
        body["spec"]["template"]["metadata"]["labels"],
    ):
        assert labels[LABEL_COLOR] == str(color)


def test_render_commit_stays_out_of_pod_template() -> None:
    desired = parse(MANIFEST)
    one, two = render(desired, commit="1" * 40), render(desired, commit="2" * 40)
    assert one["spec"] == two["spec"]
    assert (
        one["metadata"]["annotations"][ANNOTATION_COMMIT] != two["metadata"]["annotations"][ANNOTATION_COMMIT]
    )


def test_render_keeps_manifest_pod_annotations() -> None:
    text = variant(
        lambda d: d["spec"]["template"]["metadata"].update(annotations={"prometheus.io/scrape": "true"})
    )
    desired = parse(text)
    assert render(desired)["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        ANNOTATION_TEMPLATE_HASH: desired.template_hash,
    }


def test_render_without_owner() -> None:
    assert "ownerReferences" not in render(parse(MANIFEST), owner=None)["metadata"]


def test_render_does_not_mutate_or_share_input() -> None:
    desired = parse(MANIFEST)
    before = copy.deepcopy(desired)
    owner = owner_reference("shop", "uid")
    body = render(desired, owner=owner)
    assert desired == before
    assert owner == owner_reference("shop", "uid")
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    body["spec"]["selector"]["matchLabels"]["x"] = "y"
    body["metadata"]["labels"]["x"] = "y"
    body["metadata"]["ownerReferences"][0]["name"] = "changed"
    assert desired == before
    assert owner == owner_reference("shop", "uid")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({"replicas": -1}, ValueError, id="negative-replicas"),
        pytest.param({"replicas": True}, ValueError, id="bool-replicas"),
        pytest.param({"release": "r" * 64}, ValueError, id="release-too-long-for-label"),
        pytest.param({"color": "red"}, ValueError, id="unknown-colour"),
    ],
)
def test_render_refuses(overrides: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        render(parse(MANIFEST), **overrides)


def test_owner_reference() -> None:
    assert owner_reference("shop", "uid-1") == {
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "name": "shop",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": False,
    }
