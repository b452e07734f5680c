"""What this process knows about each mirror (its lock, the last refs listed, the last failure), shared by
every ``GitSource`` in the process."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pygit2

from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git.remote import Remote
from bluegreen.git.sync import SyncResult, plan_fetch

HANDED_OUT_MAX: Final = 64
"""At most this many recently returned commits per mirror are kept through compaction beyond the refs."""


@dataclass
class MirrorState:
    """What this process knows about one mirror; fields other than ``counts`` change under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    refreshed_at: float | None = None
    advertised: dict[str, str] | None = None
    """The remote's branches and tags (and peeled ``^{}`` entries) as of ``refreshed_at``."""
    failure: SourceError | None = None
    failed_at: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"ls_remote": 0, "fetch": 0, "compact": 0})
    """Network operations attempted and compactions run; read and written under ``STATES_GUARD``."""
    handed_out: dict[str, float] = field(default_factory=dict)
    """Commits ``fetch`` returned, oldest first, with when: the ``HANDED_OUT_MAX`` most recent are kept through
    a compaction for ``GitSource.retain_seconds`` even if their branch moved on, so that a caller's following
    ``read`` or ``signature`` still finds them."""
    compact_not_before: float = 0.0
    """After a failed compaction, do not retry before this ``time.monotonic()``."""


STATES: dict[str, MirrorState] = {}
STATES_GUARD = threading.Lock()


def state_for(mirror: Path) -> MirrorState:
    key = os.fspath(mirror.absolute())
    with STATES_GUARD:
        return STATES.setdefault(key, MirrorState())


def touch(mirror: Path) -> None:
    """Mark the mirror as used now (its directory mtime): see ``stale_mirrors``."""
    with contextlib.suppress(OSError):
        os.utime(mirror)


def hand_out(state: MirrorState, sha: str) -> None:
    """Note that ``fetch`` returned ``sha`` (the most recent ``HANDED_OUT_MAX`` are remembered)."""
    state.handed_out.pop(sha, None)
    state.handed_out[sha] = time.monotonic()
    while len(state.handed_out) > HANDED_OUT_MAX:
        del state.handed_out[next(iter(state.handed_out))]


def record(state: MirrorState, result: SyncResult, started: float) -> None:
    with STATES_GUARD:
        state.counts["ls_remote"] += result.ls_remote
        state.counts["fetch"] += result.fetch
    if result.advertised is not None:
        state.advertised, state.refreshed_at = result.advertised, started
        state.failure = state.failed_at = None
    elif result.error is not None:
        state.failure, state.failed_at = SourceError(result.error.reason, result.error.message), started


def reuse(
    state: MirrorState, repo: pygit2.Repository, remote: Remote, ref: GitRef, not_before: float
) -> dict[str, str] | None:
    """The refs of a refresh made since ``not_before`` if the mirror can answer from them alone.

    A failed attempt made since ``not_before`` is raised again instead of contacting the remote.
    """
    if state.failure is not None and state.failed_at is not None and state.failed_at >= not_before:
        raise SourceError(state.failure.reason, state.failure.message)
    if state.advertised is None or state.refreshed_at is None or state.refreshed_at < not_before:
        return None
    if plan_fetch(repo, remote, ref, state.advertised) is not None:
        return None  # the wanted objects were never fetched: contact the remote
    return state.advertised
