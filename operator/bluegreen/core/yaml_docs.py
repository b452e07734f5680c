"""Manifest text -> YAML documents as JSON values (pure), shared by every manifest read from git: the release's
source (``core.desired``, ``core.bundle``) and the hook Jobs (``core.hook_jobs``).

The loader is PyYAML's safe loader that refuses duplicate keys and keeps timestamps as strings (as Kubernetes
does); ``normalize`` drops nulls in mappings and refuses anything JSON cannot hold, within a budget of values
and a depth (guards against YAML alias bombs). Errors are ``ManifestError`` (``InvalidYAML``,
``ManifestTooLarge``), their message naming the file.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from bluegreen.core.errors import ReasonedError

DEFAULT_MAX_BYTES = 1_000_000
MAX_VALUES = 200_000
"""Most scalars/collections a manifest may expand to (guards against YAML alias bombs)."""
MAX_DEPTH = 100


class ManifestError(ReasonedError):
    """The manifest cannot be released; ``reason`` is CamelCase, ``message`` tells what to fix."""


class ManifestLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys and keeps timestamps as strings (as Kubernetes does)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str | bytes, where: str, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Any]:
    """The non-empty YAML documents of a file, as loaded (not normalized yet); ``where`` names the file."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise ManifestError(
            "ManifestTooLarge", f"{where} is {len(raw)} bytes; the limit is {max_bytes} bytes."
        )
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError("InvalidYAML", f"{where} is not UTF-8 text ({exc.reason}).") from None
    try:
        return [doc for doc in yaml.load_all(decoded, Loader=ManifestLoader) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError("InvalidYAML", f"{where} is not valid YAML: {one_line(exc)}.") from None
    except RecursionError:
        raise ManifestError("InvalidYAML", f"{where} is nested too deeply to be read.") from None


def normalize(value: object, where: str) -> Any:
    """Deep copy of a loaded document with nulls in mappings dropped; refuses non-JSON values."""
    budget = [MAX_VALUES]

    def walk(node: object, at: str, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ManifestError(
                "ManifestTooLarge", f"{where} expands to more than {MAX_VALUES} values (YAML aliases?)."
            )
        if depth > MAX_DEPTH:
            raise ManifestError("InvalidYAML", f"{where} is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, item in node.items():
                if not isinstance(key, str):
                    raise ManifestError(
                        "InvalidYAML", f"{where}: key {key!r} under {at or 'the top'} must be a string."
                    )
                if item is not None:
                    out[key] = walk(item, f"{at}.{key}" if at else key, depth + 1)
            return out
        if isinstance(node, list):
            return [walk(item, f"{at}[{index}]", depth + 1) for index, item in enumerate(node)]
        if isinstance(node, float) and not math.isfinite(node):
            raise ManifestError("InvalidYAML", f"{where}: {at} is {node}, which JSON cannot hold.")
        if node is None or isinstance(node, str | int | float | bool):
            return node
        raise ManifestError(
            "InvalidYAML",
            f"{where}: {at or 'the document'} is a {kind_of(node)}; only JSON values are allowed "
            "(quote it if it is meant as text).",
        )

    return walk(value, "", 0)


def kind_of(value: object) -> str:
    """``list``, ``string``, ``boolean``, ``number`` or the type's name: for messages."""
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
