"""``spec.promotion`` and ``spec.checks``: defaults, refusals with what to fix, and agreement with the CRD
schema (through the admission model of test_crd.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_crd import MINIMAL, Refused, admit

from bluegreen.core.checks import CheckSpec, Hook, HttpProbe, JobProbe
from bluegreen.core.spec import ReleaseSpec, SpecError, parse_spec


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    spec.update(changes)
    return spec


SMOKE = {"name": "smoke", "http": {"service": "shop-preview", "path": "/healthz"}}
FULL = spec_with(promotion={"mode": "Manual"}, checks={
    "prePromotion": [
        {"name": "smoke", "http": {"url": "http://shop-preview.shop.svc/healthz", "expectStatus": 200,
                                   "bodyContains": "ok"}, "timeoutSeconds": 5, "attempts": 3},
        {"name": "e2e", "job": {"path": "checks/smoke-job.yaml"}, "timeoutSeconds": 300},
    ],
    "postPromotion": [{"name": "healthz", "http": {"service": "shop", "path": "/healthz"}, "intervalSeconds": 5,
                       "durationSeconds": 60}],
})


def test_the_issue_s_example_parses_with_defaults() -> None:
    spec = ReleaseSpec.from_dict(FULL)
    assert spec.promotion_mode == "Manual"
    assert spec.pre_promotion == (
        CheckSpec("smoke", Hook.PRE_PROMOTION,
                  http=HttpProbe(url="http://shop-preview.shop.svc/healthz", expect_status=200, body_contains="ok"),
                  timeout_seconds=5, attempts=3, interval_seconds=1),
        CheckSpec("e2e", Hook.PRE_PROMOTION, job=JobProbe("checks/smoke-job.yaml"), timeout_seconds=300,
                  interval_seconds=1),
    )
    assert spec.post_promotion == (
        CheckSpec("healthz", Hook.POST_PROMOTION, http=HttpProbe(service="shop", path="/healthz"),
                  timeout_seconds=10, interval_seconds=5, duration_seconds=60),
    )


@pytest.mark.parametrize(("hook", "kind", "timeout", "interval"), [
    ("prePromotion", "http", 10, 1), ("prePromotion", "job", 600, 1),
    ("postPromotion", "http", 10, 5), ("postPromotion", "job", 600, 5),
])
def test_defaults_per_kind_and_hook(hook: str, kind: str, timeout: float, interval: float) -> None:
    probe = {"http": {"service": "shop"}} if kind == "http" else {"job": {"path": "j.yaml"}}
    spec = ReleaseSpec.from_dict(spec_with(checks={hook: [{"name": "c", **probe}]}))
    [check] = spec.pre_promotion or spec.post_promotion
    assert (check.timeout_seconds, check.interval_seconds, check.attempts, check.duration_seconds) == \
        (timeout, interval, 1, 0)
    assert check.hook == Hook(hook)


def test_no_checks_and_auto_by_default() -> None:
    spec = ReleaseSpec.from_dict(MINIMAL)
    assert (spec.promotion_mode, spec.pre_promotion, spec.post_promotion) == ("Auto", (), ())


def checks(*items: Any, hook: str = "prePromotion") -> dict[str, Any]:
    return spec_with(checks={hook: list(items)})


REFUSED = [
    pytest.param(spec_with(promotion={"mode": "Later"}), "spec.promotion.mode",
                 "must be one of Auto, Manual, not 'Later'", True, id="mode-unknown"),
    pytest.param(spec_with(checks={"during": []}), "spec.checks.during",
                 "unknown field (known: postPromotion, prePromotion)", None, id="hook-unknown"),
    pytest.param(checks({"name": "Smoke", "http": {"service": "s"}}), "spec.checks.prePromotion[0].name",
                 "'Smoke' must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending "
                 "with a letter or digit", True, id="name-not-dns"),
    pytest.param(checks(SMOKE, SMOKE), "spec.checks.prePromotion[1].name",
                 "'smoke' is used by another prePromotion check", False, id="name-twice"),
    pytest.param(checks({"name": "x"}), "spec.checks.prePromotion[0]",
                 "set exactly one of http or job (got: none)", True, id="neither-http-nor-job"),
    pytest.param(checks({"name": "x", "http": {"service": "s"}, "job": {"path": "j.yaml"}}),
                 "spec.checks.prePromotion[0]", "set exactly one of http or job (got: http, job)", True, id="both"),
    pytest.param(checks({"name": "x", "http": {}}), "spec.checks.prePromotion[0].http",
                 "set exactly one of url or service", True, id="http-empty"),
    pytest.param(checks({"name": "x", "http": {"url": "ftp://h/"}}), "spec.checks.prePromotion[0].http.url",
                 "'ftp://h/' must be an http:// or https:// URL with a host", True, id="url-scheme"),
    pytest.param(checks({"name": "x", "http": {"url": "http://h/", "port": 80}}),
                 "spec.checks.prePromotion[0].http.port", "goes with service only (put it in the url)", False,
                 id="port-with-url"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "port": 70000}}),
                 "spec.checks.prePromotion[0].http.port", "70000 must be at most 65535", False, id="port-too-big"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "path": "healthz"}}),
                 "spec.checks.prePromotion[0].http.path", "'healthz' must start with /", True, id="path-relative"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "expectStatus": 42}}),
                 "spec.checks.prePromotion[0].http.expectStatus", "42 must be at least 100", True, id="status-low"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "expectStatus": 600}}),
                 "spec.checks.prePromotion[0].http.expectStatus", "600 must be an HTTP status (100 to 599)", False,
                 id="status-high"),
    pytest.param(checks({"name": "x", "job": {"path": "/etc/job.yaml"}}), "spec.checks.prePromotion[0].job.path",
                 "'/etc/job.yaml' must be relative to the repository root, without '..'", True, id="job-absolute"),
    pytest.param(checks({"name": "x", "job": {"path": "a/../../job.yaml"}}), "spec.checks.prePromotion[0].job.path",
                 "'a/../../job.yaml' must be relative to the repository root, without '..'", False, id="job-dotdot"),
    pytest.param(checks({"name": "x", "job": {"path": "j.yaml"}, "attempts": 3}),
                 "spec.checks.prePromotion[0].attempts",
                 "applies to http checks only (a Job retries by its backoffLimit)", False, id="attempts-on-job"),
    pytest.param(checks({"name": "x", "http": {"service": "s"}, "durationSeconds": 5}),
                 "spec.checks.prePromotion[0].durationSeconds",
                 "unknown field (known: attempts, http, intervalSeconds, job, name, timeoutSeconds)", None,
                 id="duration-before-the-switch"),
    pytest.param(checks({"name": "x", "http": {"service": "s"}, "timeoutSeconds": 0}),
                 "spec.checks.prePromotion[0].timeoutSeconds", "0 must be at least 1", True, id="timeout-zero"),
    pytest.param(checks({"name": "x", "http": {"service": "s"}, "intervalSeconds": 0}, hook="postPromotion"),
                 "spec.checks.postPromotion[0].intervalSeconds", "0 must be at least 1", True, id="interval-zero"),
    pytest.param(checks({"name": "x", "http": {"service": "s"}, "durationSeconds": -1}, hook="postPromotion"),
                 "spec.checks.postPromotion[0].durationSeconds", "-1 must be at least 0", True, id="duration-negative"),
    pytest.param(spec_with(checks={"prePromotion": {"name": "x"}}), "spec.checks.prePromotion", "must be a list",
                 True, id="hook-not-a-list"),
    pytest.param(spec_with(promotion="Manual"), "spec.promotion", "must be an object", True, id="promotion-string"),
    pytest.param(checks({"name": "x", "http": "http://h/"}), "spec.checks.prePromotion[0].http", "must be an object",
                 True, id="http-string"),
    pytest.param(checks({"name": "x", "job": {}}), "spec.checks.prePromotion[0].job.path",
                 "is required and must be a non-empty string", True, id="job-path-missing"),
    pytest.param(checks({"name": "x", "job": {"path": 5}}), "spec.checks.prePromotion[0].job.path",
                 "is required and must be a non-empty string", True, id="job-path-number"),
    pytest.param(checks({"name": "x", "job": "j.yaml"}), "spec.checks.prePromotion[0].job", "must be an object", True,
                 id="job-string"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "bodyContains": 5}}),
                 "spec.checks.prePromotion[0].http.bodyContains", "must be a non-empty string", True,
                 id="body-number"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "bodyContains": ""}}),
                 "spec.checks.prePromotion[0].http.bodyContains", "must be a non-empty string", True, id="body-empty"),
    pytest.param(checks({"name": "x", "http": {"service": "s" * 64}}), "spec.checks.prePromotion[0].http.service",
                 f"{'s' * 64!r} must be the name of a Service (DNS-1035 label)", True, id="service-too-long"),
    pytest.param(checks({"name": "x", "http": {"service": 5}}), "spec.checks.prePromotion[0].http.service",
                 "5 must be the name of a Service (DNS-1035 label)", True, id="service-number"),
    pytest.param(checks({"name": "x", "http": {"service": "Shop"}}), "spec.checks.prePromotion[0].http.service",
                 "'Shop' must be the name of a Service (DNS-1035 label)", True, id="service-not-dns"),
    pytest.param(checks({"name": "a" * 64, "http": {"service": "s"}}), "spec.checks.prePromotion[0].name",
                 f"{'a' * 64!r} must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and "
                 "ending with a letter or digit", True, id="name-too-long"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "port": 65536}}),
                 "spec.checks.prePromotion[0].http.port", "65536 must be at most 65535", False, id="port-65536"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "port": 0}}),
                 "spec.checks.prePromotion[0].http.port", "0 must be at least 1", True, id="port-zero"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "port": "80"}}),
                 "spec.checks.prePromotion[0].http.port", "'80' must be an integer", True, id="port-string"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "port": True}}),
                 "spec.checks.prePromotion[0].http.port", "True must be an integer", True, id="port-bool"),
    pytest.param(checks({"name": "x", "http": {"service": "s", "expectStatus": "200"}}),
                 "spec.checks.prePromotion[0].http.expectStatus", "'200' must be an integer", True,
                 id="status-string"),
    pytest.param(checks({"name": "x", "http": {"service": "s"}, "attempts": "3"}),
                 "spec.checks.prePromotion[0].attempts", "'3' must be an integer", True, id="attempts-string"),
    pytest.param(checks({"name": "x", "http": {"url": "http://h/", "path": "/x"}}),
                 "spec.checks.prePromotion[0].http.path", "goes with service only (put it in the url)", False,
                 id="path-with-url"),
]


@pytest.mark.parametrize(("spec", "field", "problem", "schema_refuses"), REFUSED)
def test_each_refusal_says_what_to_fix_and_the_schema_agrees(spec: dict[str, Any], field: str, problem: str,
                                                             schema_refuses: bool | None) -> None:
    """``schema_refuses``: True, the API server refuses it too; False, it stores it and the operator reports
    InvalidSpec; None, it drops the unknown field (the stored spec is valid)."""
    error = parse_spec(spec)
    assert isinstance(error, SpecError)
    assert (error.reason, error.field, error.problem) == ("InvalidSpec", field, problem)
    if schema_refuses is None:
        assert isinstance(parse_spec(admit(spec)), ReleaseSpec)
    elif schema_refuses:
        with pytest.raises(Refused):
            admit(spec)
    else:  # what a schema cannot say: the operator reports it as InvalidSpec
        assert isinstance(parse_spec(admit(spec)), SpecError)


def test_the_limits_themselves_are_accepted() -> None:
    spec = ReleaseSpec.from_dict(spec_with(promotion={}, checks={"prePromotion": [
        {"name": "a" * 63, "http": {"service": "s" * 63, "port": 65535, "expectStatus": 599}},
        {"name": "b", "http": {"service": "s", "port": 1, "expectStatus": 100}}]}))
    assert spec.promotion_mode == "Auto"
    first, second = spec.pre_promotion
    assert first.name == "a" * 63 and first.http == HttpProbe(service="s" * 63, port=65535, expect_status=599)
    assert second.http == HttpProbe(service="s", port=1, expect_status=100)


def test_the_schema_defaults_equal_the_parser_s() -> None:
    stored = admit(FULL)
    assert stored["checks"]["prePromotion"][0]["attempts"] == 3
    assert stored["checks"]["postPromotion"][0]["intervalSeconds"] == 5
    assert ReleaseSpec.from_dict(stored) == ReleaseSpec.from_dict(FULL)
    bare = admit(checks(SMOKE, hook="postPromotion"))
    assert bare["checks"]["postPromotion"][0] == {**SMOKE, "attempts": 1, "intervalSeconds": 5, "durationSeconds": 0}
    assert ReleaseSpec.from_dict(bare) == ReleaseSpec.from_dict(checks(SMOKE, hook="postPromotion"))
