"""The image's base layer, built once per machine and cached: a Debian root filesystem (mmdebstrap, variant
``essential`` plus the packages of image.json, no setuid/setgid bits), the user ``nonroot`` (65532), the
writable directories, and a venv at /opt/bluegreen holding the pinned runtime dependencies
(image/requirements.txt) installed as wheels, less what image.json's ``prune`` names (the kubernetes
client's asyncio copy, 68 MB, which nothing imports).

The cache is ``~/.cache/bluegreen/image-base-<hash>`` (``$BLUEGREEN_CACHE`` replaces ``~/.cache/bluegreen``),
the hash covering this file, requirements.txt and the ``base`` section of image.json: change any of them
and the next build makes a new base; otherwise it is reused as it is. It holds an OCI layout (``oci``, tag
``base``, one layer) and that layer unpacked (``bundle/rootfs``), in which the project layer is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagespec import ROOT, spec

REQUIREMENTS = ROOT / "image" / "requirements.txt"
BASE_TAG = "base"
# The wheels: CPython 3.11 (Debian bookworm's python3) on x86_64 glibc, whatever Python runs the build.
WHEEL_PLATFORM = ["--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", "3.11",
                  "--abi", "cp311", "--abi", "abi3", "--abi", "none",
                  *(arg for tag in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
                    for arg in ("--platform", tag))]
# Documentation, manual pages and translations are left out of the root filesystem; the copyright files stay.
DPKG_FILTERS = ["path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
                "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
                "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
                "path-exclude=/usr/share/lintian/*"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class Base:
    directory: Path
    built_seconds: float | None  # None: reused from the cache

    @property
    def layout(self) -> Path:
        return self.directory / "oci"

    @property
    def rootfs(self) -> Path:
        return self.directory / "bundle" / "rootfs"


def cache_root() -> Path:
    return Path(os.environ.get("BLUEGREEN_CACHE") or Path.home() / ".cache" / "bluegreen")


def base_hash() -> str:
    digest = hashlib.sha256()
    for part in (Path(__file__).read_bytes(), REQUIREMENTS.read_bytes(),
                 json.dumps(spec()["base"], sort_keys=True).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def base_directory() -> Path:
    return cache_root() / f"image-base-{base_hash()}"


def ensure_base(log: Log) -> Base:
    """The cached base for the current inputs, built first if there is none."""
    final = base_directory()
    if (final / "complete").exists():
        return Base(final, None)
    start = time.monotonic()
    work = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wheels = work / "wheels"
    log(f"base: downloading the pinned wheels of {REQUIREMENTS.relative_to(ROOT)}")
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", *WHEEL_PLATFORM,
          "-r", str(REQUIREMENTS), "-d", str(wheels)])
    layout, bundle = work / "oci", work / "bundle"
    _run(["umoci", "init", "--layout", str(layout)])
    _run(["umoci", "new", "--image", f"{layout}:{BASE_TAG}"])
    _run(["umoci", "unpack", "--image", f"{layout}:{BASE_TAG}", str(bundle)])
    base = spec()["base"]
    log(f"base: mmdebstrap {base['suite']} ({base['variant']} + {', '.join(base['packages'])}), a few minutes")
    _run(["mmdebstrap", "--quiet", f"--variant={base['variant']}", f"--include={','.join(base['packages'])}",
          *(f"--dpkgopt={rule}" for rule in DPKG_FILTERS),
          f"--customize-hook={_customize_hook(base, sorted(p.name for p in wheels.glob('*.whl')), wheels)}",
          base["suite"], str(bundle / "rootfs"), base["mirror"]])
    log("base: packing the layer")
    _run(["umoci", "repack", "--image", f"{layout}:{BASE_TAG}",
          "--history.created_by", f"mmdebstrap {base['suite']} + {REQUIREMENTS.name} (image/imagebase.py)",
          str(bundle)])
    _run(["umoci", "gc", "--layout", str(layout)])
    shutil.rmtree(wheels)
    (work / "inputs.json").write_text(json.dumps({"base": base, "requirements": REQUIREMENTS.read_text()}, indent=2))
    (work / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return Base(final, time.monotonic() - start)


def _customize_hook(base: dict[str, object], wheel_names: list[str], wheels: Path) -> str:
    """Shell run by mmdebstrap on the host with the new root filesystem as ``$1``."""
    user = base["user"]
    assert isinstance(user, dict)
    venv = str(base["venv"])
    q = shlex.quote
    uid, gid, name, home = user["uid"], user["gid"], user["name"], user["home"]
    pip = f'chroot "$1" {q(venv)}/bin/python "/$pip/pip"'  # pip run from Debian's wheel: none in the venv
    writable = " ".join(f'"$1"{q(str(path))}' for path in [home, *base["writable"]])  # type: ignore[attr-defined]
    return " && ".join([
        'set -e',
        f'chroot "$1" python3 -m venv --without-pip {q(venv)}',
        'pip=$(cd "$1" && echo usr/share/python-wheels/pip-*.whl)',
        'test -f "$1/$pip"',
        'mkdir "$1/tmp/wheels"',
        f'cp {q(str(wheels))}/*.whl "$1/tmp/wheels/"',
        f'{pip} install --quiet --no-index --no-deps --no-cache-dir '
        '--root-user-action=ignore --disable-pip-version-check '
        + " ".join(q(f"/tmp/wheels/{w}") for w in wheel_names),
        f'{pip} check --disable-pip-version-check',
        'rm -rf "$1/tmp/wheels"',
        *(f'rm -r "$1"{q(venv + "/" + path)}' for path in base["prune"]),  # type: ignore[attr-defined]
        f'echo {q(f"{name}:x:{uid}:{gid}:{name}:{home}:/usr/sbin/nologin")} >> "$1/etc/passwd"',
        f'echo {q(f"{name}:x:{gid}:")} >> "$1/etc/group"',
        f'echo {q(f"{name}:*:19000:0:99999:7:::")} >> "$1/etc/shadow"',
        f'install -d -o {uid} -g {gid} -m 0755 {writable}',
        # No set-user/group-ID programs (su, mount, chsh...): nothing in the image can gain privileges.
        'find "$1" -xdev -type f -perm /6000 -exec chmod ug-s {} +',
    ])


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"image: {argv[0]} {argv[1]} failed ({result.returncode}):\n"
                         f"{result.stdout[-2000:]}\n{result.stderr[-6000:]}")
