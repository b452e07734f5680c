"""Garbage collection for a bare git mirror: what ``git gc --prune=now`` does, with libgit2 only.

libgit2 stores every fetch as a new pack and never collects garbage. A mirror that follows a busy branch
therefore gains one pack per fetch, keeps every commit the branch has moved away from, and (when fetched
shallowly) one more line in its ``shallow`` file per fetch. Each of those costs time and memory on every
later open and lookup, so a long-running operator would slow down and grow without bound.

``compact`` rewrites the objects reachable from the mirror's branches and tags (plus ``extra_roots``,
commits handed out recently that a caller may still read) into one pack, removes every other pack and all
loose objects, and drops ``shallow`` entries for commits that are gone. The new pack is complete before
anything is removed, so a crash midway leaves a readable mirror (with duplicates the next run removes).

The caller must hold the mirror exclusively for the duration (``GitSource`` holds the mirror's lock).

The cache directory's layout is defined here too (``mirror_dir``, ``staging_dir``), next to
``stale_mirrors``, which finds what the directory no longer needs: mirrors nobody fetched through for a week
(a deleted release, a rotated Secret: each credential set has its own mirror) and staging directories
left by an interrupted mirror creation.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pygit2
from pygit2.enums import FileMode, ObjectType

PACK_LIMIT: Final = 32
"""Compact once a mirror holds this many packs (git's own ``gc.autoPackLimit`` is 50)."""

_PACK_SUFFIXES: Final = (".pack", ".idx", ".rev", ".bitmap", ".mtimes", ".promisor")
_HEX: Final = frozenset("0123456789abcdef")
_MIRROR_NAME: Final = re.compile(r"[0-9a-f]{16}")
_STAGING_NAME: Final = re.compile(r"\.[0-9a-f]{16}\.[0-9a-f]{32}\.tmp")
"""The cache directory's layout: ``mirror_dir`` and ``staging_dir`` make these names, ``stale_mirrors`` reads them."""


@dataclass(frozen=True)
class CompactionResult:
    """What one compaction did."""

    packs_before: int
    packs_after: int
    objects: int
    """Objects kept (all in the one new pack)."""
    loose_removed: int
    shallow_before: int
    shallow_after: int
    seconds: float


def mirror_dir(cache_dir: Path, identity: str) -> Path:
    """Where the mirror for ``identity`` (a repository key and credential fingerprint) lives."""
    return cache_dir / hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def staging_dir(mirror: Path) -> Path:
    """A fresh place to build ``mirror`` before renaming it into place."""
    return mirror.parent / f".{mirror.name}.{uuid.uuid4().hex}.tmp"


def needs_compaction(mirror: Path, limit: int = PACK_LIMIT) -> bool:
    """Whether the mirror holds ``limit`` packs or more."""
    return len(_packs(mirror)) >= limit


def compact(mirror: Path, extra_roots: Iterable[str] = ()) -> CompactionResult:
    """Repack the objects reachable from the mirror's refs and ``extra_roots`` into one pack; drop the rest."""
    started = time.monotonic()
    pack_dir = mirror / "objects" / "pack"
    before = _packs(mirror)
    staging = mirror / "objects" / f"compacting-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        repo = pygit2.Repository(str(mirror))
        try:
            kept = _reachable_objects(repo, _roots(repo, extra_roots))
            if kept:
                _write_pack(repo, kept, staging)
        finally:
            repo.free()
        new = _install_packs(staging, pack_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stem in before - new:
        if not (pack_dir / f"{stem}.keep").exists():
            _remove_pack(pack_dir, stem)
    loose_removed = _remove_loose_objects(mirror)
    shallow_before, shallow_after = _trim_shallow(mirror, {str(oid) for oid in kept})
    return CompactionResult(
        packs_before=len(before),
        packs_after=len(_packs(mirror)),
        objects=len(kept),
        loose_removed=loose_removed,
        shallow_before=shallow_before,
        shallow_after=shallow_after,
        seconds=time.monotonic() - started,
    )


def stale_mirrors(cache_dir: Path, *, now: float, stale_after: float, staging_after: float = 3600.0) -> list[Path]:
    """Entries of ``cache_dir`` to delete: mirrors (16 hex digits) last used more than ``stale_after``
    seconds before ``now`` (wall-clock; a mirror's directory mtime is its last use) and staging directories
    (``.<mirror>.<id>.tmp``) older than ``staging_after``. Anything else in the directory is left alone."""
    found = []
    try:
        entries = list(os.scandir(cache_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:  # removed meanwhile, e.g. a staging directory renamed into place
            continue
        stale_mirror = _MIRROR_NAME.fullmatch(entry.name) and age > stale_after
        if stale_mirror or (_STAGING_NAME.fullmatch(entry.name) and age > staging_after):
            found.append(Path(entry.path))
    return sorted(found)


def _packs(mirror: Path) -> set[str]:
    """Stems (``pack-<hash>``) of the mirror's packs that have both their ``.pack`` and ``.idx``."""
    return _packs_in(mirror / "objects" / "pack")


def _packs_in(directory: Path) -> set[str]:
    try:
        names = set(os.listdir(directory))
    except FileNotFoundError:
        return set()
    return {name[:-5] for name in names if name.endswith(".pack") and f"{name[:-5]}.idx" in names}


def _roots(repo: pygit2.Repository, extra_roots: Iterable[str]) -> list[pygit2.Oid]:
    roots = []
    for reference in repo.references.iterator():
        target = reference.target
        if isinstance(target, pygit2.Oid):  # symbolic refs (HEAD) name a ref that is listed anyway
            roots.append(target)
    for sha in extra_roots:
        if sha in repo:
            roots.append(pygit2.Oid(hex=sha))
    return roots


def _reachable_objects(repo: pygit2.Repository, roots: list[pygit2.Oid]) -> list[pygit2.Oid]:
    """Every object reachable from ``roots`` that the mirror holds, each once.

    Missing objects are skipped rather than fatal: the parents of a shallow mirror's oldest commits, and
    the commits behind submodule entries, are not there by design.
    """
    seen: set[pygit2.Oid] = set()
    kept: list[pygit2.Oid] = []
    pending = list(roots)
    while pending:
        oid = pending.pop()
        if oid in seen:
            continue
        seen.add(oid)
        obj = repo.get(oid)
        if obj is None:
            continue
        kept.append(oid)
        if obj.type == ObjectType.COMMIT:
            assert isinstance(obj, pygit2.Commit)
            pending.append(obj.tree_id)
            pending.extend(obj.parent_ids)
        elif obj.type == ObjectType.TAG:
            assert isinstance(obj, pygit2.Tag)
            pending.append(obj.target)
        elif obj.type == ObjectType.TREE:
            assert isinstance(obj, pygit2.Tree)
            for entry in obj:
                if entry.filemode == FileMode.COMMIT:
                    continue  # a submodule: its commit lives in another repository
                if entry.filemode == FileMode.TREE:
                    pending.append(entry.id)
                elif entry.id not in seen:  # a blob: packed without reading its content
                    seen.add(entry.id)
                    kept.append(entry.id)
    return kept


def _write_pack(repo: pygit2.Repository, objects: list[pygit2.Oid], directory: Path) -> None:
    builder = pygit2.PackBuilder(repo)
    try:
        for oid in objects:
            builder.add(oid)
        builder.write(str(directory))
    finally:
        del builder  # frees libgit2's packbuilder (and its object table) now


def _install_packs(staging: Path, pack_dir: Path) -> set[str]:
    """Move the packs written to ``staging`` into ``pack_dir`` (the ``.idx`` last, as git does, so a pack is
    never visible before it is whole); return their stems. A pack of that name already there is the same
    content and stays."""
    stems = _packs_in(staging)
    for stem in stems:
        if (pack_dir / f"{stem}.pack").exists() and (pack_dir / f"{stem}.idx").exists():
            continue
        for suffix in (*(x for x in _PACK_SUFFIXES if x != ".idx"), ".idx"):
            written = staging / f"{stem}{suffix}"
            if written.exists():
                written.replace(pack_dir / f"{stem}{suffix}")
    return stems


def _remove_pack(pack_dir: Path, stem: str) -> None:
    for suffix in _PACK_SUFFIXES:
        (pack_dir / f"{stem}{suffix}").unlink(missing_ok=True)


def _remove_loose_objects(mirror: Path) -> int:
    """Delete every loose object: the reachable ones are in the new pack, the others are garbage."""
    removed = 0
    objects = mirror / "objects"
    for fanout in os.scandir(objects):
        if len(fanout.name) != 2 or not set(fanout.name) <= _HEX or not fanout.is_dir():
            continue
        for loose in os.scandir(fanout.path):
            os.unlink(loose.path)
            removed += 1
        os.rmdir(fanout.path)
    return removed


def _trim_shallow(mirror: Path, kept: set[str]) -> tuple[int, int]:
    """Keep only the ``shallow`` entries for commits still present: (entries before, entries after)."""
    shallow = mirror / "shallow"
    try:
        entries = shallow.read_text(encoding="ascii").split()
    except FileNotFoundError:
        return 0, 0
    remaining = [sha for sha in entries if sha in kept]
    if len(remaining) == len(entries):
        return len(entries), len(entries)
    if not remaining:
        shallow.unlink()
        return len(entries), 0
    staging = mirror / "shallow.compacting"
    staging.write_text("".join(f"{sha}\n" for sha in remaining), encoding="ascii")
    staging.replace(shallow)
    return len(entries), len(remaining)
