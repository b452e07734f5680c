"""The mirror cache under ``cache_dir``: where a mirror lives, creating it, compacting it, sweeping unused ones.

``MirrorCache`` is the part of ``GitSource`` that manages the directory; the facade inherits it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pygit2

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.git.compaction import CompactionResult, compact, mirror_dir, needs_compaction, staging_dir, stale_mirrors
from bluegreen.git.lookup import open_mirror
from bluegreen.git.mirrors import STATES_GUARD, MirrorState, state_for
from bluegreen.git.remote import Remote
from bluegreen.git.sync import FETCH_REFSPECS

RETAIN_SECONDS: Final = 60.0
"""How long a commit ``fetch`` returned survives compaction after its branch moved on (the default)."""
STALE_AFTER_SECONDS: Final = 7 * 24 * 3600.0
"""A mirror not fetched through for this long (a deleted release, a rotated Secret) is deleted."""
SWEEP_EVERY_SECONDS: Final = 3600.0

COMPACT_RETRY_SECONDS: Final = 600.0
"""After a failed compaction, fetches go on without one for this long."""



class MirrorCache:
    """Mirrors under ``cache_dir``: one per repository key and credential set."""

    cache_dir: Path
    pack_limit: int
    retain_seconds: float
    stale_after_seconds: float
    on_sweep: Callable[[Path], None] | None
    on_compaction: Callable[[Path, CompactionResult | Exception], None] | None
    _swept_at: float | None

    def _sweep_cache(self, keep: Path) -> None:
        """At most once per ``SWEEP_EVERY_SECONDS`` (the first time on the first fetch): delete mirrors
        unused for ``stale_after_seconds`` and leftover staging directories (``stale_mirrors``).

        A mirror in use is skipped (its lock is only tried), so nothing is deleted under a running fetch;
        a release that comes back later simply fetches into a new mirror.
        """
        now = time.monotonic()
        with STATES_GUARD:
            if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY_SECONDS:
                return
            self._swept_at = now
        try:
            stale = stale_mirrors(self.cache_dir, now=time.time(), stale_after=self.stale_after_seconds)
        except OSError:  # an unreadable cache directory: the fetch reports it if it matters; tried next hour
            return
        for path in stale:
            if path == keep:
                continue
            state = state_for(path)
            if not state.lock.acquire(blocking=False):
                continue
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                state.lock.release()
            if self.on_sweep is not None:
                self.on_sweep(path)

    def _maybe_compact(self, state: MirrorState, mirror: Path) -> None:
        """Garbage-collect the mirror once it holds ``pack_limit`` packs (libgit2 adds one per fetch).

        Called with the mirror's lock held. A failure is reported to ``on_compaction`` and retried after
        ``COMPACT_RETRY_SECONDS``; the mirror stays usable either way.
        """
        now = time.monotonic()
        if now < state.compact_not_before or not needs_compaction(mirror, self.pack_limit):
            return
        recent = [sha for sha, handed_at in state.handed_out.items() if now - handed_at <= self.retain_seconds]
        outcome: CompactionResult | Exception
        try:
            outcome = compact(mirror, extra_roots=recent)
        except (pygit2.GitError, OSError) as exc:
            state.compact_not_before = now + COMPACT_RETRY_SECONDS
            outcome = exc
        else:
            with STATES_GUARD:
                state.counts["compact"] += 1
        if self.on_compaction is not None:
            self.on_compaction(mirror, outcome)

    def _mirror_dir(self, remote: Remote, credentials: Credentials | None) -> Path:
        identity = remote.key if credentials is None else f"{remote.key}\0{credentials.fingerprint()}"
        return mirror_dir(self.cache_dir, identity)

    def _open_or_create(self, mirror: Path, remote: Remote) -> pygit2.Repository:
        """Open the mirror, (re)creating it if it is missing or unreadable (it is only a cache)."""
        repo = open_mirror(mirror)
        if repo is not None:
            return repo
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            if mirror.exists():
                shutil.rmtree(mirror)
            staging = staging_dir(mirror)
            try:
                fresh = pygit2.init_repository(str(staging), bare=True)
                fresh.remotes.create("origin", remote.display, FETCH_REFSPECS[0])
                fresh.remotes.add_fetch("origin", FETCH_REFSPECS[1])
                fresh.free()
                staging.rename(mirror)  # a half-made mirror never appears under the final name
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return pygit2.Repository(str(mirror))
        except (pygit2.GitError, OSError) as exc:
            raise SourceError(
                "FetchFailed",
                f"Cannot create the local mirror of {remote.display} in {self.cache_dir}: "
                f"{remote.scrub(str(exc))}. Check that the cache directory is writable.",
            ) from None
