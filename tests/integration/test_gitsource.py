"""GitSource against real repositories: refs, moving history, paths, failures, mirror reuse, threads."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bluegreen.core.commits import CommitInfo
from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git.source import GitSource

if TYPE_CHECKING:
    from conftest import GitRepo

pytestmark = pytest.mark.integration

MANIFEST_PATH = "deploy/deployment.yaml"
MANIFEST_V1 = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n# v1\n"
MANIFEST_V2 = MANIFEST_V1.replace(b"# v1", b"# v2")
MANIFEST_V3 = MANIFEST_V1.replace(b"# v1", b"# v3")
MAIN = GitRef("branch", "main")
CLOSED_PORT_URL = "git://127.0.0.1:1/x.git"


@pytest.fixture
def origin(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    """A repository whose ``main`` has one commit with the manifest at ``MANIFEST_PATH``."""
    repo = make_repo("origin")
    repo.commit("Add web deployment", {MANIFEST_PATH: MANIFEST_V1, "README.md": b"hello\n"})
    return repo


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def source_error(call: Callable[[], object]) -> SourceError:
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value


# --- refs -------------------------------------------------------------------------------------------


def test_branch_resolves_to_its_tip_and_snapshot_reads_the_file(source: GitSource, origin: GitRepo) -> None:
    info = source.fetch(origin.url, MAIN)
    assert info.sha == origin.head()

    snap = source.snapshot(origin.url, MAIN, MANIFEST_PATH)
    assert snap.commit == info
    assert snap.path == MANIFEST_PATH
    assert snap.content == MANIFEST_V1


def test_other_branch(source: GitSource, origin: GitRepo) -> None:
    origin.git("switch", "--quiet", "-c", "release/v2")
    sha = origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})
    origin.git("switch", "--quiet", "main")

    assert source.snapshot(origin.url, GitRef("branch", "release/v2"), MANIFEST_PATH).content == MANIFEST_V2
    assert source.fetch(origin.url, GitRef("branch", "release/v2")).sha == sha
    assert source.snapshot(origin.url, MAIN, MANIFEST_PATH).content == MANIFEST_V1


@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_tag_resolves_to_the_tagged_commit(source: GitSource, origin: GitRepo, annotated: bool) -> None:
    tagged = origin.head()
    if annotated:
        origin.git("tag", "-a", "v1.0.0", "-m", "release 1.0.0")
    else:
        origin.git("tag", "v1.0.0")
    origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})

    snap = source.snapshot(origin.url, GitRef("tag", "v1.0.0"), MANIFEST_PATH)
    assert snap.commit.sha == tagged
    assert snap.content == MANIFEST_V1


def test_moved_tag_is_followed(source: GitSource, origin: GitRepo) -> None:
    origin.git("tag", "stable")
    assert source.fetch(origin.url, GitRef("tag", "stable")).sha == origin.head()
    new = origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})
    origin.git("tag", "--force", "stable")

    assert source.fetch(origin.url, GitRef("tag", "stable")).sha == new


def test_tag_of_a_tree_is_not_a_commit(source: GitSource, origin: GitRepo) -> None:
    origin.git("tag", "treetag", "HEAD^{tree}")
    err = source_error(lambda: source.fetch(origin.url, GitRef("tag", "treetag")))
    assert err.reason == "RefNotFound"
    assert "does not point to a commit" in err.message


@pytest.mark.parametrize("length", [40, 12, 7])
def test_commit_by_full_or_abbreviated_sha(source: GitSource, origin: GitRepo, length: int) -> None:
    first = origin.head()
    origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})

    snap = source.snapshot(origin.url, GitRef("commit", first[:length]), MANIFEST_PATH)
    assert snap.commit.sha == first
    assert snap.content == MANIFEST_V1


def test_commit_in_uppercase_hex_is_accepted(source: GitSource, origin: GitRepo) -> None:
    assert source.fetch(origin.url, GitRef("commit", origin.head().upper())).sha == origin.head()


def test_unknown_commit_is_ref_not_found(source: GitSource, origin: GitRepo) -> None:
    err = source_error(lambda: source.fetch(origin.url, GitRef("commit", "0" * 40)))
    assert err.reason == "RefNotFound"
    assert "not reachable from any branch or tag" in err.message
    assert origin.url in err.message


def test_commit_dropped_by_force_push_is_not_reachable(source: GitSource, origin: GitRepo) -> None:
    dropped = origin.commit("oops", {MANIFEST_PATH: MANIFEST_V2})
    assert source.fetch(origin.url, GitRef("commit", dropped)).sha == dropped
    origin.git("reset", "--quiet", "--hard", "HEAD~1")

    # The mirror still holds the object, but no branch or tag contains it any more.
    err = source_error(lambda: source.fetch(origin.url, GitRef("commit", dropped)))
    assert err.reason == "RefNotFound"
    assert "not reachable from any branch or tag" in err.message


def test_commit_reachable_only_from_a_tag(source: GitSource, origin: GitRepo) -> None:
    origin.git("switch", "--quiet", "-c", "tmp")
    on_tag = origin.commit("tagged only", {MANIFEST_PATH: MANIFEST_V2})
    origin.git("tag", "only-here")
    origin.git("switch", "--quiet", "main")
    origin.git("branch", "--quiet", "-D", "tmp")

    assert source.fetch(origin.url, GitRef("commit", on_tag[:10])).sha == on_tag


def test_branch_named_master_fetches_into_the_bare_mirror(
    source: GitSource, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = make_repo("legacy")
    repo.git("switch", "--quiet", "-c", "master")
    sha = repo.commit("on master", {MANIFEST_PATH: MANIFEST_V1})
    assert source.fetch(repo.url, GitRef("branch", "master")).sha == sha
    sha2 = repo.commit("again", {MANIFEST_PATH: MANIFEST_V2})
    assert source.fetch(repo.url, GitRef("branch", "master")).sha == sha2


@pytest.mark.parametrize(
    "ref",
    [
        GitRef("branch", "bad..name"),
        GitRef("tag", "-x"),
        GitRef("commit", "xyz1234"),
        GitRef("commit", "abc"),
    ],
    ids=["dotdot-branch", "dash-tag", "non-hex-commit", "short-commit"],
)
def test_invalid_ref_is_refused(source: GitSource, origin: GitRepo, ref: GitRef) -> None:
    assert source_error(lambda: source.fetch(origin.url, ref)).reason == "InvalidRef"


# --- history moving under our feet ---------------------------------------------------------------------


def test_branch_moved_by_a_new_commit(source: GitSource, origin: GitRepo) -> None:
    first = source.fetch(origin.url, MAIN)
    second_sha = origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})

    second = source.fetch(origin.url, MAIN)
    assert second.sha == second_sha != first.sha
    assert source.read(origin.url, second.sha, MANIFEST_PATH).content == MANIFEST_V2
    assert source.read(origin.url, first.sha, MANIFEST_PATH).content == MANIFEST_V1


def test_force_push_is_followed(source: GitSource, origin: GitRepo) -> None:
    base = origin.head()
    old = origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})
    assert source.fetch(origin.url, MAIN).sha == old

    origin.git("reset", "--quiet", "--hard", base)
    rewritten = origin.commit("v3 instead", {MANIFEST_PATH: MANIFEST_V3})
    origin.git("merge-base", "--is-ancestor", base, rewritten)

    snap = source.snapshot(origin.url, MAIN, MANIFEST_PATH)
    assert snap.commit.sha == rewritten
    assert snap.content == MANIFEST_V3
    # What was applied before can still be read from the mirror, e.g. to show a diff.
    assert source.read(origin.url, old, MANIFEST_PATH).content == MANIFEST_V2


def test_deleted_branch_is_ref_not_found(source: GitSource, origin: GitRepo) -> None:
    origin.git("branch", "feature")
    assert source.fetch(origin.url, GitRef("branch", "feature")).sha == origin.head()
    origin.git("branch", "--quiet", "-D", "feature")

    err = source_error(lambda: source.fetch(origin.url, GitRef("branch", "feature")))
    assert err.reason == "RefNotFound"
    assert "'feature'" in err.message
    assert origin.url in err.message


def test_deleted_tag_is_ref_not_found(source: GitSource, origin: GitRepo) -> None:
    origin.git("tag", "-a", "v1", "-m", "v1")
    source.fetch(origin.url, GitRef("tag", "v1"))
    origin.git("tag", "-d", "v1")

    assert source_error(lambda: source.fetch(origin.url, GitRef("tag", "v1"))).reason == "RefNotFound"


def test_missing_branch_in_a_fresh_mirror(source: GitSource, origin: GitRepo) -> None:
    err = source_error(lambda: source.fetch(origin.url, GitRef("branch", "nope")))
    assert err.reason == "RefNotFound"


# --- paths --------------------------------------------------------------------------------------------


def test_missing_file_is_path_not_found(source: GitSource, origin: GitRepo) -> None:
    err = source_error(lambda: source.snapshot(origin.url, MAIN, "deploy/missing.yaml"))
    assert err.reason == "PathNotFound"
    assert "deploy/missing.yaml" in err.message
    assert origin.head()[:7] in err.message


def test_path_below_a_file_is_path_not_found(source: GitSource, origin: GitRepo) -> None:
    err = source_error(lambda: source.snapshot(origin.url, MAIN, "README.md/x"))
    assert err.reason == "PathNotFound"


def test_directory_is_not_a_file_to_read(source: GitSource, origin: GitRepo) -> None:
    """``read`` (a check's or a migration's Job file) never reads a directory; ``snapshot`` (spec.source.path)
    does: tests/integration/test_git_directories.py."""
    sha = source.fetch(origin.url, MAIN).sha
    err = source_error(lambda: source.read(origin.url, sha, "deploy"))
    assert err.reason == "NotAFile"
    assert "directory" in err.message


@pytest.mark.parametrize(
    "path", ["deploy/./deployment.yaml", "./deploy/deployment.yaml", "deploy//deployment.yaml"]
)
def test_harmless_path_spellings_are_normalized(source: GitSource, origin: GitRepo, path: str) -> None:
    snap = source.snapshot(origin.url, MAIN, path)
    assert snap.path == MANIFEST_PATH
    assert snap.content == MANIFEST_V1


@pytest.mark.parametrize(
    "path",
    ["../etc/passwd", "deploy/../../x", "deploy/..", "/etc/passwd", "/deploy/deployment.yaml", "", "."],
)
def test_escaping_or_empty_path_is_refused(source: GitSource, origin: GitRepo, path: str) -> None:
    err = source_error(lambda: source.snapshot(origin.url, MAIN, path))
    assert err.reason == "InvalidPath"


def test_bad_path_is_refused_before_any_network_access(source: GitSource) -> None:
    started = time.monotonic()
    err = source_error(lambda: source.snapshot("https://127.0.0.1:1/x.git", MAIN, "../x"))
    assert err.reason == "InvalidPath"
    assert time.monotonic() - started < 1


def test_symlink_is_not_followed(source: GitSource, origin: GitRepo) -> None:
    origin.symlink("current.yaml", MANIFEST_PATH)
    origin.symlink("escape.yaml", "/etc/hostname")
    origin.symlink("linked-dir", "deploy")
    origin.commit("links")

    for path in ("current.yaml", "escape.yaml", "linked-dir/deployment.yaml", "linked-dir"):
        with pytest.raises(SourceError) as caught:
            source.snapshot(origin.url, MAIN, path)
        assert caught.value.reason == "NotAFile", path
        assert "symbolic link" in caught.value.message
    assert source.snapshot(origin.url, MAIN, MANIFEST_PATH).content == MANIFEST_V1


def test_submodule_is_not_a_file(source: GitSource, origin: GitRepo) -> None:
    origin.git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/lib")
    origin.commit("gitlink")
    err = source_error(lambda: source.snapshot(origin.url, MAIN, "vendor/lib"))
    assert err.reason == "NotAFile"


def test_binary_and_empty_files_are_read_verbatim(source: GitSource, origin: GitRepo) -> None:
    payload = bytes(range(256)) * 4
    origin.commit("blobs", {"bin/data": payload, "empty": b""})
    assert source.snapshot(origin.url, MAIN, "bin/data").content == payload
    assert source.snapshot(origin.url, MAIN, "empty").content == b""


def test_read_before_fetch_is_ref_not_found(source: GitSource, origin: GitRepo) -> None:
    err = source_error(lambda: source.read(origin.url, origin.head(), MANIFEST_PATH))
    assert err.reason == "RefNotFound"
    assert "fetch" in err.message


# --- CommitInfo ---------------------------------------------------------------------------------------


def test_commit_info_fields(source: GitSource, origin: GitRepo) -> None:
    origin.commit(
        "Bump web to v2\n\nLonger explanation\nover several lines.",
        {MANIFEST_PATH: MANIFEST_V2},
        env={
            "GIT_AUTHOR_NAME": "Zoë Author",
            "GIT_AUTHOR_EMAIL": "zoe@example.org",
            "GIT_COMMITTER_DATE": "2024-05-01T12:00:00+02:00",
        },
    )
    info = source.fetch(origin.url, MAIN)

    assert info == CommitInfo(
        sha=origin.head(),
        summary="Bump web to v2",
        author="Zoë Author <zoe@example.org>",
        time=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
    )
    assert info.time.tzinfo is not None
    assert info.time.utcoffset() == timedelta(0)
    assert info.short_sha == info.sha[:7]


def test_long_summary_is_truncated(source: GitSource, origin: GitRepo) -> None:
    origin.commit("x" * 300 + "\n\nbody")
    assert source.fetch(origin.url, MAIN).summary == "x" * 200


# --- URLs and unreachable repositories ----------------------------------------------------------------


def test_local_path_and_file_url_share_one_mirror(
    source: GitSource, origin: GitRepo, cache_dir: Path
) -> None:
    by_path = source.snapshot(origin.url, MAIN, MANIFEST_PATH)
    by_url = source.snapshot(f"file://{origin.url}", MAIN, MANIFEST_PATH)
    by_url_slash = source.snapshot(f"file://{origin.url}/", MAIN, MANIFEST_PATH)

    assert by_path == by_url == by_url_slash
    assert source.mirror_path(origin.url) == source.mirror_path(f"file://{origin.url}")
    assert [p.name for p in cache_dir.iterdir()] == [source.mirror_path(origin.url).name]


def test_local_path_with_special_characters(source: GitSource, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("odd name %20 #1")
    sha = repo.commit("one", {MANIFEST_PATH: MANIFEST_V1})
    assert source.fetch(repo.url, MAIN).sha == sha


def test_mirror_dir_is_named_by_the_url_hash(source: GitSource) -> None:
    name = source.mirror_path("https://Example.COM/org/repo.git/").name
    assert name == hashlib.sha256(b"https://example.com/org/repo.git").hexdigest()[:16]
    assert source.mirror_path("https://user:pw@example.com/org/repo.git").name == name


@pytest.mark.parametrize("url", ["/nonexistent/repo", "file:///nonexistent/repo.git"])
def test_nonexistent_local_repository_is_unreachable(source: GitSource, url: str) -> None:
    err = source_error(lambda: source.fetch(url, MAIN))
    assert err.reason == "RepositoryUnreachable"
    assert "/nonexistent/repo" in err.message


def test_directory_that_is_not_a_repository_is_unreachable(source: GitSource, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    err = source_error(lambda: source.fetch(str(tmp_path / "plain"), MAIN))
    assert err.reason == "RepositoryUnreachable"


def test_closed_port_fails_fast(cache_dir: Path) -> None:
    source = GitSource(cache_dir, timeout_seconds=3.0)
    started = time.monotonic()
    err = source_error(lambda: source.fetch(CLOSED_PORT_URL, MAIN))
    assert time.monotonic() - started < 3.0
    assert err.reason == "RepositoryUnreachable"
    assert CLOSED_PORT_URL in err.message


def test_silent_server_is_bounded_by_the_timeout(cache_dir: Path, silent_server: int) -> None:
    source = GitSource(cache_dir, timeout_seconds=1.0)
    started = time.monotonic()
    err = source_error(lambda: source.fetch(f"git://127.0.0.1:{silent_server}/x.git", MAIN))
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert err.reason == "RepositoryUnreachable"
    assert "timed out" in err.message


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cret@127.0.0.1:1/x.git",
        "http://s3cret@127.0.0.1:1/x.git",
        "https://user:s3cret%21@127.0.0.1:1/x.git",
    ],
    ids=["user-password", "token-as-user", "percent-encoded"],
)
def test_credentials_never_appear_in_errors_or_on_disk(source: GitSource, cache_dir: Path, url: str) -> None:
    err = source_error(lambda: source.fetch(url, MAIN))
    assert err.reason == "RepositoryUnreachable"
    assert "s3cret" not in err.message
    assert "s3cret" not in str(err) and "s3cret" not in repr(err.args[1:])
    assert "127.0.0.1:1/x.git" in err.message
    for file in cache_dir.rglob("*"):
        if file.is_file():
            assert b"s3cret" not in file.read_bytes(), file


@pytest.mark.parametrize(
    "url",
    [
        "",
        "relative/path",
        "ftp://user:s3cret@example.com/x.git",
        "git@github.com:org/repo.git",
        "https://",
        "https://example.com:notaport/x",
        "file://otherhost/srv/repo.git",
        "file:relative",
        "/tmp/has\nnewline",
    ],
)
def test_unsupported_url_is_invalid(source: GitSource, url: str) -> None:
    err = source_error(lambda: source.fetch(url, MAIN))
    assert err.reason == "InvalidURL"
    assert "s3cret" not in err.message


def test_scp_like_url_gets_a_hint(source: GitSource) -> None:
    err = source_error(lambda: source.fetch("git@github.com:org/repo.git", MAIN))
    assert "ssh://" in err.message


# --- the mirror ---------------------------------------------------------------------------------------


def test_mirror_is_reused_across_instances(cache_dir: Path, origin: GitRepo) -> None:
    first = GitSource(cache_dir).fetch(origin.url, MAIN)
    mirror = GitSource(cache_dir).mirror_path(origin.url)
    assert (mirror / "HEAD").is_file()
    sentinel = mirror / "bluegreen-test-sentinel"
    sentinel.write_text("still here")
    new_sha = origin.commit("v2", {MANIFEST_PATH: MANIFEST_V2})

    second = GitSource(cache_dir)
    snap = second.snapshot(origin.url, MAIN, MANIFEST_PATH)
    assert snap.commit.sha == new_sha != first.sha
    assert snap.content == MANIFEST_V2
    assert sentinel.read_text() == "still here"
    assert [p.name for p in cache_dir.iterdir()] == [mirror.name]


def test_corrupt_mirror_is_rebuilt(source: GitSource, origin: GitRepo) -> None:
    mirror = source.mirror_path(origin.url)
    mirror.mkdir(parents=True)
    (mirror / "garbage").write_text("not a repository")

    assert source.fetch(origin.url, MAIN).sha == origin.head()
    assert not (mirror / "garbage").exists()


def test_timeout_must_be_positive(cache_dir: Path) -> None:
    with pytest.raises(ValueError):
        GitSource(cache_dir, timeout_seconds=0)


# --- threads ------------------------------------------------------------------------------------------


def test_concurrent_fetches_of_one_url_all_succeed(source: GitSource, origin: GitRepo) -> None:
    def round_of(workers: int) -> list[str]:
        barrier = threading.Barrier(workers)
        results: list[str] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait()
                results.append(source.snapshot(origin.url, MAIN, MANIFEST_PATH).commit.sha)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        return results

    for n in range(5):
        origin.commit(f"c{n}", {f"f{n}.txt": b"x" * 1000 * n, MANIFEST_PATH: MANIFEST_V2})
    assert round_of(8) == [origin.head()] * 8  # all race to create the mirror
    origin.commit("more", {MANIFEST_PATH: MANIFEST_V3})
    assert round_of(8) == [origin.head()] * 8  # all race to update it


def test_concurrent_fetches_of_different_urls(source: GitSource, make_repo: Callable[[str], GitRepo]) -> None:
    repos = [make_repo(f"repo{n}") for n in range(4)]
    expected = {
        repo.url: repo.commit(f"init {n}", {MANIFEST_PATH: MANIFEST_V1}) for n, repo in enumerate(repos)
    }
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(url: str) -> None:
        try:
            got[url] = source.fetch(url, MAIN).sha
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(repo.url,)) for repo in repos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert got == expected


# --- size limit ---------------------------------------------------------------------------------------


def test_file_over_the_size_limit_is_refused(source: GitSource, origin: GitRepo) -> None:
    origin.commit("big", {"big.yaml": b"x" * 2000})
    err = source_error(lambda: source.snapshot(origin.url, MAIN, "big.yaml", max_bytes=1999))
    assert err.reason == "ManifestTooLarge"
    assert "2000 bytes" in err.message and "1999 bytes" in err.message
    assert source.snapshot(origin.url, MAIN, "big.yaml", max_bytes=2000).content == b"x" * 2000


def test_default_size_limit_is_a_million_bytes(source: GitSource, origin: GitRepo) -> None:
    origin.commit("sizes", {"at-limit": b"y" * 1_000_000, "over-limit": b"y" * 1_000_001})
    assert len(source.snapshot(origin.url, MAIN, "at-limit").content) == 1_000_000
    assert source_error(lambda: source.snapshot(origin.url, MAIN, "over-limit")).reason == "ManifestTooLarge"


READ_AND_MEASURE = """
import re, sys
from pathlib import Path
from bluegreen.core.errors import SourceError
from bluegreen.git.source import GitSource
def peak_kib():  # this process's own high-water mark (ru_maxrss would include the forking parent's)
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
cache, url, sha, limit = sys.argv[1:]
source = GitSource(Path(cache))
before = peak_kib()
try:
    outcome = str(len(source.read(url, sha, "huge.bin", max_bytes=int(limit)).content))
except SourceError as exc:
    outcome = exc.reason
print(outcome, peak_kib() - before)
"""


def test_oversized_file_is_refused_without_loading_it(
    source: GitSource, origin: GitRepo, cache_dir: Path
) -> None:
    """Peak memory of a fresh process: reading the 32 MiB blob grows it, refusing it does not."""
    size = 32 * 1024 * 1024
    sha = origin.commit("huge", {"huge.bin": b"0123456789abcdef" * (size // 16)})
    source.fetch(origin.url, MAIN)

    def read(limit: int) -> tuple[str, int]:
        done = subprocess.run(
            [sys.executable, "-c", READ_AND_MEASURE, str(cache_dir), origin.url, sha, str(limit)],
            capture_output=True, text=True, check=True,
        )
        outcome, grown_kib = done.stdout.split()
        return outcome, int(grown_kib)

    refused, refused_growth = read(1_000_000)
    loaded, loaded_growth = read(size)
    assert (refused, loaded) == ("ManifestTooLarge", str(size))
    assert loaded_growth > 24 * 1024  # the control: loading it does show
    assert refused_growth < 8 * 1024, refused_growth
