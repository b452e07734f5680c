"""The field rules the spec parsers share (``core.spec``, ``core.checks_spec``), and their error. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from bluegreen.core.errors import ReasonedError


class SpecError(ReasonedError, ValueError):
    """An invalid BlueGreenRelease spec (reason ``InvalidSpec``); ``field`` is the dotted path of the offending
    field, the message ``<field>: <problem>``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__("InvalidSpec", f"{field}: {problem}")
        self.field = field
        self.problem = problem


def require_mapping(value: object, field: str) -> None:
    if not isinstance(value, Mapping):
        raise SpecError(field, "must be an object")


def refuse_unknown(mapping: Mapping[str, Any], field: str, known: set[str]) -> None:
    unknown = sorted(str(key) for key in mapping if key not in known)
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})")


def known_mapping(value: object, field: str, known: set[str]) -> Mapping[str, Any]:
    """``value`` as an object with only the ``known`` fields."""
    require_mapping(value, field)
    mapping = cast(Mapping[str, Any], value)
    refuse_unknown(mapping, field, known)
    return mapping


def int_field(value: object, field: str, *, default: int, minimum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"{value!r} must be an integer")
    if value < minimum:
        raise SpecError(field, f"{value} must be at least {minimum}")
    return value
