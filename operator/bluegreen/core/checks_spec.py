"""``spec.promotion`` and ``spec.checks`` of a BlueGreenRelease: parsed and validated as the CRD schema does,
plus what a schema cannot say (unique names, the ``http`` fields that go together, relative Job paths). Pure.

Called by ``ReleaseSpec.from_dict``; raises ``SpecError`` naming the first offending field.
"""

from __future__ import annotations

import re

from bluegreen.core.checks import CheckSpec, Hook, HttpProbe, JobProbe
from bluegreen.core.spec_fields import SpecError, int_field, known_mapping

PROMOTION_MODES = ("Auto", "Manual")
DEFAULT_HTTP_TIMEOUT_SECONDS = 10
DEFAULT_JOB_TIMEOUT_SECONDS = 600
DEFAULT_INTERVAL_SECONDS = {Hook.PRE_PROMOTION: 1, Hook.POST_PROMOTION: 5}
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CHECK_FIELDS = {"name", "http", "job", "timeoutSeconds", "attempts", "intervalSeconds"}


def parse_promotion_mode(value: object) -> str:
    """``spec.promotion``: ``{mode: Auto|Manual}`` (default Auto)."""
    if value is None:
        return "Auto"
    promotion = known_mapping(value, "spec.promotion", {"mode"})
    mode = promotion.get("mode", "Auto")
    if mode not in PROMOTION_MODES:
        raise SpecError("spec.promotion.mode", f"must be one of {', '.join(PROMOTION_MODES)}, not {mode!r}")
    return str(mode)


def parse_checks(value: object) -> tuple[tuple[CheckSpec, ...], tuple[CheckSpec, ...]]:
    """``spec.checks``: (prePromotion, postPromotion) checks in spec order."""
    if value is None:
        return (), ()
    checks = known_mapping(value, "spec.checks", {str(Hook.PRE_PROMOTION), str(Hook.POST_PROMOTION)})
    return (_parse_hook(checks.get(str(Hook.PRE_PROMOTION)), Hook.PRE_PROMOTION),
            _parse_hook(checks.get(str(Hook.POST_PROMOTION)), Hook.POST_PROMOTION))


def _parse_hook(value: object, hook: Hook) -> tuple[CheckSpec, ...]:
    field = f"spec.checks.{hook}"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(field, "must be a list")
    parsed: list[CheckSpec] = []
    for index, item in enumerate(value):
        check = _parse_check(item, hook, f"{field}[{index}]")
        if any(other.name == check.name for other in parsed):
            raise SpecError(f"{field}[{index}].name", f"{check.name!r} is used by another {hook} check")
        parsed.append(check)
    return tuple(parsed)


def _parse_check(value: object, hook: Hook, field: str) -> CheckSpec:
    known = _CHECK_FIELDS | ({"durationSeconds"} if hook is Hook.POST_PROMOTION else set())
    item = known_mapping(value, field, known)
    name = item.get("name")
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL_RE.fullmatch(name):
        raise SpecError(f"{field}.name", f"{name!r} must be a DNS-1123 label: at most 63 lowercase letters, digits "
                                         "or '-', starting and ending with a letter or digit")
    kinds = [kind for kind in ("http", "job") if kind in item]
    if len(kinds) != 1:
        raise SpecError(field, f"set exactly one of http or job (got: {', '.join(kinds) or 'none'})")
    http = _parse_http(item["http"], f"{field}.http") if "http" in item else None
    job = _parse_job(item["job"], f"{field}.job") if "job" in item else None
    if job is not None and item.get("attempts", 1) != 1:
        raise SpecError(f"{field}.attempts", "applies to http checks only (a Job retries by its backoffLimit)")
    default_timeout = DEFAULT_HTTP_TIMEOUT_SECONDS if http is not None else DEFAULT_JOB_TIMEOUT_SECONDS
    return CheckSpec(
        name=name, hook=hook, http=http, job=job,
        timeout_seconds=float(int_field(item.get("timeoutSeconds"), f"{field}.timeoutSeconds",
                                        default=default_timeout, minimum=1)),
        attempts=int_field(item.get("attempts"), f"{field}.attempts", default=1, minimum=1),
        interval_seconds=float(int_field(item.get("intervalSeconds"), f"{field}.intervalSeconds",
                                         default=DEFAULT_INTERVAL_SECONDS[hook], minimum=1)),
        duration_seconds=float(int_field(item.get("durationSeconds"), f"{field}.durationSeconds",
                                         default=0, minimum=0)),
    )


def _parse_http(value: object, field: str) -> HttpProbe:
    http = known_mapping(value, field, {"url", "service", "port", "path", "expectStatus", "bodyContains"})
    url, service = http.get("url"), http.get("service")
    if (url is None) == (service is None):
        raise SpecError(field, "set exactly one of url or service")
    if url is not None:
        if not isinstance(url, str) or not re.match(r"^https?://[^/?#\s]+", url):
            raise SpecError(f"{field}.url", f"{url!r} must be an http:// or https:// URL with a host")
        for extra in ("port", "path"):
            if extra in http:
                raise SpecError(f"{field}.{extra}", "goes with service only (put it in the url)")
    if service is not None and (not isinstance(service, str) or len(service) > 63
                                or not DNS1035_RE.fullmatch(service)):
        raise SpecError(f"{field}.service", f"{service!r} must be the name of a Service (DNS-1035 label)")
    port = http.get("port")
    if port is not None:
        port = int_field(port, f"{field}.port", default=0, minimum=1)
        if port > 65535:
            raise SpecError(f"{field}.port", f"{port} must be at most 65535")
    path = http.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise SpecError(f"{field}.path", f"{path!r} must start with /")
    status = http.get("expectStatus")
    if status is not None:
        status = int_field(status, f"{field}.expectStatus", default=0, minimum=100)
        if status > 599:
            raise SpecError(f"{field}.expectStatus", f"{status} must be an HTTP status (100 to 599)")
    body = http.get("bodyContains")
    if body is not None and (not isinstance(body, str) or not body):
        raise SpecError(f"{field}.bodyContains", "must be a non-empty string")
    return HttpProbe(url=url, service=service, port=port, path=path, expect_status=status, body_contains=body)


def _parse_job(value: object, field: str) -> JobProbe:
    job = known_mapping(value, field, {"path"})
    path = job.get("path")
    if not isinstance(path, str) or not path:
        raise SpecError(f"{field}.path", "is required and must be a non-empty string")
    if path.startswith("/") or ".." in path.split("/"):
        raise SpecError(f"{field}.path", f"{path!r} must be relative to the repository root, without '..'")
    return JobProbe(path=path)
