"""The operator image for the image tests: built by ``image/build.py`` (a no-op when it is up to date, the
base coming from the per-machine cache), read from its OCI layout and unpacked with umoci, as a runtime would.

Shared by tests/integration/test_image.py and tests/e2e/test_image_release.py; needs root (mmdebstrap, chroot).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "image"))
import imagerun  # noqa: E402
import imagespec  # noqa: E402

BUILD_TIMEOUT = 1800  # a cold base (mmdebstrap) takes minutes; `make test` builds the image before pytest
IMAGE_TEST_TIMEOUT = BUILD_TIMEOUT + 300


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    tag: str
    archive: Path
    reference: str
    revision: str
    index: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]
    build_output: str

    def blob(self, digest: str) -> Path:
        return _blob(self.layout, digest)

    def env(self) -> dict[str, str]:
        """The image's environment, as a runtime starts the entrypoint with it."""
        return dict(item.split("=", 1) for item in self.config["config"]["Env"])

    def argv(self, *args: str) -> list[str]:
        """Entrypoint + ``args`` (a runtime replaces Cmd by the container's args)."""
        return [*self.config["config"]["Entrypoint"], *args]


def _blob(layout: Path, digest: str) -> Path:
    algorithm, value = digest.split(":", 1)
    return layout / "blobs" / algorithm / value


def build() -> BuiltImage:
    """Run the builder (printing its report) and read what it wrote."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "image" / "build.py")], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    print(done.stdout, done.stderr, f"image: build.py took {time.monotonic() - start:.1f}s", sep="\n")
    assert done.returncode == 0, f"image/build.py failed:\n{done.stdout}\n{done.stderr}"
    info = json.loads((ROOT / "build" / "image" / "image.json").read_text())
    layout = Path(info["layout"])
    index = json.loads((layout / "index.json").read_text())
    tagged = [m for m in index["manifests"]
              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == info["tag"]]
    assert len(tagged) == 1, f"the layout must hold the tag {info['tag']} exactly once: {index}"
    manifest = json.loads(_blob(layout, tagged[0]["digest"]).read_text())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    return BuiltImage(layout, info["tag"], Path(info["archive"]), info["reference"], info["revision"], index,
                      manifest, config, done.stdout)


SHELLS = ("/usr/bin/dash", "/usr/bin/bash")  # /bin/sh -> dash; /bin is /usr/bin (merged /usr)


def without_shells() -> list[imagerun.Bind]:
    """/dev/null mounted over every shell of the image (it cannot be executed): run with these, a program
    shows that it needs no shell."""
    return [imagerun.Bind(Path("/dev/null"), shell) for shell in SHELLS]


def unpack(image: BuiltImage) -> Path:
    """The image's root filesystem, unpacked by ``umoci unpack`` once per built image (next to its layout,
    named by its manifest digest; a rebuild removes it) and shared by the test modules and sessions: every
    test mounts it read-only, so none can change it for the others."""
    digest = image.manifest["config"]["digest"].split(":", 1)[1][:16]
    bundle = image.layout.parent / f"unpacked-{digest}"
    if not (bundle / "rootfs").is_dir():
        partial = bundle.with_name(bundle.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(["umoci", "unpack", "--image", f"{image.layout}:{image.tag}", str(partial)], check=True,
                       capture_output=True, timeout=300)
        partial.rename(bundle)
    return bundle / "rootfs"


__all__ = ["IMAGE_TEST_TIMEOUT", "SHELLS", "BuiltImage", "build", "imagerun", "imagespec", "unpack",
           "without_shells"]
