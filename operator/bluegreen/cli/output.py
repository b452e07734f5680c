"""Printing: aligned tables, and objects as JSON or YAML (``-o json|yaml``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

FORMATS = ("json", "yaml")


def print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    """Columns padded to their widest cell, two spaces apart, trailing blanks dropped."""
    out = out or sys.stdout
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def dump(value: Any, fmt: str) -> str:
    """``value`` as ``json`` (indented, like ``kubectl -o json``) or ``yaml`` (block style, keys as stored)."""
    if fmt == "json":
        return json.dumps(value, indent=4, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True))
    raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")
