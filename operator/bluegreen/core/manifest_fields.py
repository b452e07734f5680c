"""Field rules shared by the objects a release's source may hold (pure): mappings, string maps, the reserved
``bluegreen.dev/`` keys, object names, label selector requirements. Each refusal is a ``ManifestError`` with
the caller's ``reason`` (``InvalidDeployment``, ``InvalidConfigMap``...) and a message ``<where>: <problem>.``
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from bluegreen.core.spec import RESERVED_PREFIX
from bluegreen.core.yaml_docs import ManifestError

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
MAX_OBJECT_NAME_LENGTH = 253
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

INVALID_DEPLOYMENT = "InvalidDeployment"


def invalid(where: str, problem: str, reason: str = INVALID_DEPLOYMENT) -> NoReturn:
    raise ManifestError(reason, f"{where}: {problem}.")


def mapping(value: object, name: str, where: str, reason: str = INVALID_DEPLOYMENT) -> dict[str, Any]:
    if not isinstance(value, dict):
        invalid(where, f"{name} must be a mapping" + (" (it is missing)" if value is None else ""), reason)
    return value


def string_map(value: object, name: str, where: str, reason: str = INVALID_DEPLOYMENT) -> dict[str, str]:
    result = mapping(value, name, where, reason)
    for key, item in result.items():
        if not isinstance(item, str):
            invalid(where, f"{name}.{key} must be a string, not {item!r} (quote it)", reason)
    return result


def check_reserved(keys: Mapping[str, str], name: str, where: str, reason: str = INVALID_DEPLOYMENT) -> None:
    for key in keys:
        if key.startswith(RESERVED_PREFIX):
            invalid(where, f"{name} {key!r} uses the reserved prefix {RESERVED_PREFIX}; the operator sets those "
                           "labels and annotations itself, remove it", reason)


def object_name(metadata: Mapping[str, Any], where: str, reason: str, *, suffix: int) -> str:
    """``metadata.name``, a DNS subdomain short enough to take a suffix of ``suffix`` characters."""
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        invalid(where, "metadata.name must be a non-empty string", reason)
    limit = MAX_OBJECT_NAME_LENGTH - suffix
    if len(name) > limit or not _DNS1123_SUBDOMAIN_RE.match(name):
        invalid(where, f"metadata.name {name!r} must be a DNS subdomain (lower-case letters, digits, '-' and '.') "
                       f"of at most {limit} characters (the operator appends the colour)", reason)
    return name


def expression_matches(expression: object, labels: Mapping[str, str], at: str, where: str,
                       reason: str = INVALID_DEPLOYMENT) -> bool:
    """Evaluate one label selector requirement against ``labels``."""
    if not isinstance(expression, dict) or not isinstance(expression.get("key"), str):
        invalid(where, f"{at} must be a mapping with a string key", reason)
    expr: dict[str, Any] = expression
    operator: object = expr.get("operator")
    values: object = expr.get("values", [])
    if operator not in SELECTOR_OPERATORS:
        invalid(where, f"{at}.operator must be one of {', '.join(SELECTOR_OPERATORS)}", reason)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        invalid(where, f"{at}.values must be a list of strings", reason)
    if (operator in ("In", "NotIn")) != bool(values):
        invalid(where, f"{at}.values must be non-empty for In/NotIn and empty for Exists/DoesNotExist", reason)
    key: str = expr["key"]
    if key.startswith(RESERVED_PREFIX):
        invalid(where, f"{at}.key {key!r} uses the reserved prefix {RESERVED_PREFIX}; remove it", reason)
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return (key in labels) == (operator == "Exists")


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str], name: str, where: str,
                     reason: str = INVALID_DEPLOYMENT) -> str | None:
    """Check a label selector (``matchLabels`` + ``matchExpressions``) at ``name``: None when it selects
    ``labels``, else what does not match. A selector without any requirement is refused."""
    match_labels = string_map(selector.get("matchLabels", {}), f"{name}.matchLabels", where, reason)
    check_reserved(match_labels, f"{name}.matchLabels", where, reason)
    expressions = selector.get("matchExpressions", [])
    if not isinstance(expressions, list):
        invalid(where, f"{name}.matchExpressions must be a list", reason)
    if not match_labels and not expressions:
        invalid(where, f"{name} needs matchLabels (or matchExpressions)", reason)
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return f"{name}.matchLabels {key}={value}"
    for index, expression in enumerate(expressions):
        at = f"{name}.matchExpressions[{index}]"
        if not expression_matches(expression, labels, at, where, reason):
            return at
    return None
