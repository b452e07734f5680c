"""Unit tests of the hand-written CRD: names, columns, structural schema, and agreement with api.py.

A small admission model (prune unknown fields, apply defaults, validate) stands in for the API
server so that the schema's rules can be checked against ReleaseSpec.from_dict without a cluster.
It knows only the keywords this CRD uses and fails on any other, so it cannot silently skip a rule.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen.core import spec as api
from bluegreen.core.spec import ReleaseSpec, SpecError

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "bluegreenreleases.bluegreen.dev.yaml"

VALUE_VALIDATIONS = ("oneOf", "anyOf", "allOf", "not")
ANNOTATION_KEYWORDS = {
    "description",
    "default",
    "format",
    "nullable",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}
CHECKED_KEYWORDS = {
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maxItems",
    "minItems",
    "minProperties",
    "maxProperties",
    "oneOf",
}
PRESERVE_UNKNOWN_AT = {"status.kopf"}


class Refused(Exception):
    """The modelled API server refused the object."""


@functools.cache
def load_crd() -> dict[str, Any]:
    """The CRD, read once (tests must not modify it)."""
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def version() -> dict[str, Any]:
    versions = load_crd()["spec"]["versions"]
    assert len(versions) == 1
    only: dict[str, Any] = versions[0]
    return only


def root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = version()["schema"]["openAPIV3Schema"]
    return schema


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = root_schema()["properties"]["spec"]
    return schema


# --- the admission model -------------------------------------------------------------------------


def prune(schema: dict[str, Any], value: Any) -> Any:
    """Drop fields the schema does not name (unless it preserves unknown fields); drop non-nullable nulls."""
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return value
        props = schema.get("properties", {})
        return {
            key: prune(props[key], item)
            for key, item in value.items()
            if key in props and (item is not None or props[key].get("nullable"))
        }
    if isinstance(value, list) and "items" in schema:
        return [prune(schema["items"], item) for item in value]
    return value


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill absent properties that have a default, recursively (as the API server does)."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for key, prop in schema["properties"].items():
            if key not in out and "default" in prop:
                out[key] = copy.deepcopy(prop["default"])
            if key in out:
                out[key] = apply_defaults(prop, out[key])
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def go_pattern(pattern: str) -> re.Pattern[str]:
    """Python equivalent of a Go (RE2) pattern: unanchored search, ``$`` only at the very end."""
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))


def validate(schema: dict[str, Any], value: Any, at: str = "") -> None:
    """Raise Refused if ``value`` breaks ``schema``; fails on keywords this model does not know."""
    unknown = set(schema) - CHECKED_KEYWORDS - ANNOTATION_KEYWORDS
    assert not unknown, f"admission model does not know {sorted(unknown)} at {at}"
    if value is None and schema.get("nullable"):
        return
    if "type" in schema and not TYPES[schema["type"]](value):
        raise Refused(f"{at}: not {schema['type']}")
    if "enum" in schema and value not in schema["enum"]:
        raise Refused(f"{at}: not in enum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            raise Refused(f"{at}: length")
        if "pattern" in schema and not go_pattern(schema["pattern"]).search(value):
            raise Refused(f"{at}: pattern")
    if isinstance(value, int) and "minimum" in schema and value < schema["minimum"]:
        raise Refused(f"{at}: minimum")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise Refused(f"{at}: maxItems")
        if len(value) < schema.get("minItems", 0):
            raise Refused(f"{at}: minItems")
        for index, item in enumerate(value):
            validate(schema["items"], item, f"{at}[{index}]")
    if isinstance(value, dict):
        if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", len(value)):
            raise Refused(f"{at}: number of properties")
        for key in schema.get("required", []):
            if key not in value:
                raise Refused(f"{at}.{key}: required")
        for key, item in value.items():
            if key in schema.get("properties", {}):
                validate(schema["properties"][key], item, f"{at}.{key}")
    if "oneOf" in schema:
        matches = 0
        for branch in schema["oneOf"]:
            try:
                validate(branch, value, at)
                matches += 1
            except Refused:
                pass
        if matches != 1:
            raise Refused(f"{at}: matches {matches} of oneOf")


def admit(spec: Any) -> Any:
    """Prune, default and validate ``spec`` as the API server would; return the stored spec."""
    stored = apply_defaults(spec_schema(), prune(spec_schema(), spec))
    validate(spec_schema(), stored, "spec")
    return stored


# --- names, columns, subresources ---------------------------------------------------------------


def test_names_and_scope() -> None:
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{api.PLURAL}.{api.GROUP}"
    spec = crd["spec"]
    assert spec["group"] == api.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": api.KIND,
        "listKind": f"{api.KIND}List",
        "plural": api.PLURAL,
        "singular": "bluegreenrelease",
        "shortNames": ["bgr"],
        "categories": ["bluegreen"],
    }


def test_single_served_storage_version_with_status_subresource() -> None:
    only = version()
    assert (only["name"], only["served"], only["storage"]) == (api.VERSION, True, True)
    assert only["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = version()["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Active", "Revision", "Phase", "Ready", "Status", "Age"]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Active"]["jsonPath"] == ".status.activeColor"
    assert by_name["Revision"]["jsonPath"] == ".status.activeRevision"
    assert by_name["Revision"].get("priority", 0) == 0
    assert by_name["Phase"]["jsonPath"] == ".status.phase"
    assert by_name["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert by_name["Status"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].message'
    assert by_name["Status"]["priority"] == 1, "the message is long: shown with -o wide"
    assert (by_name["Age"]["jsonPath"], by_name["Age"]["type"]) == (".metadata.creationTimestamp", "date")
    status_fields = root_schema()["properties"]["status"]["properties"]
    for column in columns:
        if column["jsonPath"].startswith(".status."):
            status_field = column["jsonPath"].split(".")[2].split("[")[0]
            assert status_field in status_fields, column["name"]


# --- structural schema ---------------------------------------------------------------------------


def walk(schema: dict[str, Any], at: str) -> list[str]:
    """Problems that make ``schema`` non-structural (or break this CRD's own conventions)."""
    problems: list[str] = []
    if "type" not in schema:
        problems.append(f"{at}: no type")
    if schema.get("x-kubernetes-preserve-unknown-fields") and at not in PRESERVE_UNKNOWN_AT:
        problems.append(f"{at}: preserves unknown fields")
    if "default" in schema:
        try:
            validate({k: v for k, v in schema.items() if k != "default"}, schema["default"], at)
        except Refused as exc:
            problems.append(f"{at}: default is invalid ({exc})")
    for keyword in VALUE_VALIDATIONS:
        branches = schema.get(keyword, [])
        for branch in branches if isinstance(branches, list) else [branches]:
            if set(branch) != {"required"}:
                problems.append(f"{at}.{keyword}: may only hold 'required'")
            for name in branch.get("required", []):
                if name not in schema.get("properties", {}):
                    problems.append(f"{at}.{keyword}: requires unknown property {name}")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{at}: requires unknown property {name}")
    for name, prop in schema.get("properties", {}).items():
        problems += walk(prop, f"{at}.{name}" if at else name)
    if schema.get("type") == "array":
        if "items" not in schema:
            problems.append(f"{at}: array without items")
        else:
            problems += walk(schema["items"], f"{at}[]")
    return problems


def test_schema_is_structural() -> None:
    assert walk(root_schema(), "") == []


def test_metadata_schema_restricts_only_name() -> None:
    metadata = root_schema()["properties"]["metadata"]
    assert set(metadata["properties"]) <= {"name", "generateName"}
    assert metadata["properties"]["name"]["maxLength"] == api.MAX_RELEASE_NAME_LENGTH


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        pytest.param({"type": "object", "properties": {"a": {}}}, "a: no type", id="untyped-property"),
        pytest.param({"type": "array"}, ": array without items", id="array-without-items"),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "string"}}, "oneOf": [{"type": "object"}]},
            ".oneOf: may only hold 'required'",
            id="typed-oneOf",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"a": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            },
            "a: preserves unknown fields",
            id="preserve-elsewhere",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "default": 0}}},
            "a: default is invalid",
            id="invalid-default",
        ),
    ],
)
def test_structural_check_catches(schema: dict[str, Any], problem: str) -> None:
    assert any(found.startswith(problem) for found in walk(schema, "")), walk(schema, "")


def test_status_allows_what_the_operator_writes() -> None:
    status = root_schema()["properties"]["status"]
    assert set(status["properties"]) == {
        "activeColor",
        "activeRevision",
        "awaitingPromotion",
        "checks",
        "migrations",
        "lastAttemptedRevision",
        "lastHandledReconcileAt",
        "observedGeneration",
        "phase",
        "message",
        "conditions",
        "history",
        "previewColor",
        "idleScaleDownAt",
        "kopf",
    }
    sample = {
        "activeColor": "green",
        "activeRevision": "a" * 40,
        "lastAttemptedRevision": "b" * 40,
        "lastHandledReconcileAt": "2024-01-02T03:04:05.123456Z",
        "observedGeneration": 3,
        "phase": "Idle",
        "message": "green serves a",
        "previewColor": "blue",
        "idleScaleDownAt": None,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Released",
                "message": "ok",
                "lastTransitionTime": "2024-01-02T03:04:05Z",
                "observedGeneration": 3,
            },
        ],
        "history": [
            {
                "revision": "a" * 40,
                "message": "bump",
                "author": "dev",
                "color": "green",
                "startedAt": "2024-01-02T03:04:05Z",
                "finishedAt": None,
                "outcome": "InProgress",
            },
        ],
        "migrations": [
            {
                "phase": "expand",
                "commit": "a" * 40,
                "color": "green",
                "job": "shop-expand-aaaaaaaaaa-green",
                "verdict": "Failed",
                "reason": "JobFailed",
                "message": "Job shop-expand-aaaaaaaaaa-green failed",
                "startedAt": "2024-01-02T03:04:05Z",
                "finishedAt": None,
            },
        ],
        "kopf": {"progress": {"anything": {"goes": 1}}},
    }
    assert prune(status, sample) == sample
    validate(status, sample, "status")
    with pytest.raises(Refused):
        validate(status, {"history": [{"outcome": "Maybe"}]}, "status")
    with pytest.raises(Refused):
        validate(status, {"history": [{}] * 21}, "status")
    with pytest.raises(Refused):
        validate(status, {"activeColor": "red"}, "status")
    with pytest.raises(Refused):
        validate(status, {"migrations": [{"phase": "migrate"}]}, "status")
    with pytest.raises(Refused):
        validate(status, {"conditions": [{"type": "Ready", "status": "Yes"}]}, "status")


# --- agreement with ReleaseSpec.from_dict -------------------------------------------------------

MINIMAL: dict[str, Any] = {
    "source": {"url": "https://git.example.com/team/deploy.git", "path": "apps/shop/deployment.yaml"},
    "service": "shop",
}


def test_crd_defaults_equal_from_dict_defaults() -> None:
    defaulted = admit(MINIMAL)
    assert defaulted == {
        "source": {**MINIMAL["source"], "ref": {"branch": "main"}, "interval": "30s"},
        "service": "shop",
        "scaleDownDelaySeconds": 300,
        "progressDeadlineSeconds": 600,
        "suspend": False,
        "deletionPolicy": "Orphan",
        "promotion": {"mode": "Auto"},
    }
    assert ReleaseSpec.from_dict(defaulted) == ReleaseSpec.from_dict(MINIMAL)


def with_source(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    spec["source"].update(changes)
    return spec


def with_spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(MINIMAL, id="minimal"),
        pytest.param(with_source(ref={"tag": "v1.2.3"}), id="tag"),
        pytest.param(with_source(ref={"branch": "release/1.x"}), id="branch-with-slash"),
        pytest.param(with_source(ref={"commit": "abc1234"}), id="short-commit"),
        pytest.param(
            with_source(ref={"commit": "0123456789abcdef0123456789abcdef01234567"}), id="full-commit"
        ),
        pytest.param(with_source(url="ssh://git@host/x.git"), id="ssh-url"),
        pytest.param(with_source(url="file:///srv/x.git"), id="file-url"),
        pytest.param(with_source(url="http://host/x.git"), id="http-url"),
        pytest.param(with_source(url="git://host/x.git"), id="git-url"),
        pytest.param(with_source(url="/srv/x"), id="local-path"),
        pytest.param(with_source(interval="1m30s"), id="compound-interval"),
        pytest.param(with_source(interval="1.5h"), id="fractional-interval"),
        pytest.param(with_spec(previewService="shop-preview"), id="preview-service"),
        pytest.param(with_spec(scaleDownDelaySeconds=0), id="zero-delay"),
        pytest.param(with_spec(progressDeadlineSeconds=1), id="one-second-deadline"),
        pytest.param(with_spec(suspend=True), id="suspended"),
        pytest.param(with_spec(previewService=None), id="null-preview-is-pruned"),
        pytest.param(with_spec(unknownField=1), id="unknown-field-is-pruned"),
    ],
)
def test_crd_and_from_dict_accept(spec: dict[str, Any]) -> None:
    """Both accept, and the CRD's defaulting gives what from_dict's defaulting gives."""
    stored = admit(spec)
    assert ReleaseSpec.from_dict(stored) == ReleaseSpec.from_dict(prune(spec_schema(), spec))


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({}, id="empty"),
        pytest.param(with_spec(source=None), id="no-source"),
        pytest.param(with_spec(service=None), id="no-service"),
        pytest.param(with_source(url=None), id="no-url"),
        pytest.param(with_source(url="ftp://host/x.git"), id="ftp-url"),
        pytest.param(with_source(url="host:x.git"), id="scp-like-url"),
        pytest.param(with_source(url="https://"), id="scheme-only"),
        pytest.param(with_source(path=None), id="no-path"),
        pytest.param(with_source(path=""), id="empty-path"),
        pytest.param(with_source(path="/abs.yaml"), id="absolute-path"),
        pytest.param(with_source(ref={}), id="empty-ref"),
        pytest.param(with_source(ref={"branch": "main", "tag": "v1"}), id="branch-and-tag"),
        pytest.param(with_source(ref={"tag": "v1", "commit": "abc1234"}), id="tag-and-commit"),
        pytest.param(with_source(ref={"sha": "abc1234"}), id="unknown-ref-kind"),
        pytest.param(with_source(ref={"branch": ""}), id="empty-branch"),
        pytest.param(with_source(ref={"branch": "a b"}), id="branch-with-space"),
        pytest.param(with_source(ref={"tag": "v1:2"}), id="tag-with-colon"),
        pytest.param(with_source(ref={"commit": "abc123"}), id="commit-6-digits"),
        pytest.param(with_source(ref={"commit": "ABC1234"}), id="commit-upper"),
        pytest.param(with_source(ref={"commit": "a" * 41}), id="commit-41-digits"),
        pytest.param(with_source(interval="30"), id="interval-without-unit"),
        pytest.param(with_source(interval="1d"), id="interval-days"),
        pytest.param(with_source(interval=30), id="interval-number"),
        pytest.param(with_spec(service="Shop"), id="service-upper"),
        pytest.param(with_spec(service="shop\n"), id="service-trailing-newline"),
        pytest.param(with_spec(service="s" * 64), id="service-64-chars"),
        pytest.param(with_spec(service=""), id="service-empty"),
        pytest.param(with_spec(previewService="9preview"), id="preview-digit-first"),
        pytest.param(with_spec(scaleDownDelaySeconds=-1), id="negative-delay"),
        pytest.param(with_spec(scaleDownDelaySeconds="300"), id="string-delay"),
        pytest.param(with_spec(progressDeadlineSeconds=0), id="zero-deadline"),
        pytest.param(with_spec(suspend="yes"), id="string-suspend"),
    ],
)
def test_crd_and_from_dict_refuse(spec: dict[str, Any]) -> None:
    """The API server refuses it, and so does from_dict when the server did not check."""
    with pytest.raises(Refused):
        admit(spec)
    with pytest.raises(SpecError):
        ReleaseSpec.from_dict(spec)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(with_source(interval="500ms"), id="interval-below-1s"),
        pytest.param(with_source(interval="0s"), id="zero-interval"),
        pytest.param(with_source(ref={"branch": "a..b"}), id="branch-with-dotdot"),
        pytest.param(with_source(ref={"branch": "-rf"}), id="branch-leading-dash"),
        pytest.param(with_source(path="../outside.yaml"), id="path-escapes-repository"),
        pytest.param(with_spec(previewService="shop"), id="preview-equals-service"),
    ],
)
def test_rules_only_the_operator_checks(spec: dict[str, Any]) -> None:
    """What an OpenAPI schema without CEL cannot express: admitted, then refused by from_dict."""
    stored = admit(spec)
    with pytest.raises(SpecError):
        ReleaseSpec.from_dict(stored)
