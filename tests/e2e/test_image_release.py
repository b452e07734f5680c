"""``bluegreen run`` from inside the built operator image reconciling releases on the local control plane.

The image is built (or found up to date) by image/build.py and unpacked with umoci; its entrypoint runs with
the image's own environment, in its root filesystem mounted read-only, as uid 65532, with only a tmpfs on
/tmp and the cache volume writable (image/imagerun.py: a private mount namespace and chroot), as a pod with
``readOnlyRootFilesystem: true`` would run it, and with /dev/null mounted over the image's shells: nothing
it runs needs one. What it is given, mounted read-only: a kubeconfig for a
ServiceAccount bound to the project's namespaced Role (the API server is on loopback: same network) and
the git repository, which the release names by its path inside the image (``file:///srv``).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes import client

from conftest import Cluster, GitRepo, Operator, operator_kubeconfig
from imagebuilt import IMAGE_TEST_TIMEOUT, BuiltImage, build, imagerun, imagespec, unpack, without_shells

pytestmark = pytest.mark.timeout(IMAGE_TEST_TIMEOUT)
CACHE = imagespec.spec()["base"]["writable"][0]


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    return build()


@pytest.fixture(scope="module")
def rootfs(image: BuiltImage) -> Path:
    return unpack(image)


class ImageOperator(Operator):
    """The operator started from the image's entrypoint instead of this checkout."""

    def __init__(self, image: BuiltImage, rootfs: Path, namespace: str, kubeconfig: Path, repo: Path,
                 workdir: Path) -> None:
        super().__init__(namespace, kubeconfig, workdir)
        self.image = image
        self.rootfs = rootfs
        self.repo = repo
        self.cache = workdir / "cache-volume"
        with socket.socket() as probe:  # the host's network: a free loopback port for kopf's liveness endpoint
            probe.bind(("127.0.0.1", 0))
            self.liveness = f"http://127.0.0.1:{probe.getsockname()[1]}/healthz"

    def start(self) -> ImageOperator:
        self.cache.mkdir(exist_ok=True)
        os.chown(self.cache, 65532, 65532)
        env = {**self.image.env(), "KUBECONFIG": "/mnt/kubeconfig"}
        binds = [imagerun.Bind(self.kubeconfig.parent, "/mnt"), imagerun.Bind(self.repo, "/srv"),
                 imagerun.Bind(self.cache, CACHE, writable=True), *without_shells()]
        args = ["run", "--namespace", self.namespace, "--log-format", "json", "--liveness", self.liveness]
        with open(self.log_path, "ab") as out:
            self.process = imagerun.popen(self.rootfs, self.image.argv(*args), env=env,
                                          user=self.image.config["config"]["User"], binds=binds,
                                          stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self


def self_contained_kubeconfig(kube_client: client.ApiClient, namespace: str, directory: Path) -> Path:
    """The e2e operator's kubeconfig with its CA inlined, alone in a directory mounted into the image."""
    directory.mkdir()
    path = operator_kubeconfig(kube_client, namespace, directory)
    config = json.loads(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.rename(directory / "kubeconfig")
    (directory / "kubeconfig").write_text(json.dumps(config))
    (directory / "kubeconfig").chmod(0o644)
    return directory / "kubeconfig"


@pytest.fixture
def image_operator(image: BuiltImage, rootfs: Path, kube_client: client.ApiClient, crd: None, namespace: str,
                   repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ImageOperator]:
    # libgit2, like git, opens only repositories owned by the user it runs as (or root): the repository on
    # the host belongs to 65532, and the test's own git commands (as root) are told that it is safe.
    subprocess.run(["chown", "-R", "65532:65532", str(repo.path)], check=True)
    safe = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
    for key, value in safe.items():
        monkeypatch.setenv(key, value)
    kubeconfig = self_contained_kubeconfig(kube_client, namespace, tmp_path / "config")
    runner = ImageOperator(image, rootfs, namespace, kubeconfig, repo.path, tmp_path)
    runner.start()
    yield runner
    runner.stop()
    print(runner.text()[-5000:])


def process_ids(pid: int) -> tuple[str, str]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return status["Uid"].split()[0], status["Gid"].split()[0]


def test_the_image_releases_and_switches_colours(cluster: Cluster, repo: GitRepo,
                                                 image_operator: ImageOperator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", delay=0)
    cluster.create_release(SimpleNamespace(url="file:///srv", manifest_path=repo.manifest_path))  # type: ignore[arg-type]
    cluster.wait_serving(v1, "blue", timeout=120)

    assert image_operator.process is not None and image_operator.process.poll() is None
    assert process_ids(image_operator.process.pid) == ("65532", "65532"), "the operator runs as nonroot"
    with urllib.request.urlopen(image_operator.liveness, timeout=10) as answer:
        assert answer.status == 200, "kopf's liveness endpoint answers from inside the image"

    v2 = repo.release("registry.local/shop:v2", delay=0)
    cluster.check_now()
    cluster.wait_serving(v2, "green", timeout=120)
    deployment = cluster.deployment("green")
    assert deployment is not None and deployment.metadata.annotations["bluegreen.dev/commit"] == v2

    assert [r["color"] for r in image_operator.actions("Switch")] == ["blue", "green"], "its JSON log lines"
    mirrors = [p for p in image_operator.cache.rglob("*") if p.is_file()]
    assert mirrors, "the git mirror lives on the cache volume"
    assert {p.stat().st_uid for p in mirrors} == {65532}
    assert not (image_operator.rootfs / CACHE[1:]).joinpath("git").exists(), "nothing was written to the image"
