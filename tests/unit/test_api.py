"""Unit tests of bluegreen.core.spec: constants, colours, durations and spec parsing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bluegreen.core import spec as api
from bluegreen.core.spec import Color, GitRef, ReleaseSpec, SourceSpec, SpecError

DELETE = object()
"""Marker for spec_with: remove the key."""

MINIMAL: dict[str, Any] = {
    "source": {"url": "https://git.example.com/team/deploy.git", "path": "apps/shop/deployment.yaml"},
    "service": "shop",
}


def spec_with(**changes: Any) -> dict[str, Any]:
    """MINIMAL with dotted-path changes; a value of ``DELETE`` removes the key."""
    spec = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = spec
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("GROUP", "bluegreen.dev", id="group"),
        pytest.param("VERSION", "v1alpha1", id="version"),
        pytest.param("PLURAL", "bluegreenreleases", id="plural"),
        pytest.param("KIND", "BlueGreenRelease", id="kind"),
        pytest.param("LABEL_RELEASE", "bluegreen.dev/release", id="label-release"),
        pytest.param("LABEL_COLOR", "bluegreen.dev/color", id="label-color"),
        pytest.param("ANNOTATION_COMMIT", "bluegreen.dev/commit", id="annotation-commit"),
        pytest.param("ANNOTATION_TEMPLATE_HASH", "bluegreen.dev/template-hash", id="annotation-hash"),
        pytest.param("ANNOTATION_RECONCILE_AT", "bluegreen.dev/reconcile-at", id="annotation-reconcile"),
        pytest.param("FIELD_MANAGER", "bluegreen-operator", id="field-manager"),
    ],
)
def test_pinned_constants(name: str, expected: str) -> None:
    assert getattr(api, name) == expected


@pytest.mark.parametrize(
    ("color", "other", "text"),
    [
        pytest.param(Color.BLUE, Color.GREEN, "blue", id="blue"),
        pytest.param(Color.GREEN, Color.BLUE, "green", id="green"),
    ],
)
def test_color(color: Color, other: Color, text: str) -> None:
    assert color.other is other
    assert color.other.other is color
    assert f"{color}" == text
    assert Color(text) is color


@pytest.mark.parametrize(
    ("release", "color", "expected"),
    [
        pytest.param("shop", Color.BLUE, "shop-blue", id="blue"),
        pytest.param("shop", Color.GREEN, "shop-green", id="green"),
    ],
)
def test_deployment_name(release: str, color: Color, expected: str) -> None:
    assert api.deployment_name(release, color) == expected


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        pytest.param("shop", True, id="short"),
        pytest.param("a" * 63, True, id="63-chars"),
        pytest.param("a" * 64, False, id="64-chars"),
        pytest.param("", False, id="empty"),
    ],
)
def test_check_release_name(name: str, ok: bool) -> None:
    if ok:
        api.check_release_name(name)
    else:
        with pytest.raises(SpecError, match=r"metadata\.name"):
            api.check_release_name(name)


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        pytest.param(GitRef("branch", "main"), "branch main", id="branch"),
        pytest.param(GitRef("tag", "v1.2.3"), "tag v1.2.3", id="tag"),
        pytest.param(GitRef("commit", "abc1234"), "commit abc1234", id="commit"),
    ],
)
def test_gitref_describe(ref: GitRef, text: str) -> None:
    assert ref.describe() == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("1m30s", 90.0, id="compound"),
        pytest.param("1h2m3s", 3723.0, id="three-units"),
        pytest.param("1.5s", 1.5, id="fraction"),
        pytest.param("1500ms", 1.5, id="milliseconds"),
        pytest.param("2m500ms", 120.5, id="minutes-and-ms"),
        pytest.param("0s", 0.0, id="zero"),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert api.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("30", id="no-unit"),
        pytest.param("s", id="no-number"),
        pytest.param("1d", id="days"),
        pytest.param("-1s", id="negative"),
        pytest.param("1.s", id="dangling-dot"),
        pytest.param("30S", id="upper-case"),
        pytest.param("30 s", id="inner-space"),
        pytest.param(" 30s", id="leading-space"),
        pytest.param("30s\n", id="trailing-newline"),
        pytest.param("1us", id="microseconds"),
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        api.parse_duration(text)


def test_from_dict_minimal_applies_defaults() -> None:
    assert ReleaseSpec.from_dict(MINIMAL) == ReleaseSpec(
        source=SourceSpec(
            url="https://git.example.com/team/deploy.git",
            ref=GitRef("branch", "main"),
            path="apps/shop/deployment.yaml",
            interval_seconds=30.0,
        ),
        service="shop",
        preview_service=None,
        scale_down_delay_seconds=300,
        progress_deadline_seconds=600,
        suspend=False,
    )


def test_from_dict_full() -> None:
    spec = {
        "source": {
            "url": "ssh://git@git.example.com/team/deploy.git",
            "ref": {"tag": "v1.2.3"},
            "path": "apps/shop/deployment.yaml",
            "interval": "1m30s",
        },
        "service": "shop",
        "previewService": "shop-preview",
        "scaleDownDelaySeconds": 0,
        "progressDeadlineSeconds": 1,
        "suspend": True,
        "deletionPolicy": "Delete",
    }
    assert ReleaseSpec.from_dict(spec) == ReleaseSpec(
        source=SourceSpec(
            url="ssh://git@git.example.com/team/deploy.git",
            ref=GitRef("tag", "v1.2.3"),
            path="apps/shop/deployment.yaml",
            interval_seconds=90.0,
        ),
        service="shop",
        preview_service="shop-preview",
        scale_down_delay_seconds=0,
        progress_deadline_seconds=1,
        suspend=True,
        deletion_policy="Delete",
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"source__ref": {"branch": "release/2024"}}, GitRef("branch", "release/2024"), id="branch"
        ),
        pytest.param({"source__ref": {"tag": "v1.0"}}, GitRef("tag", "v1.0"), id="tag"),
        pytest.param({"source__ref": {"commit": "abc1234"}}, GitRef("commit", "abc1234"), id="short-commit"),
        pytest.param({"source__ref": {"commit": "a" * 40}}, GitRef("commit", "a" * 40), id="full-commit"),
        pytest.param({"source__ref": None}, GitRef("branch", "main"), id="null-ref-defaults"),
    ],
)
def test_from_dict_refs(changes: dict[str, Any], expected: GitRef) -> None:
    assert ReleaseSpec.from_dict(spec_with(**changes)).source.ref == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://git.example.com/team/deploy.git", id="https"),
        pytest.param("ssh://git@git.example.com:2222/team/deploy.git", id="ssh"),
        pytest.param("file:///srv/git/deploy.git", id="file"),
        pytest.param("http://127.0.0.1:8080/deploy.git", id="http"),
        pytest.param("git://127.0.0.1/deploy.git", id="git-daemon"),
        pytest.param("/srv/git/deploy", id="local-path"),
    ],
)
def test_from_dict_urls(url: str) -> None:
    assert ReleaseSpec.from_dict(spec_with(source__url=url)).source.url == url


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param([], "spec", id="spec-not-object"),
        pytest.param(spec_with(source=DELETE), "spec.source", id="source-missing"),
        pytest.param(spec_with(source="x"), "spec.source", id="source-not-object"),
        pytest.param(spec_with(source__url=DELETE), "spec.source.url", id="url-missing"),
        pytest.param(spec_with(source__url=""), "spec.source.url", id="url-empty"),
        pytest.param(spec_with(source__url="ftp://x/y.git"), "spec.source.url", id="url-ftp"),
        pytest.param(spec_with(source__url="git@host:team/x.git"), "spec.source.url", id="url-scp-like"),
        pytest.param(spec_with(source__url="relative/dir"), "spec.source.url", id="url-relative"),
        pytest.param(spec_with(source__url="https://"), "spec.source.url", id="url-scheme-only"),
        pytest.param(spec_with(source__path=DELETE), "spec.source.path", id="path-missing"),
        pytest.param(spec_with(source__path=""), "spec.source.path", id="path-empty"),
        pytest.param(spec_with(source__path="/etc/passwd"), "spec.source.path", id="path-absolute"),
        pytest.param(spec_with(source__path="../x.yaml"), "spec.source.path", id="path-dotdot"),
        pytest.param(spec_with(source__interval="30"), "spec.source.interval", id="interval-no-unit"),
        pytest.param(spec_with(source__interval=30), "spec.source.interval", id="interval-number"),
        pytest.param(spec_with(source__interval="500ms"), "spec.source.interval", id="interval-below-1s"),
        pytest.param(spec_with(source__interval="0s"), "spec.source.interval", id="interval-zero"),
        pytest.param(spec_with(source__ref={}), "spec.source.ref", id="ref-empty"),
        pytest.param(spec_with(source__ref="main"), "spec.source.ref", id="ref-string"),
        pytest.param(
            spec_with(source__ref={"branch": "main", "tag": "v1"}), "spec.source.ref", id="ref-two-kinds"
        ),
        pytest.param(spec_with(source__ref={"sha": "abc1234"}), "spec.source.ref.sha", id="ref-unknown-kind"),
        pytest.param(spec_with(source__ref={"commit": "abc12"}), "spec.source.ref.commit", id="commit-short"),
        pytest.param(
            spec_with(source__ref={"commit": "ABC1234"}), "spec.source.ref.commit", id="commit-upper"
        ),
        pytest.param(spec_with(source__ref={"commit": "a" * 41}), "spec.source.ref.commit", id="commit-long"),
        pytest.param(
            spec_with(source__ref={"commit": "xyz1234"}), "spec.source.ref.commit", id="commit-not-hex"
        ),
        pytest.param(spec_with(source__ref={"branch": ""}), "spec.source.ref.branch", id="branch-empty"),
        pytest.param(spec_with(source__ref={"branch": 1}), "spec.source.ref.branch", id="branch-number"),
        pytest.param(spec_with(source__ref={"branch": "a b"}), "spec.source.ref.branch", id="branch-space"),
        pytest.param(spec_with(source__ref={"branch": "a..b"}), "spec.source.ref.branch", id="branch-dotdot"),
        pytest.param(spec_with(source__ref={"branch": "-x"}), "spec.source.ref.branch", id="branch-dash"),
        pytest.param(spec_with(source__ref={"branch": "x.lock"}), "spec.source.ref.branch", id="branch-lock"),
        pytest.param(spec_with(source__ref={"tag": "v1~1"}), "spec.source.ref.tag", id="tag-tilde"),
        pytest.param(spec_with(source__ref={"tag": "a/"}), "spec.source.ref.tag", id="tag-trailing-slash"),
        pytest.param(spec_with(source__ref={"tag": "@"}), "spec.source.ref.tag", id="tag-at"),
        pytest.param(spec_with(source__extra=1), "spec.source.extra", id="source-unknown-field"),
        pytest.param(spec_with(service=DELETE), "spec.service", id="service-missing"),
        pytest.param(spec_with(service="Shop"), "spec.service", id="service-upper"),
        pytest.param(spec_with(service="1shop"), "spec.service", id="service-digit-first"),
        pytest.param(spec_with(service="shop-"), "spec.service", id="service-dash-last"),
        pytest.param(spec_with(service="s" * 64), "spec.service", id="service-too-long"),
        pytest.param(spec_with(service="shop\n"), "spec.service", id="service-newline"),
        pytest.param(spec_with(previewService="a.b"), "spec.previewService", id="preview-dot"),
        pytest.param(spec_with(previewService="shop"), "spec.previewService", id="preview-equals-service"),
        pytest.param(spec_with(scaleDownDelaySeconds=-1), "spec.scaleDownDelaySeconds", id="delay-negative"),
        pytest.param(spec_with(scaleDownDelaySeconds="5"), "spec.scaleDownDelaySeconds", id="delay-string"),
        pytest.param(spec_with(scaleDownDelaySeconds=True), "spec.scaleDownDelaySeconds", id="delay-bool"),
        pytest.param(spec_with(scaleDownDelaySeconds=1.5), "spec.scaleDownDelaySeconds", id="delay-float"),
        pytest.param(
            spec_with(progressDeadlineSeconds=0), "spec.progressDeadlineSeconds", id="deadline-zero"
        ),
        pytest.param(spec_with(suspend="false"), "spec.suspend", id="suspend-string"),
        pytest.param(spec_with(suspend=0), "spec.suspend", id="suspend-int"),
        pytest.param(spec_with(deletionPolicy="Cascade"), "spec.deletionPolicy", id="deletion-policy-unknown"),
        pytest.param(spec_with(replicas=3), "spec.replicas", id="unknown-field"),
    ],
)
def test_from_dict_refuses(spec: Any, field: str) -> None:
    with pytest.raises(SpecError) as info:
        ReleaseSpec.from_dict(spec)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_from_dict_does_not_mutate_input() -> None:
    spec = spec_with(source__ref={"tag": "v1"})
    before = copy.deepcopy(spec)
    ReleaseSpec.from_dict(spec)
    assert spec == before


def test_spec_error_is_value_error() -> None:
    error = SpecError("spec.service", "is required")
    assert isinstance(error, ValueError)
    assert (error.field, error.problem, str(error)) == (
        "spec.service",
        "is required",
        "spec.service: is required",
    )
