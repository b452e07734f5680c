"""The ``local/`` images: what a process-backed container "contains".

There is no image store and no root filesystem of its own: a ``local/`` container runs on this machine's
filesystem (``/bin/sh``, ``/usr/bin`` ... are the host's). An image only decides the image configuration a
runtime would read from it: the default command (``Cmd``), the environment (``Env``, above all ``PATH``)
and the working directory.

- ``local/python:<tag>`` (e.g. ``local/python:3``): like the ``python`` image of Docker Hub, ``Cmd`` is
  ``["python3"]``; ``PATH`` starts with a directory holding ``python3`` and ``python``, which run the very
  interpreter that runs simnode (the project's virtualenv, so its packages, e.g. the kubernetes client,
  are importable); ``LANG=C.UTF-8``.
- any other ``local/<name>``: no ``Cmd`` (a ``command`` is required) and the host's ``PATH``.

Every other image is simulated (see ``kubelet.simulated``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def is_local(image: str) -> bool:
    """Whether the image runs as a real process (else the container is simulated)."""
    return image.startswith("local/")


def is_local_pod(pod: dict) -> bool:  # type: ignore[type-arg]
    spec = pod["spec"]
    return any(is_local(c.get("image", "")) for c in [*spec.get("initContainers", []), *spec["containers"]])


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    working_dir: str = "/"


def python_bin(images_dir: Path) -> Path:
    """The image's ``bin`` directory: ``python3``/``python`` wrappers around simnode's interpreter.

    Wrappers, not symlinks: a symlink to a virtualenv's interpreter would lose the virtualenv."""
    bin_dir = images_dir / "python" / "bin"
    script = f'#!/bin/sh\nexec {sys.executable} "$@"\n'
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python"):
        path = bin_dir / name
        if not path.exists() or path.read_text() != script:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(script)
            tmp.chmod(0o755)
            tmp.replace(path)
    return bin_dir


def image_config(image: str, images_dir: Path) -> ImageConfig:
    """What a runtime would read from the image's configuration."""
    name = image.removeprefix("local/").split(":", 1)[0].split("@", 1)[0]
    if name == "python":
        path = f"{python_bin(images_dir)}:{HOST_PATH}"
        return ImageConfig((), ("python3",), {"PATH": path, "LANG": "C.UTF-8", "HOME": "/root"})
    return ImageConfig((), (), {"PATH": HOST_PATH, "HOME": "/root"})


def command_line(image: ImageConfig, command: list[str] | None, args: list[str] | None) -> list[str]:
    """Docker's rules: ``command`` replaces the entrypoint (and drops ``Cmd``), ``args`` replace ``Cmd``."""
    if command:
        return [*command, *(args or [])]
    return [*image.entrypoint, *(args if args else image.cmd)]
