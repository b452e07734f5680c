#!/usr/bin/env python3
"""``make image``: the operator's OCI image, built on this machine without a Docker engine.

1. The base (Debian bookworm root filesystem, Python 3.11, git, gpg, ssh-keygen, user 65532, a venv with the
   pinned runtime dependencies) comes from the per-machine cache (image/imagebase.py), built on first use.
2. The project layer: a wheel of this checkout, installed into /opt/bluegreen by the image's own Python,
   running inside the cached base root filesystem (mounted read-only) and writing to a staging directory
   that becomes one layer (``umoci raw add-layer``).
3. The config (user, entrypoint, cmd, env, volumes, ports, OCI labels) from image/image.json.

Outputs under build/image/: ``oci/`` (an OCI image layout, tag = the version of pyproject.toml) and
``bluegreen-operator-<version>.tar`` (a docker-archive: ``docker load -i`` / ``podman load -i``), plus
``image.json`` describing both. A run with unchanged inputs rebuilds nothing. Needs root (mmdebstrap, chroot).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imagerun
from imagebase import BASE_TAG, Base, cache_root, ensure_base
from imagespec import ROOT, archive_name, labels, reference, revision, spec, version

OUT = ROOT / "build" / "image"
LAYOUT = OUT / "oci"
STAMP = OUT / "inputs.sha256"
PROJECT_FILES = ("pyproject.toml", "README.md")
PROJECT_DIRS = ("operator",)
STALE_DAYS = 14


def log(message: str) -> None:
    print(f"image: {message}", flush=True)


def main() -> int:
    start = time.monotonic()
    subprocess.run(["bash", str(ROOT / "image" / "install-deps.sh")], check=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cache_root().mkdir(parents=True, exist_ok=True)
    # One build at a time per checkout (build/image) and per machine (the base cache, which a build reads).
    with _locked(OUT.parent / ".image.lock"), _locked(cache_root() / ".image-base.lock"):
        base = ensure_base(log)
        _forget_stale_bases(base)
        return _build(base, start)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(base: Base, start: float) -> int:
    if base.built_seconds is not None:
        log(f"base built in {base.built_seconds:.0f}s, cached in {base.directory}")
    else:
        log(f"base reused from {base.directory}")
    commit = revision()
    inputs = _project_inputs(base, commit)
    if STAMP.exists() and STAMP.read_text() == inputs and (OUT / archive_name()).exists() and LAYOUT.exists():
        log(f"{reference()} is up to date ({time.monotonic() - start:.1f}s)")
        log(json.loads((OUT / "image.json").read_text())["size"])
        return 0
    _dirty_warning()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="bluegreen-image-") as tmp:
        work = Path(tmp)
        wheel = _build_wheel(work)
        stage = _install_project(base, wheel, work)
        shutil.copytree(base.layout, LAYOUT, symlinks=True)
        tag = version()
        venv = spec()["base"]["venv"]
        layer = work / "project-layer.tar"
        _layer_tar(stage, venv, layer)
        # Not `umoci insert`: umoci 0.4.7 writes that layer's tar without its end (GNU tar: "Unexpected EOF").
        _run(["umoci", "raw", "add-layer", "--image", f"{LAYOUT}:{BASE_TAG}", "--tag", tag,
              "--history.created_by", f"pip install {wheel.name} (image/build.py)", str(layer)])
        _configure(tag, commit)
        _run(["umoci", "rm", "--image", f"{LAYOUT}:{BASE_TAG}"])
        _run(["umoci", "gc", "--layout", str(LAYOUT)])
    archive = OUT / archive_name()
    _run(["skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{LAYOUT}:{tag}",
          f"docker-archive:{archive}:{reference()}"])
    log(f"built {reference()} in {time.monotonic() - start:.1f}s")
    size = _sizes()
    log(size)
    (OUT / "image.json").write_text(json.dumps({
        "reference": reference(), "layout": str(LAYOUT), "tag": tag, "archive": str(archive),
        "revision": commit, "base": str(base.directory), "size": size}, indent=2) + "\n")
    STAMP.write_text(inputs)
    return 0


def _forget_stale_bases(current: Base) -> None:
    """Mark the base in use; delete other bases (older inputs) unused for STALE_DAYS."""
    (current.directory / "last-used").touch()
    for other in current.directory.parent.glob("image-base-*"):
        marker = other / "last-used"
        if other != current.directory and marker.exists() and time.time() - marker.stat().st_mtime > STALE_DAYS * 86400:
            log(f"removing {other} (unused for {STALE_DAYS} days)")
            shutil.rmtree(other, ignore_errors=True)


def _project_inputs(base: Base, commit: str) -> str:
    """Everything the project layer and the config depend on, hashed: the base, the project's files, the
    image's own files and the commit (the revision label)."""
    digest = hashlib.sha256(f"{base.directory.name}\n{commit}\n".encode())
    paths = [ROOT / name for name in PROJECT_FILES]
    for directory in (*PROJECT_DIRS, "image"):
        paths += sorted(p for p in (ROOT / directory).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in paths:
        digest.update(f"{path.relative_to(ROOT)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest() + "\n"


def _dirty_warning() -> None:
    status = subprocess.run(["git", "status", "--porcelain", "--", *PROJECT_FILES, *PROJECT_DIRS], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout
    if status.strip():
        log("note: uncommitted changes in the project's files are built in; the revision label names HEAD")


def _build_wheel(work: Path) -> Path:
    """A wheel of a clean copy of the checkout's project files (no stale build/ or __pycache__)."""
    source = work / "src"
    source.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, source / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
          "-w", str(dist), str(source)])
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _install_project(base: Base, wheel: Path, work: Path) -> Path:
    """pip install the wheel with the image's Python, inside the base root filesystem (read-only), into
    ``stage``: the files of the project layer, with scripts whose interpreter is the image's venv."""
    stage = work / "stage"
    stage.mkdir()
    venv = spec()["base"]["venv"]
    pip_wheels = sorted(base.rootfs.glob("usr/share/python-wheels/pip-*.whl"))
    assert len(pip_wheels) == 1, pip_wheels
    pip = f"/{pip_wheels[0].relative_to(base.rootfs)}/pip"  # pip run from Debian's wheel: none in the venv
    result = imagerun.run(
        base.rootfs,
        [f"{venv}/bin/python", pip, "install", "--quiet", "--no-index", "--no-deps", "--no-cache-dir",
         "--root-user-action=ignore", "--disable-pip-version-check", "--root", "/srv", "--prefix", venv,
         f"/mnt/{wheel.name}"],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}, user="0:0",
        binds=[imagerun.Bind(wheel.parent, "/mnt"), imagerun.Bind(stage, "/srv", writable=True)],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"image: installing {wheel.name} failed:\n{result.stdout}\n{result.stderr}")
    script = stage / venv[1:] / "bin" / "bluegreen"
    assert script.read_text().startswith(f"#!{venv}/bin/python"), script.read_text()[:100]
    return stage


def _layer_tar(stage: Path, venv: str, path: Path) -> None:
    """The staged venv files as a layer: paths relative to /, owned by root, sorted."""
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(stage / venv[1:], arcname=venv[1:], filter=as_root)


def _configure(tag: str, commit: str) -> None:
    config = spec()["config"]
    argv = ["umoci", "config", "--image", f"{LAYOUT}:{tag}", "--config.user", config["user"],
            "--config.workingdir", config["workingDir"], "--history.created_by", "image/build.py: config"]
    argv += [arg for item in config["entrypoint"] for arg in ("--config.entrypoint", item)]
    argv += [arg for item in config["cmd"] for arg in ("--config.cmd", item)]
    argv += [arg for key, value in config["env"].items() for arg in ("--config.env", f"{key}={value}")]
    argv += [arg for path in config["volumes"] for arg in ("--config.volume", path)]
    argv += [arg for port in config["exposedPorts"] for arg in ("--config.exposedports", port)]
    for key, value in labels(commit).items():
        argv += ["--config.label", f"{key}={value}", "--manifest.annotation", f"{key}={value}"]
    _run(argv)


def _sizes() -> str:
    """The compressed layers (what a registry stores and a node pulls), the unpacked root filesystem (the
    layers uncompressed) and the docker-archive, as one line."""
    index = json.loads((LAYOUT / "index.json").read_text())
    manifest = json.loads(_blob(index["manifests"][0]["digest"]).read_text())
    compressed = sum(layer["size"] for layer in manifest["layers"])
    unpacked = 0
    for layer in manifest["layers"]:
        with gzip.open(_blob(layer["digest"])) as stream:
            while chunk := stream.read(1 << 20):
                unpacked += len(chunk)
    archive = (OUT / archive_name()).stat().st_size
    sizes = ", ".join(f"{layer['size'] / 1e6:.1f}" for layer in manifest["layers"])
    return (f"size: {compressed / 1e6:.1f} MB compressed ({len(manifest['layers'])} layers: {sizes} MB), "
            f"{unpacked / 1e6:.1f} MB unpacked; {archive_name()} {archive / 1e6:.1f} MB "
            f"({LAYOUT}, tag {version()}; {OUT / archive_name()}, {reference()})")


def _blob(digest: str) -> Path:
    algorithm, value = digest.split(":", 1)
    return LAYOUT / "blobs" / algorithm / value


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"image: {' '.join(argv)[:300]} failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


if __name__ == "__main__":
    sys.exit(main())
