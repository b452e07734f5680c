"""The built operator image, checked for real: its OCI config and labels read from the layout, its layers,
its docker-archive read back by skopeo and loaded by podman, and programs run from inside its root
filesystem (unpacked with umoci) mounted read-only, as uid 65532, with only /tmp and the cache volume
writable, the way a pod with ``readOnlyRootFilesystem: true`` runs it. The e2e half (``bluegreen run``
reconciling a release from inside the image) is tests/e2e/test_image_release.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuilt import IMAGE_TEST_TIMEOUT, SHELLS, BuiltImage, build, imagerun, imagespec, unpack, without_shells

pytestmark = pytest.mark.timeout(IMAGE_TEST_TIMEOUT)
SPEC = imagespec.spec()
CACHE = SPEC["base"]["writable"][0]


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    return build()


@pytest.fixture(scope="module")
def rootfs(image: BuiltImage) -> Path:
    return unpack(image)


@pytest.fixture
def cache_volume(tmp_path: Path) -> Iterator[Path]:
    volume = tmp_path / "cache"
    volume.mkdir()
    subprocess.run(["chown", "65532:65532", str(volume)], check=True)
    yield volume


def run_inside(image: BuiltImage, rootfs: Path, argv: list[str], cache: Path,
               extra: list[imagerun.Bind] | None = None) -> subprocess.CompletedProcess[str]:
    return imagerun.run(rootfs, argv, env=image.env(), user=image.config["config"]["User"],
                        binds=[imagerun.Bind(cache, CACHE, writable=True), *(extra or [])], capture_output=True,
                        text=True, timeout=120, check=False)


# --- the config ----------------------------------------------------------------------------------------


def test_config_runs_bluegreen_run_as_nonroot(image: BuiltImage) -> None:
    config = image.config["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/opt/bluegreen/bin/bluegreen"]
    assert config["Cmd"] == ["run"]
    assert config["WorkingDir"] == "/"
    assert sorted(config["Volumes"]) == ["/tmp", "/var/cache/bluegreen"]
    assert sorted(config["ExposedPorts"]) == ["8000/tcp", "8080/tcp", "9443/tcp"]
    assert image.env() == SPEC["config"]["env"]
    assert image.env()["HOME"] == "/tmp" and image.env()["BLUEGREEN_CACHE_DIR"] == "/var/cache/bluegreen"
    assert (image.config["os"], image.config["architecture"]) == ("linux", "amd64")


def test_labels_name_source_version_and_the_commit_built(image: BuiltImage) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=imagespec.ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    prefix = "org.opencontainers.image."
    labels = image.config["config"]["Labels"]
    assert labels[prefix + "revision"] == image.revision == head
    assert labels[prefix + "version"] == imagespec.version() == image.tag
    assert labels[prefix + "source"] == "https://github.com/bluegreen-operator/bluegreen-operator"
    assert labels[prefix + "title"] == "bluegreen-operator"
    assert labels[prefix + "licenses"] == "Apache-2.0"
    assert labels == imagespec.labels(head)
    assert {k: v for k, v in image.manifest["annotations"].items() if k.startswith(prefix)} == labels


def test_two_layers_the_cached_base_and_the_project(image: BuiltImage) -> None:
    layers = image.manifest["layers"]
    assert len(layers) == 2
    assert all(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" for layer in layers)
    assert len(image.config["rootfs"]["diff_ids"]) == 2
    base_info = json.loads((imagespec.ROOT / "build" / "image" / "image.json").read_text())["base"]
    base_index = json.loads((Path(base_info) / "oci" / "index.json").read_text())
    algorithm, digest = base_index["manifests"][0]["digest"].split(":")
    base_manifest = json.loads((Path(base_info) / "oci" / "blobs" / algorithm / digest).read_text())
    assert base_manifest["layers"] == layers[:1], "the base layer is the cached one, byte for byte"
    with tarfile.open(image.blob(layers[1]["digest"]), "r:gz") as tar:
        names = [member.name.lstrip("./") for member in tar.getmembers()]
    assert names and all(name.startswith("opt/bluegreen") for name in names), names[:20]
    assert "opt/bluegreen/bin/bluegreen" in names
    assert any(name.startswith("opt/bluegreen/lib/python3.11/site-packages/bluegreen/") for name in names)
    assert not any("/kopf/" in name for name in names), "dependencies belong to the base layer"


def test_docker_archive_names_the_image(image: BuiltImage) -> None:
    with tarfile.open(image.archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert [entry["RepoTags"] for entry in manifest] == [[imagespec.reference()]]
    inspected = json.loads(subprocess.run(
        ["skopeo", "--insecure-policy", "inspect", f"docker-archive:{image.archive}"], capture_output=True,
        text=True, check=True, timeout=120).stdout)
    assert inspected["Labels"] == image.config["config"]["Labels"]
    assert len(inspected["Layers"]) == 2


def test_podman_loads_the_archive(image: BuiltImage, tmp_path: Path) -> None:
    """The real ``podman load`` (no daemon), into a throwaway storage: it checks every layer's digest."""
    runroot = Path(tempfile.mkdtemp(prefix="bg-podman-"))  # podman wants a run root under 50 characters
    podman = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(runroot), "--storage-driver", "vfs"]
    try:
        loaded = subprocess.run([*podman, "load", "--input", str(image.archive)], capture_output=True, text=True,
                                timeout=300, check=False)
        assert loaded.returncode == 0, loaded.stderr
        assert f"Loaded image: {imagespec.reference()}" in loaded.stdout
        inspected = json.loads(subprocess.run([*podman, "image", "inspect", imagespec.reference()],
                                              capture_output=True, text=True, timeout=60, check=True).stdout)[0]
        config = inspected["Config"]
        assert (config["User"], config["Entrypoint"], config["Cmd"]) == ("65532:65532", image.argv(), ["run"])
        assert config["Labels"] == image.config["config"]["Labels"]
        assert len(inspected["RootFS"]["Layers"]) == 2
    finally:
        shutil.rmtree(tmp_path / "root", ignore_errors=True)  # 325 MB of vfs layers
        shutil.rmtree(runroot, ignore_errors=True)


# --- inside the root filesystem -------------------------------------------------------------------------


def test_rootfs_has_the_user_the_tools_and_no_stray_writable_paths(rootfs: Path) -> None:
    passwd = (rootfs / "etc" / "passwd").read_text().splitlines()
    assert "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" in passwd
    assert "nonroot:x:65532:" in (rootfs / "etc" / "group").read_text().splitlines()
    cache = (rootfs / CACHE[1:]).stat()
    assert (cache.st_uid, cache.st_gid) == (65532, 65532)
    for tool in ("usr/bin/git", "usr/bin/gpg", "usr/bin/ssh-keygen", "usr/bin/python3.11"):
        assert (rootfs / tool).is_file(), tool
    script = (rootfs / "opt" / "bluegreen" / "bin" / "bluegreen").read_text()
    assert script.startswith("#!/opt/bluegreen/bin/python"), script[:80]
    assert (rootfs / "opt" / "bluegreen" / "bin" / "python").resolve(strict=False).name.startswith("python3")
    assert not list((rootfs / "usr" / "share" / "man").glob("*")), "manual pages are left out"
    privileged = [p for p in rootfs.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_mode & 0o6000]
    assert not privileged, f"set-user/group-ID programs: {privileged}"
    assert not (rootfs / "opt" / "bluegreen" / "lib" / "python3.11" / "site-packages" / "kubernetes" / "aio").exists()


def test_bluegreen_help_runs_read_only_as_65532_without_a_shell(image: BuiltImage, rootfs: Path,
                                                                 cache_volume: Path) -> None:
    done = run_inside(image, rootfs, image.argv("--help"), cache_volume, without_shells())
    assert done.returncode == 0, done.stderr
    assert "run" in done.stdout and "usage: bluegreen" in done.stdout
    done = run_inside(image, rootfs, image.argv("run", "--help"), cache_volume, without_shells())
    assert done.returncode == 0, done.stderr
    assert "--namespace" in done.stdout
    for shell in ("/bin/sh", *SHELLS):  # the masking works: with it, no shell can run
        assert run_inside(image, rootfs, [shell, "-c", "true"], cache_volume, without_shells()).returncode != 0
    assert run_inside(image, rootfs, ["/bin/sh", "-c", "true"], cache_volume).returncode == 0, "masked, not absent"


PROBE = """
import os, pathlib, sys, bluegreen, pygit2, kopf
print(os.getuid(), os.getgid(), os.getgroups(), sys.version_info[:2], bluegreen.__file__, pygit2.LIBGIT2_VERSION)
for path in ("/", "/opt/bluegreen", "/etc", "/tmp", os.environ["HOME"], os.environ["BLUEGREEN_CACHE_DIR"]):
    try:
        (pathlib.Path(path) / "probe").write_text("x")
    except OSError as exc:
        print(path, "read-only" if exc.errno == 30 else "denied")
    else:
        print(path, "writable")
"""


def test_only_tmp_and_the_cache_volume_are_writable(image: BuiltImage, rootfs: Path, cache_volume: Path) -> None:
    done = run_inside(image, rootfs, ["/opt/bluegreen/bin/python", "-c", PROBE], cache_volume)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("65532 65532 [65532] (3, 11) /opt/bluegreen/lib/python3.11/site-packages/bluegreen/")
    assert lines[1:] == ["/ read-only", "/opt/bluegreen read-only", "/etc read-only", "/tmp writable",
                         "/tmp writable", "/var/cache/bluegreen writable"]
    assert (cache_volume / "probe").read_text() == "x", "the cache volume is the host directory mounted there"
    assert not (rootfs / "tmp" / "probe").exists() and not (rootfs / "probe").exists()


TOOLS = """
import pathlib, subprocess
def run(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60, **kwargs).stdout
print(run("git", "--version").split()[:2])
print(run("gpg", "--batch", "--no-tty", "--list-keys") == "")
tmp = pathlib.Path("/tmp")
run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f", str(tmp / "key"))
(tmp / "commit").write_text("tree 0000\\n")
run("ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(tmp / "key"), str(tmp / "commit"))
(tmp / "allowed").write_text("* namespaces=\\"git\\" " + (tmp / "key.pub").read_text())
out = run("ssh-keygen", "-Y", "verify", "-n", "git", "-f", str(tmp / "allowed"), "-I", "dev", "-s",
          str(tmp / "commit.sig"), input=(tmp / "commit").read_text())
print(out.strip().split(" with ")[0])
"""


def test_the_tools_the_operator_execs_work_there(image: BuiltImage, rootfs: Path, cache_volume: Path) -> None:
    """git, gpg (its home created under HOME=/tmp) and ssh-keygen signing and verifying, as uid 65532."""
    done = run_inside(image, rootfs, ["/opt/bluegreen/bin/python", "-c", TOOLS], cache_volume)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['git', 'version']", "True", 'Good "git" signature for dev'], done.stdout
