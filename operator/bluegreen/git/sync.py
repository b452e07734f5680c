"""Contacting a remote once: list its refs and fetch what the mirror lacks for a ref, on one connection."""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pygit2
from pygit2.enums import FetchPrune

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git.callbacks import Callbacks, network_errors
from bluegreen.git.heap import release_free_memory
from bluegreen.git.lookup import select_ref, tips
from bluegreen.git.remote import Remote

FETCH_REFSPECS: Final = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
UNSHALLOW: Final = 2_147_483_647  # libgit2's GIT_FETCH_DEPTH_UNSHALLOW

COLLECT_EVERY_SECONDS = 60.0
_last_collect = [time.monotonic()]


def collect_cycles() -> None:
    """Run a full garbage collection at most once a minute, after a remote contact.

    The remote and its callbacks end up in reference cycles that hold libgit2 memory Python's collector
    thresholds do not notice, so without this the operator grows by ~0.4 KiB per remote contact, forever.
    A full collection takes tens of milliseconds in a busy operator, too much for every webhook-triggered
    fetch; once a minute keeps memory bounded at a negligible cost. The freed pages then go back to the
    operating system (``bluegreen.git.heap``), so the process's RSS tracks what is alive.
    """
    now = time.monotonic()
    if now - _last_collect[0] >= COLLECT_EVERY_SECONDS:
        _last_collect[0] = now
        gc.collect()
        release_free_memory()


@dataclass
class SyncResult:
    """The outcome of contacting the remote once: what it advertised, what was attempted, what failed."""

    advertised: dict[str, str] | None = None
    ls_remote: int = 0
    fetch: int = 0
    error: SourceError | None = None
    fetch_seconds: float = 0.0
    """How long the fetch took (0 without one)."""


def sync_mirror(
    repo: pygit2.Repository, remote: Remote, ref: GitRef, credentials: Credentials | None
) -> SyncResult:
    """List the remote's refs and fetch what the mirror lacks for ``ref``, on one connection."""
    result = SyncResult()
    callbacks = Callbacks(remote, credentials)
    link = None
    try:
        link = repo.remotes.create_anonymous(remote.fetch_url)
        result.ls_remote += 1
        with network_errors(remote, credentials, callbacks):
            link.connect(callbacks=callbacks)
            heads = link.list_heads(connect=False)
        result.advertised = {
            h.name: str(h.oid) for h in heads if h.name and h.name.startswith(("refs/heads/", "refs/tags/"))
        }
        plan = plan_fetch(repo, remote, ref, result.advertised)
        if plan is not None:
            result.fetch += 1
            started = time.monotonic()
            try:
                with network_errors(remote, credentials, callbacks):
                    prune = FetchPrune.PRUNE if plan.prune else FetchPrune.NO_PRUNE
                    link.fetch(list(plan.refspecs), callbacks=callbacks, prune=prune, depth=plan.depth)
            finally:
                result.fetch_seconds = time.monotonic() - started
            note_fetched(repo, plan, result.advertised)
    except SourceError as exc:
        result.error = SourceError(exc.reason, exc.message)  # no traceback keeping frames (and link) alive
    finally:
        del link  # frees the remote, which closes the connection now rather than when garbage is collected
    return result


@dataclass(frozen=True)
class FetchPlan:
    refspecs: tuple[str, ...]
    depth: int
    """0: complete history; 1: shallow; ``UNSHALLOW``: complete a shallow mirror."""
    prune: bool
    refname: str | None = None
    """The one ref fetched, for branch, tag and semver refs."""


def plan_fetch(repo: pygit2.Repository, remote: Remote, ref: GitRef, advertised: Mapping[str, str]) -> FetchPlan | None:
    """What to fetch so that ``ref`` resolves in the mirror as advertised; None when nothing is missing."""
    if ref.kind == "commit":
        if not repo.is_shallow and local_tips(repo) == tips(advertised):
            return None
        depth = UNSHALLOW if repo.is_shallow else 0
        return FetchPlan(FETCH_REFSPECS, depth, prune=True)
    refname, oid = select_ref(advertised, ref, remote)
    if oid in repo:
        return None
    shallow = remote.shallow_ok and (repo.is_shallow or not local_tips(repo))
    return FetchPlan((f"+{refname}:{refname}",), 1 if shallow else 0, prune=False, refname=refname)


def note_fetched(repo: pygit2.Repository, plan: FetchPlan, advertised: dict[str, str]) -> None:
    """Take the fetched ref's target as advertised (it may have moved since the listing)."""
    if plan.refname is None:
        return
    target = local_tips(repo).get(plan.refname)  # not references.get(): it leaks its argument in pygit2 1.21
    if target is not None and target != advertised.get(plan.refname):
        advertised[plan.refname] = target
        advertised.pop(plan.refname + "^{}", None)


def local_tips(repo: pygit2.Repository) -> dict[str, str]:
    tips = {}
    for reference in repo.references.iterator():
        if reference.name.startswith(("refs/heads/", "refs/tags/")) and isinstance(reference.target, pygit2.Oid):
            tips[reference.name] = str(reference.target)
    return tips
