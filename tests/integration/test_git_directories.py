"""``spec.source.path`` naming a directory, against real repositories: its ``.yaml``/``.yml`` files directly
inside it are read (sorted, with their repository paths), other files and subdirectories are not, and a
manifest that is a symlink or a submodule, a file over the size limit and too many files are refused with
reasons that name the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git.lookup import MAX_FILES
from bluegreen.git.source import GitSource

if TYPE_CHECKING:
    from conftest import GitRepo

pytestmark = pytest.mark.integration

MAIN = GitRef("branch", "main")
DEPLOYMENT = b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
CONFIG = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


@pytest.fixture
def origin(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("origin")
    repo.commit("shop", {"apps/shop/deployment.yaml": DEPLOYMENT, "apps/shop/config.yml": CONFIG,
                         "apps/shop/README.md": b"# the shop\n", "apps/shop/notes.yaml.txt": b"x: 1\n",
                         "apps/shop/nested/other.yaml": b"kind: Secret\n", "apps/shop/nested.yaml/x.yaml": b"y\n",
                         "apps/cart/deployment.yaml": b"kind: Deployment\n"})
    return repo


def refused(call: Callable[[], object]) -> SourceError:
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value


def test_a_directory_gives_its_manifests_directly_inside_it(source: GitSource, origin: GitRepo) -> None:
    snap = source.snapshot(origin.url, MAIN, "apps/shop")
    assert snap.commit.sha == origin.head()
    assert (snap.path, snap.content) == ("apps/shop", b"")
    assert snap.files == (("apps/shop/config.yml", CONFIG), ("apps/shop/deployment.yaml", DEPLOYMENT)), \
        "only .yaml/.yml files, sorted; README, other suffixes and subdirectories (however named) are not read"


@pytest.mark.parametrize("path", ["apps/shop/", "./apps/shop", "apps//shop"])
def test_directory_spellings_are_normalized(source: GitSource, origin: GitRepo, path: str) -> None:
    snap = source.snapshot(origin.url, MAIN, path)
    assert snap.path == "apps/shop" and snap.files is not None and len(snap.files) == 2


def test_a_file_is_still_a_file(source: GitSource, origin: GitRepo) -> None:
    snap = source.snapshot(origin.url, MAIN, "apps/shop/deployment.yaml")
    assert (snap.content, snap.files) == (DEPLOYMENT, None)


def test_an_empty_directory_of_manifests_gives_no_files(source: GitSource, origin: GitRepo) -> None:
    origin.commit("docs only", {"apps/docs/README.md": b"hi\n"})
    assert source.snapshot(origin.url, MAIN, "apps/docs").files == ()


def test_a_manifest_that_is_a_symlink_is_refused(source: GitSource, origin: GitRepo) -> None:
    origin.symlink("apps/shop/linked.yaml", "deployment.yaml")
    origin.commit("a link")
    err = refused(lambda: source.snapshot(origin.url, MAIN, "apps/shop"))
    assert (err.reason, err.message) == ("NotAFile", f"'apps/shop/linked.yaml' is a symbolic link at commit "
                                         f"{origin.head()[:7]}; symlinks are not followed, commit the file itself.")


def test_a_symlink_that_is_not_a_manifest_is_ignored(source: GitSource, origin: GitRepo) -> None:
    origin.symlink("apps/shop/LICENSE", "/etc/hostname")
    origin.commit("a link to something else")
    assert len(source.snapshot(origin.url, MAIN, "apps/shop").files or ()) == 2


def test_a_symlinked_directory_is_refused(source: GitSource, origin: GitRepo) -> None:
    origin.symlink("apps/current", "shop")
    origin.commit("a directory link")
    err = refused(lambda: source.snapshot(origin.url, MAIN, "apps/current"))
    assert err.reason == "NotAFile" and "symbolic link" in err.message


def test_a_manifest_that_is_a_submodule_is_refused(source: GitSource, origin: GitRepo) -> None:
    origin.git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},apps/shop/vendored.yaml")
    origin.git("update-index", "--add", "--cacheinfo", f"160000,{'2' * 40},apps/shop/vendor")
    origin.commit("gitlinks")
    err = refused(lambda: source.snapshot(origin.url, MAIN, "apps/shop"))
    assert (err.reason, err.message) == ("NotAFile", f"'apps/shop/vendored.yaml' is a submodule at commit "
                                         f"{origin.head()[:7]}; it cannot be read.")


def test_a_submodule_that_is_not_a_manifest_is_ignored(source: GitSource, origin: GitRepo) -> None:
    origin.git("update-index", "--add", "--cacheinfo", f"160000,{'2' * 40},apps/shop/vendor")
    origin.commit("a gitlink")
    assert len(source.snapshot(origin.url, MAIN, "apps/shop").files or ()) == 2


def test_each_file_is_held_to_the_size_limit(source: GitSource, origin: GitRepo) -> None:
    origin.commit("big config", {"apps/shop/big.yaml": b"x" * 3000})
    err = refused(lambda: source.snapshot(origin.url, MAIN, "apps/shop", max_bytes=2999))
    assert err.reason == "ManifestTooLarge"
    assert err.message.startswith("'apps/shop/big.yaml' is 3000 bytes") and "2999 bytes" in err.message
    assert len(source.snapshot(origin.url, MAIN, "apps/shop", max_bytes=3000).files or ()) == 3


def test_too_many_files_are_refused(source: GitSource, origin: GitRepo) -> None:
    origin.commit("many", {f"apps/many/{n:03}.yaml": b"a: 1\n" for n in range(MAX_FILES)})
    assert len(source.snapshot(origin.url, MAIN, "apps/many").files or ()) == MAX_FILES
    origin.commit("one more", {"apps/many/extra.yml": b"a: 1\n"})
    err = refused(lambda: source.snapshot(origin.url, MAIN, "apps/many"))
    assert (err.reason, err.message) == ("TooManyFiles", f"'apps/many' holds {MAX_FILES + 1} .yaml/.yml files at "
                                         f"commit {origin.head()[:7]}; the limit is {MAX_FILES}: a source directory "
                                         "holds one release's manifests.")


def test_read_never_reads_a_directory(source: GitSource, origin: GitRepo) -> None:
    sha = source.fetch(origin.url, MAIN).sha
    err = refused(lambda: source.read(origin.url, sha, "apps/shop"))
    assert err.reason == "NotAFile" and "is a directory" in err.message


def test_each_commit_gives_its_own_files(source: GitSource, origin: GitRepo) -> None:
    first = origin.head()
    origin.commit("config v2", {"apps/shop/config.yml": CONFIG.replace(b"b}", b"c}")})
    origin.git("rm", "-q", "apps/shop/deployment.yaml")
    second = origin.commit("drop the deployment")
    now = source.snapshot(origin.url, MAIN, "apps/shop")
    assert now.commit.sha == second and now.files == (("apps/shop/config.yml", CONFIG.replace(b"b}", b"c}")),)
    then = source.snapshot(origin.url, GitRef("commit", first), "apps/shop")
    assert then.files is not None and len(then.files) == 2
