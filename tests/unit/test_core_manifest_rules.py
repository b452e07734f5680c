"""Manifest rules at their edges (core/desired.py): the template hash pinned across versions, the limits of
nesting and of values exactly at their bound, selector expressions, and the names used in messages."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from test_desired import MANIFEST, parse

from bluegreen.core.desired import (
    HASH_LENGTH,
    ManifestError,
    hash_template,
    owner_reference,
    render_deployment,
)
from bluegreen.core.spec import Color
from bluegreen.core.yaml_docs import MAX_DEPTH, MAX_VALUES, normalize

W = "d.yaml"


def test_the_template_hash_is_pinned() -> None:
    """A changed hash after an upgrade would re-release every colour: the canonical form must not drift."""
    spec = {"replicas": 3, "template": {"spec": {"containers": [{"name": "wéb", "image": "shop:1"}]}}}
    assert hash_template(spec) == "307e510215a78c57"
    assert hash_template(spec, labels={"app": "shop"}) == "3b1bc55a6fe0ee5e"
    assert hash_template(spec, annotations={"team": "web"}) == "1214e0ff90dd31f7"
    assert len(hash_template(spec)) == HASH_LENGTH == 16
    assert hash_template(spec, labels={}, annotations={}) == hash_template(spec), "empty metadata is no metadata"
    assert hash_template(spec, labels={"a": "b"}) != hash_template(spec, annotations={"a": "b"})
    assert parse(MANIFEST).template_hash == "282354654d0ddd6e"


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("value", "problem"), [
    pytest.param(nested(MAX_DEPTH), None, id="at-the-depth-limit"),
    pytest.param(nested(MAX_DEPTH + 1), "d.yaml is nested more than 100 levels deep.", id="one-level-deeper"),
    pytest.param(["x"] * (MAX_VALUES - 1), None, id="at-the-value-limit"),
    pytest.param(["x"] * MAX_VALUES, "d.yaml expands to more than 200000 values (YAML aliases?).",
                 id="one-value-more"),
    pytest.param({1: "a"}, "d.yaml: key 1 under the top must be a string.", id="key-at-the-top"),
    pytest.param({"a": {"b": {2: "x"}}}, "d.yaml: key 2 under a.b must be a string.", id="nested-key"),
    pytest.param({"a": [1, {"b": float("nan")}]}, "d.yaml: a[1].b is nan, which JSON cannot hold.", id="nan"),
    pytest.param(b"raw", "d.yaml: the document is a bytes; only JSON values are allowed (quote it if it is meant "
                 "as text).", id="document-of-bytes"),
    pytest.param({"a": [b"x"]}, "d.yaml: a[0] is a bytes; only JSON values are allowed (quote it if it is meant "
                 "as text).", id="bytes-in-a-list"),
])
def test_normalize_limits_and_messages(value: Any, problem: str | None) -> None:
    if problem is None:
        assert normalize(value, W) == value
    else:
        with pytest.raises(ManifestError) as caught:
            normalize(value, W)
        assert caught.value.message == problem


def test_normalize_drops_nulls_in_mappings_only() -> None:
    assert normalize({"a": None, "b": [None, 1], "c": {"d": None}}, W) == {"b": [None, 1], "c": {}}


def test_a_document_nested_beyond_the_parser_is_refused() -> None:
    with pytest.raises(ManifestError) as caught:
        parse("[" * 600 + "]" * 600, path=W)  # deeper than Python's recursion limit lets PyYAML compose
    assert (caught.value.reason, caught.value.message) == ("InvalidYAML", "d.yaml is nested too deeply to be read.")


@pytest.mark.parametrize(("document", "kind"), [
    pytest.param("true", "boolean", id="boolean"), pytest.param("5", "number", id="int"),
    pytest.param("1.5", "number", id="float"), pytest.param("- a", "list", id="list"),
    pytest.param("text", "string", id="string"),
])
def test_a_document_that_is_not_an_object_is_named(document: str, kind: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse(document, path=W)
    assert caught.value.message == f"d.yaml must be an apps/v1 Deployment object, not a {kind}."


def with_expressions(*expressions: dict[str, Any]) -> str:
    doc = yaml.safe_load(MANIFEST)
    doc["spec"]["selector"]["matchExpressions"] = list(expressions)
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(("expression", "problem"), [
    pytest.param({"key": "tier", "operator": "In", "values": ["web", "api"]}, None, id="in"),
    pytest.param({"key": "tier", "operator": "In", "values": ["api"]}, "does not match", id="in-other-value"),
    pytest.param({"key": "zone", "operator": "In", "values": ["a"]}, "does not match", id="in-missing-key"),
    pytest.param({"key": "tier", "operator": "NotIn", "values": ["api"]}, None, id="not-in"),
    pytest.param({"key": "zone", "operator": "NotIn", "values": ["a"]}, None, id="not-in-missing-key"),
    pytest.param({"key": "tier", "operator": "NotIn", "values": ["web"]}, "does not match", id="not-in-its-value"),
    pytest.param({"key": "tier", "operator": "Exists"}, None, id="exists"),
    pytest.param({"key": "zone", "operator": "Exists"}, "does not match", id="exists-missing"),
    pytest.param({"key": "zone", "operator": "DoesNotExist"}, None, id="does-not-exist"),
    pytest.param({"key": "tier", "operator": "DoesNotExist"}, "does not match", id="does-not-exist-present"),
    pytest.param({"operator": "Exists"}, "spec.selector.matchExpressions[0] must be a mapping with a string key",
                 id="no-key"),
    pytest.param({"key": "tier", "operator": "In", "values": "web"},
                 "spec.selector.matchExpressions[0].values must be a list of strings", id="values-not-a-list"),
    pytest.param({"key": "tier", "operator": "In", "values": [1]},
                 "spec.selector.matchExpressions[0].values must be a list of strings", id="values-not-strings"),
    pytest.param({"key": "tier", "operator": "Exists", "values": ["web"]},
                 "spec.selector.matchExpressions[0].values must be non-empty for In/NotIn and empty for "
                 "Exists/DoesNotExist", id="exists-with-values"),
    pytest.param({"key": "tier", "operator": "Has"},
                 "spec.selector.matchExpressions[0].operator must be one of In, NotIn, Exists, DoesNotExist",
                 id="unknown-operator"),
])
def test_selector_expressions(expression: dict[str, Any], problem: str | None) -> None:
    text = with_expressions(expression)
    if problem is None:
        assert parse(text).spec["selector"]["matchExpressions"] == [expression]
        return
    with pytest.raises(ManifestError) as caught:
        parse(text, path=W)
    expected = ("d.yaml: spec.selector.matchExpressions[0] does not match spec.template.metadata.labels."
                if problem == "does not match" else f"d.yaml: {problem}.")
    assert (caught.value.reason, caught.value.message) == ("InvalidDeployment", expected)


def test_expressions_must_be_a_list() -> None:
    doc = yaml.safe_load(MANIFEST)
    doc["spec"]["selector"]["matchExpressions"] = {"key": "tier"}
    with pytest.raises(ManifestError) as caught:
        parse(yaml.safe_dump(doc), path=W)
    assert caught.value.message == "d.yaml: spec.selector.matchExpressions must be a list."


def test_a_later_expression_is_named_by_its_index() -> None:
    with pytest.raises(ManifestError) as caught:
        parse(with_expressions({"key": "tier", "operator": "Exists"}, {"key": "zone", "operator": "Exists"}), path=W)
    assert caught.value.message == "d.yaml: spec.selector.matchExpressions[1] does not match " \
                                   "spec.template.metadata.labels."


def test_render_accepts_zero_replicas_and_names_the_bad_ones() -> None:
    desired = parse(MANIFEST)
    body = render_deployment(desired, release="shop", namespace="shop", color=Color.BLUE, commit="c" * 40,
                             replicas=0, owner=None)
    assert body["spec"]["replicas"] == 0, "a scaled-down colour is rendered with 0"
    with pytest.raises(ValueError) as caught:
        render_deployment(desired, release="shop", namespace="shop", color=Color.BLUE, commit="c" * 40,
                          replicas=-1, owner=None)
    assert str(caught.value) == "replicas must be a whole number >= 0, not -1"


def test_render_copies_the_owner_deeply() -> None:
    owner = owner_reference("shop", "u-1")
    owner["extra"] = {"nested": ["x"]}
    body = render_deployment(parse(MANIFEST), release="shop", namespace="shop", color=Color.GREEN,
                             commit="c" * 40, replicas=1, owner=owner)
    owner["extra"]["nested"].append("y")
    assert body["metadata"]["ownerReferences"] == [{**owner_reference("shop", "u-1"), "extra": {"nested": ["x"]}}]


def changed(path: str, value: Any) -> str:
    """MANIFEST with the value at the dotted ``path`` replaced (or set)."""
    doc = yaml.safe_load(MANIFEST)
    *parents, leaf = path.split(".")
    node = doc
    for parent in parents:
        node = node[parent]
    node[leaf] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(("path", "value", "problem"), [
    pytest.param("metadata", "shop", "metadata must be a mapping", id="metadata"),
    pytest.param("metadata.labels", ["a"], "metadata.labels must be a mapping", id="labels"),
    pytest.param("metadata.labels.bluegreen.dev/x", "1", "metadata.labels 'bluegreen.dev/x' uses the reserved prefix "
                 "bluegreen.dev/; the operator sets those labels and annotations itself, remove it",
                 id="reserved-label"),
    pytest.param("metadata.annotations.note", 5, "metadata.annotations.note must be a string, not 5 (quote it)",
                 id="annotation-value"),
    pytest.param("spec.selector.matchLabels.app", True,
                 "spec.selector.matchLabels.app must be a string, not True (quote it)", id="match-label-value"),
    pytest.param("spec.template.metadata", "x", "spec.template.metadata must be a mapping", id="pod-metadata"),
    pytest.param("spec.template.spec", None, "spec.template.spec must be a mapping (it is missing)", id="pod-spec"),
    pytest.param("spec.template.metadata.annotations", {"a": 1},
                 "spec.template.metadata.annotations.a must be a string, not 1 (quote it)", id="pod-annotation"),
    pytest.param("spec.template.spec.containers", [{"name": "web", "image": "x"}, "sidecar"],
                 "spec.template.spec.containers[1] must be a mapping", id="container-not-a-mapping"),
])
def test_each_field_is_named_in_its_refusal(path: str, value: Any, problem: str) -> None:
    if path.count(".") > 2 and "bluegreen.dev/" in path:  # a key with dots: set it by hand
        doc = yaml.safe_load(MANIFEST)
        doc["metadata"]["labels"]["bluegreen.dev/x"] = value
        text = yaml.safe_dump(doc)
    else:
        text = changed(path, value)
    with pytest.raises(ManifestError) as caught:
        parse(text, path=W)
    assert (caught.value.reason, caught.value.message) == ("InvalidDeployment", f"d.yaml: {problem}.")


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert parse(b"\xef\xbb\xbf" + MANIFEST.encode()).replicas == 3


def test_merge_keys_and_duplicates_inside_them() -> None:
    merged = MANIFEST.replace("  strategy:\n    type: RollingUpdate\n",
                              "  strategy:\n    <<: {type: Recreate}\n")
    assert parse(merged).spec["strategy"] == {"type": "Recreate"}
    with pytest.raises(ManifestError) as caught:
        parse(MANIFEST.replace("    type: RollingUpdate\n", "    type: RollingUpdate\n    type: Recreate\n"), path=W)
    assert caught.value.message.startswith("d.yaml is not valid YAML: found duplicate key 'type'")
    assert "line 17" in caught.value.message, "the position of the duplicate is given"
