"""What the operator image is: name, tag, config and labels, read from image/image.json and pyproject.toml.

One source for the builder (image/build.py), the Dockerfile check and the tests. Standard library only.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = ROOT / "image" / "image.json"
LABEL_PREFIX = "org.opencontainers.image."


def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_FILE.read_text())
    return loaded


def version() -> str:
    """The tag: [project] version of pyproject.toml."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def reference() -> str:
    """``<name>:<version>``, what the manifests and the chart run."""
    return f"{spec()['name']}:{version()}"


def revision() -> str:
    """The commit checked out (HEAD), for the revision label."""
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def labels(commit: str) -> dict[str, str]:
    """Every label of the image: the static ones of image.json plus version and revision."""
    return {**spec()["config"]["labels"], f"{LABEL_PREFIX}version": version(), f"{LABEL_PREFIX}revision": commit}


def archive_name() -> str:
    return f"bluegreen-operator-{version()}.tar"
