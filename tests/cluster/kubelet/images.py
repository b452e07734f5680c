"""The ``local/`` images: what a process-backed container "contains".

There is no image store and no root filesystem of its own: a ``local/`` container runs on this machine's
filesystem (``/bin/sh``, ``/usr/bin`` ... are the host's). An image only decides the image configuration a
runtime would read from it: the default command (``Cmd``), the environment (``Env``, above all ``PATH``)
and the working directory.

- ``local/python:<tag>`` (e.g. ``local/python:3``): like the ``python`` image of Docker Hub, ``Cmd`` is
  ``["python3"]``; ``PATH`` starts with a directory holding ``python3`` and ``python``, which run the very
  interpreter that runs simnode with simnode's packages importable (the project's virtualenv: the
  kubernetes client, bluegreen itself); ``LANG=C.UTF-8``, ``HOME=/root``.
- any other ``local/<name>``: no ``Cmd`` (a ``command`` is required) and the host's ``PATH``.

Every other image is simulated (see ``kubelet.simulated``).
"""

from __future__ import annotations

import os
import site
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
    """The image's ``bin`` directory, holding ``python3``/``python``: simnode's interpreter with its packages.

    A virtual environment of its own (``pyvenv.cfg`` beside ``bin``, the interpreter linked in) whose
    site-packages holds one ``.pth`` adding simnode's site-packages (editable installs included). No shell
    wrapper: a shell would drop environment variables whose names are not shell names (``CFG_app.conf``)."""
    root = images_dir / "python"
    base = Path(os.path.realpath(sys.executable))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    site_dirs = [p for p in site.getsitepackages() if os.path.isdir(p)]
    files = {
        root / "pyvenv.cfg": f"home = {base.parent}\ninclude-system-site-packages = false\nversion = "
                             f"{sys.version.split()[0]}\n",
        root / "lib" / f"python{version}" / "site-packages" / "_simnode_packages.pth":
            "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python"):
        link = bin_dir / name
        if not link.is_symlink() or os.readlink(link) != str(base):
            tmp = bin_dir / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(base)
            tmp.replace(link)
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
