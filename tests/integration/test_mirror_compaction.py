"""Mirror garbage collection against real repositories and a real git daemon, checked with the git CLI.

libgit2 writes a pack per fetch and never collects garbage; ``GitSource`` compacts a mirror once it holds
``pack_limit`` packs. What a user would notice: the mirror stays small however often the branch moves,
``git fsck`` finds nothing wrong, every commit a ref reaches (or a caller was just handed) stays readable,
and a failed compaction never fails a fetch.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gitservers
import pytest

from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git import cache as mirror_cache
from bluegreen.git.compaction import CompactionResult, compact
from bluegreen.git.source import GitSource

if TYPE_CHECKING:
    from conftest import GitRepo, Served

pytestmark = pytest.mark.integration

MANIFEST = "deploy/deployment.yaml"
MAIN = GitRef("branch", "main")
REPO = "app.git"


def manifest(n: int) -> bytes:
    return f"kind: Deployment\n# version {n}\n".encode()


def git_in(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=check)


def count_objects(repo: Path) -> dict[str, int]:
    """``git count-objects -v``: ``count`` (loose objects), ``packs``, ..."""
    out = git_in(repo, "count-objects", "-v").stdout
    return {key: int(value) for key, value in (line.split(": ") for line in out.splitlines()) if value.isdigit()}


def has_object(repo: Path, sha: str) -> bool:
    return git_in(repo, "cat-file", "-e", sha, check=False).returncode == 0


def shallow_entries(repo: Path) -> list[str]:
    shallow = repo / "shallow"
    return shallow.read_text().split() if shallow.exists() else []


def assert_fsck_clean(repo: Path) -> None:
    done = git_in(repo, "fsck", "--full", "--strict", "--no-dangling", check=False)
    problems = [line for line in done.stderr.splitlines() if not line.startswith("notice:")]  # e.g. unborn HEAD
    assert done.returncode == 0 and not problems, done.stderr


class Reports:
    """Collects what ``GitSource`` reports through ``on_compaction``."""

    def __init__(self) -> None:
        self.outcomes: list[CompactionResult | Exception] = []

    def __call__(self, mirror: Path, outcome: CompactionResult | Exception) -> None:
        self.outcomes.append(outcome)

    @property
    def done(self) -> list[CompactionResult]:
        return [o for o in self.outcomes if isinstance(o, CompactionResult)]

    @property
    def failed(self) -> list[Exception]:
        return [o for o in self.outcomes if isinstance(o, Exception)]


@pytest.fixture
def origin(make_repo: Callable[[str], GitRepo], served: Served) -> GitRepo:
    repo = make_repo("origin")
    repo.commit("v0", {MANIFEST: manifest(0)})
    served.publish(REPO, repo)
    return repo


def test_busy_branch_keeps_a_small_shallow_mirror(
    cache_dir: Path, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    reports = Reports()
    source = GitSource(cache_dir, timeout_seconds=5, pack_limit=4, retain_seconds=0, on_compaction=reports)
    url = git_daemon.url(REPO)
    mirror = source.mirror_path(url)
    shas = []
    for n in range(1, 15):
        shas.append(origin.commit(f"v{n}", {MANIFEST: manifest(n)}))
        served.push(REPO, origin)
        snap = source.snapshot(url, MAIN, MANIFEST)
        assert (snap.commit.sha, snap.content) == (shas[-1], manifest(n))
        assert count_objects(mirror)["packs"] < 4  # compacted as soon as the fourth pack arrives
        assert len(shallow_entries(mirror)) < 4

    assert len(reports.done) >= 3 and not reports.failed
    # the tip only: commit, root tree, deploy/ tree, manifest blob
    assert all(r.packs_before == 4 and r.packs_after == 1 and r.objects == 4 for r in reports.done), reports.done
    assert source.stats(url)["compact"] == len(reports.done)
    assert_fsck_clean(mirror)
    assert not any(has_object(mirror, sha) for sha in shas[:8])  # moved-away tips are collected
    assert has_object(mirror, shas[-1])


def test_full_history_keeps_every_reachable_commit_tag_and_branch(
    cache_dir: Path, make_repo: Callable[[str], GitRepo]
) -> None:
    origin = make_repo("full")
    first = origin.commit("v1", {MANIFEST: manifest(1)})
    tagged = origin.commit("v2", {MANIFEST: manifest(2)})
    origin.git("tag", "-a", "-m", "release 1.0.0", "v1.0.0")
    origin.git("checkout", "-q", "-b", "feature")
    feature = origin.commit("feature work", {MANIFEST: manifest(99)})
    origin.git("checkout", "-q", "main")
    reports = Reports()
    source = GitSource(cache_dir, timeout_seconds=5, pack_limit=3, retain_seconds=0, on_compaction=reports)
    url = origin.url  # the local transport: never shallow, complete history
    source.fetch(url, GitRef("commit", first))  # every branch and tag, full history
    for n in range(3, 9):
        origin.commit(f"v{n}", {MANIFEST: manifest(n)})
        source.fetch(url, MAIN)

    assert reports.done and not reports.failed
    mirror = source.mirror_path(url)
    assert_fsck_clean(mirror)
    for sha in git_in(origin.path / ".git", "rev-list", "--all").stdout.split():
        assert has_object(mirror, sha)
    assert source.read(url, first, MANIFEST).content == manifest(1)
    assert source.fetch(url, GitRef("tag", "v1.0.0")).sha == tagged
    assert source.fetch(url, GitRef("branch", "feature")).sha == feature
    assert source.snapshot(url, GitRef("commit", first), MANIFEST).content == manifest(1)


@pytest.mark.parametrize("just_handed_out", [False, True], ids=["retention-over", "just-handed-out"])
def test_commit_force_pushed_away(
    cache_dir: Path, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon, just_handed_out: bool
) -> None:
    """Collected once its retention is over; a caller that was just handed it can still read it."""
    retention = {} if just_handed_out else {"retain_seconds": 0.0}  # the default keeps it for a minute
    source = GitSource(cache_dir, timeout_seconds=5, pack_limit=2, **retention)
    url = git_daemon.url(REPO)
    base = origin.head()
    dropped = origin.commit("to be dropped", {MANIFEST: manifest(1)})
    served.push(REPO, origin)
    assert source.fetch(url, MAIN).sha == dropped

    origin.git("reset", "--quiet", "--hard", base)
    rewritten = origin.commit("rewritten", {MANIFEST: manifest(2)})
    served.push(REPO, origin)
    assert source.snapshot(url, MAIN, MANIFEST).content == manifest(2)

    assert source.stats(url)["compact"] >= 1
    assert source.read(url, rewritten, MANIFEST).content == manifest(2)
    assert_fsck_clean(source.mirror_path(url))
    if just_handed_out:
        assert source.read(url, dropped, MANIFEST).content == manifest(1)
        return
    assert not has_object(source.mirror_path(url), dropped)
    with pytest.raises(SourceError) as caught:
        source.read(url, dropped, MANIFEST)
    assert caught.value.reason == "RefNotFound"


def test_kept_pack_is_never_removed(
    cache_dir: Path, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    source = GitSource(cache_dir, timeout_seconds=5, pack_limit=3, retain_seconds=0)
    url = git_daemon.url(REPO)
    source.fetch(url, MAIN)
    pack_dir = source.mirror_path(url) / "objects" / "pack"
    (kept,) = pack_dir.glob("pack-*.pack")
    kept.with_suffix(".keep").write_text("pinned by an admin\n")
    for n in range(1, 7):
        origin.commit(f"v{n}", {MANIFEST: manifest(n)})
        served.push(REPO, origin)
        source.fetch(url, MAIN)

    assert source.stats(url)["compact"] >= 2
    assert kept.exists() and kept.with_suffix(".idx").exists()
    assert_fsck_clean(source.mirror_path(url))


def test_failed_compaction_never_fails_a_fetch_and_is_retried_later(
    cache_dir: Path,
    origin: GitRepo,
    served: Served,
    git_daemon: gitservers.GitDaemon,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mirror_cache, "COMPACT_RETRY_SECONDS", 3.0)
    reports = Reports()
    source = GitSource(cache_dir, timeout_seconds=5, pack_limit=2, retain_seconds=0, on_compaction=reports)
    url = git_daemon.url(REPO)
    source.fetch(url, MAIN)
    mirror = source.mirror_path(url)
    blocker = mirror / "shallow.compacting"
    blocker.mkdir()  # the shallow file cannot be rewritten: compaction fails midway

    for n in (1, 2, 3):
        origin.commit(f"v{n}", {MANIFEST: manifest(n)})
        served.push(REPO, origin)
        assert source.snapshot(url, MAIN, MANIFEST).content == manifest(n)
    assert len(reports.failed) == 1 and isinstance(reports.failed[0], OSError)  # not retried within 3 s
    assert source.stats(url)["compact"] == 0
    assert_fsck_clean(mirror)

    blocker.rmdir()
    time.sleep(3.0)  # the retry delay
    for n in (4, 5):
        origin.commit(f"v{n}", {MANIFEST: manifest(n)})
        served.push(REPO, origin)
        assert source.snapshot(url, MAIN, MANIFEST).content == manifest(n)
    assert reports.done, reports.outcomes


def test_compact_packs_loose_objects_and_drops_unreachable_ones(tmp_path: Path, origin: GitRepo) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", "--no-local", str(origin.path), str(bare)], check=True)
    loose_blob = subprocess.run(
        ["git", "--git-dir", str(bare), "hash-object", "-w", "--stdin"], input="reachable\n", capture_output=True,
        text=True, check=True,
    ).stdout.strip()
    garbage = subprocess.run(
        ["git", "--git-dir", str(bare), "hash-object", "-w", "--stdin"], input="garbage\n", capture_output=True,
        text=True, check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "--git-dir", str(bare), "mktree"], input=f"100644 blob {loose_blob}\tnew.txt\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    env_commit = subprocess.run(
        ["git", "--git-dir", str(bare), "-c", "user.name=x", "-c", "user.email=x@y", "commit-tree", tree, "-p",
         origin.head(), "-m", "made loose"], capture_output=True, text=True, check=True,
    ).stdout.strip()
    git_in(bare, "update-ref", "refs/heads/loose", env_commit)
    assert count_objects(bare)["count"] == 4

    result = compact(bare)

    assert (result.packs_before, result.packs_after, result.loose_removed) == (1, 1, 4)
    assert count_objects(bare)["count"] == 0 and count_objects(bare)["packs"] == 1
    assert has_object(bare, env_commit) and has_object(bare, loose_blob) and not has_object(bare, garbage)
    assert_fsck_clean(bare)


# --- unused mirrors --------------------------------------------------------------------------------------


def test_unused_mirrors_and_staging_leftovers_are_removed(
    cache_dir: Path, make_repo: Callable[[str], GitRepo]
) -> None:
    """A rotated Secret or a deleted release leaves a mirror nobody fetches through: it goes after a week."""
    old_repo, live_repo = make_repo("old"), make_repo("live")
    for repo in (old_repo, live_repo):
        repo.commit("v1", {MANIFEST: manifest(1)})
    earlier = GitSource(cache_dir)
    earlier.fetch(old_repo.url, MAIN)
    earlier.fetch(live_repo.url, MAIN)
    old_mirror, live_mirror = earlier.mirror_path(old_repo.url), earlier.mirror_path(live_repo.url)
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(old_mirror, (week_ago, week_ago))
    os.utime(live_mirror, (week_ago, week_ago))  # stale too, but fetched through below: kept
    staging = cache_dir / f".{old_mirror.name}.{'0' * 32}.tmp"
    staging.mkdir()
    os.utime(staging, (time.time() - 7200, time.time() - 7200))
    fresh_staging = cache_dir / f".{live_mirror.name}.{'1' * 32}.tmp"
    fresh_staging.mkdir()
    unrelated = cache_dir / "notes"
    unrelated.mkdir()
    os.utime(unrelated, (week_ago, week_ago))

    removed: list[Path] = []
    source = GitSource(cache_dir, on_sweep=removed.append)
    assert source.snapshot(live_repo.url, MAIN, MANIFEST).content == manifest(1)

    assert sorted(removed) == sorted([old_mirror, staging])
    assert not old_mirror.exists() and not staging.exists()
    assert live_mirror.exists() and fresh_staging.exists() and unrelated.exists()
    assert time.time() - live_mirror.stat().st_mtime < 60  # the fetch marked it used
    # Swept once an hour, not on every fetch: a mirror going stale now stays until the next sweep.
    os.utime(live_mirror, (week_ago, week_ago))
    source.fetch(old_repo.url, MAIN)  # recreated on demand
    assert live_mirror.exists() and old_mirror.exists() and len(removed) == 2
