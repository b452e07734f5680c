"""A level-triggered work queue over releases (in the manner of client-go's workqueue), on asyncio.

Watch events only say *which* release to look at; every pass re-reads the in-memory view of the cluster. A
release is never reconciled by two workers at once; events that arrive meanwhile mark it dirty, so exactly
one more pass follows. Each pass names when the next one is due (a scale-down time, a progress deadline, the
git interval); failures are retried with a per-release exponential backoff, reset by a success.

Timing (``Timing``): every requeue is late by a random 0..10 % (at most 5 s for a pass's own deadlines), so
releases that came due together do not wake together; and every release is looked at again at least once
per ``resync`` (10 minutes, +0..10 %), the first time after a start at a uniformly random point of that
interval, so a restart does not line the releases up. The first pass of each release runs at once.

The spec is parsed once per change of a release (its uid or generation), kept with it (or the ``SpecError``),
handed to every pass, and indexed: Services by (namespace, name) and repositories by key lead to their
releases without a scan of all releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bluegreen.core.repourl import repository_key
from bluegreen.core.spec import (
    ANNOTATION_ABORT,
    ANNOTATION_PROMOTE,
    ANNOTATION_RECONCILE_AT,
    ANNOTATION_RETRY,
    GitRef,
    ReleaseSpec,
    SpecError,
    parse_spec,
)
from bluegreen.kube.view import older
from bluegreen.logs import get_logger

Key = tuple[str, str]  # (namespace, name)
REQUEST_ANNOTATIONS = (ANNOTATION_PROMOTE, ANNOTATION_ABORT, ANNOTATION_RETRY)
"""A change of one of these (promote/abort/retry requests) queues the release, like a spec change."""
ReconcileFn = Callable[[Mapping[str, Any], ReleaseSpec | SpecError], float | None]
T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Backoff, jitter and resync of the queue, in seconds."""

    backoff_first: float = 0.5
    backoff_max: float = 60.0
    jitter: float = 0.1
    """Requeues are late by a random fraction up to this..."""
    jitter_max: float = 5.0
    """... and by at most this for a pass's own deadlines and for retries (not for the resync)."""
    resync: float = 600.0

    def backoff(self, failures: int) -> float:
        """The base delay before retry number ``failures`` (1, 2, ...): doubling, capped."""
        return min(self.backoff_max, self.backoff_first * 2.0 ** (failures - 1))


def ref_matches(ref: GitRef, pushed: str | None) -> bool:
    """Does a push to ``pushed`` (``refs/heads/x``, ``refs/tags/y``) concern a release following ``ref``?"""
    if pushed is None:
        return True
    if pushed.startswith("refs/heads/"):
        return ref.kind == "branch" and ref.name == pushed[len("refs/heads/"):]
    if pushed.startswith("refs/tags/"):
        return (ref.kind == "tag" and ref.name == pushed[len("refs/tags/"):]) or ref.kind == "semver"
    return False


@dataclass(frozen=True)
class ParsedSpec:
    """A release's spec as parsed for one version of it (uid, generation), with its repository's key."""

    version: tuple[Any, Any]
    spec: ReleaseSpec | SpecError
    repository: str | None = None
    """``repository_key`` of ``spec.source.url``; None for an invalid spec."""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ParsedSpec:
        meta = body["metadata"]
        spec = parse_spec(body.get("spec") or {})
        repository = repository_key(spec.source.url) if isinstance(spec, ReleaseSpec) else None
        return cls((meta.get("uid"), meta.get("generation")), spec, repository)

    def services(self) -> set[str]:
        """The Services the release switches (its Service and preview Service)."""
        if not isinstance(self.spec, ReleaseSpec):
            return set()
        return {name for name in (self.spec.service, self.spec.preview_service) if name}


def _link(index: dict[T, set[Key]], entry: T, key: Key, add: bool) -> None:
    if add:
        index.setdefault(entry, set()).add(key)
        return
    keys = index.get(entry)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[entry]


class Controller:
    """Keeps the latest body of each release, the indexes over their specs, and a queue of releases to
    reconcile. All methods run on the event loop, except ``written_from_thread``."""

    def __init__(self, reconcile: ReconcileFn, *, forget: Callable[[str, str], None] | None = None,
                 request_check: Callable[[str, str, float], None] | None = None, workers: int = 4,
                 timing: Timing | None = None, rand: Callable[[], float] = random.random) -> None:
        self._reconcile = reconcile
        self._forget = forget
        self._request_check = request_check
        self._workers = workers
        self.timing = timing or Timing()
        self._rand = rand
        self._releases: dict[Key, Mapping[str, Any]] = {}
        self._specs: dict[Key, ParsedSpec] = {}
        self._seen: dict[Key, tuple[Any, ...]] = {}
        self._by_service: dict[Key, set[Key]] = {}
        self._by_repository: dict[str, set[Key]] = {}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._resynced: set[Key] = set()  # releases whose first resync since the start is scheduled
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.log = get_logger("bluegreen.controller")

    # ---- what the watches report ----------------------------------------------------------------
    def upsert(self, body: Mapping[str, Any]) -> None:
        """A release was listed, added or changed; only changes of its spec, its reconcile-at annotation or its
        promote/abort/retry requests (not our status) queue it.
        A body older than the one kept (by resourceVersion) is ignored."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self._releases.get(key)
        if current is not None and older(str(meta.get("resourceVersion", "")),
                                         str(current["metadata"].get("resourceVersion", ""))):
            return
        self._releases[key] = body
        parsed = self._specs.get(key)
        if parsed is None or parsed.version != (meta.get("uid"), meta.get("generation")):
            self._reindex(key, parsed, ParsedSpec.of(body))
        annotations = meta.get("annotations") or {}
        fingerprint = (meta.get("uid"), meta.get("generation"), annotations.get(ANNOTATION_RECONCILE_AT),
                       tuple(annotations.get(key) for key in REQUEST_ANNOTATIONS))
        previous = self._seen.get(key)
        if previous != fingerprint:
            self._seen[key] = fingerprint
            token = fingerprint[2]
            forced = previous is not None and token is not None and token != previous[2]
            if forced and self._request_check is not None:
                self._request_check(key[0], key[1], time.monotonic())  # a new reconcile-at: check git at once
                if previous is not None and previous[:2] == fingerprint[:2] and previous[3:] == fingerprint[3:]:
                    return  # nothing else changed: the check queues the release when it is done
            self.enqueue(key)

    def release_written(self, body: Mapping[str, Any]) -> None:
        """The release as a status patch of a pass returned it: kept (if newer), so the next pass starts
        from it even before its watch event arrives. A release deleted meanwhile stays deleted."""
        meta = body["metadata"]
        current = self._releases.get((meta["namespace"], meta["name"]))
        if current is not None and current["metadata"].get("uid") == meta.get("uid"):
            self.upsert(body)

    def written_from_thread(self, body: Mapping[str, Any]) -> None:
        """``release_written`` from a pass's thread: handed to the loop before the pass returns, so the loop
        applies it before it learns that the pass is over."""
        assert self._loop is not None, "start() first"
        self._loop.call_soon_threadsafe(self.release_written, body)

    def remove(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._releases.pop(key, None)
        self._reindex(key, self._specs.get(key), None)
        self._seen.pop(key, None)
        self._failures.pop(key, None)
        self._resynced.discard(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if self._forget is not None:
            self._forget(namespace, name)

    def service_changed(self, namespace: str, service: str) -> None:
        """A Service changed: queue the releases that switch it."""
        for key in list(self._by_service.get((namespace, service), ())):
            self.enqueue(key)

    def releases(self) -> list[Key]:
        return list(self._releases)

    def releases_of_service(self, namespace: str, service: str) -> set[Key]:
        return set(self._by_service.get((namespace, service), ()))

    def releases_of_repository(self, url: str) -> set[Key]:
        return set(self._by_repository.get(repository_key(url), ()))

    def trigger(self, repository_urls: Iterable[str], ref: str | None) -> int:
        """A push to one of these repositories (to ``ref``, e.g. ``refs/heads/main``; None: any ref): check git
        now for every release that watches it. Returns how many releases were asked to check."""
        keys = {key for url in repository_urls for key in self._by_repository.get(repository_key(url), ())}
        now = time.monotonic()
        count = 0
        for key in sorted(keys):
            spec = self._specs[key].spec
            if not isinstance(spec, ReleaseSpec) or not ref_matches(spec.source.ref, ref):
                continue
            if self._request_check is not None:
                self._request_check(key[0], key[1], now)
            self.enqueue(key)
            count += 1
        return count

    def _reindex(self, key: Key, old: ParsedSpec | None, new: ParsedSpec | None) -> None:
        """Move ``key`` in the Service and repository indexes from its ``old`` spec to its ``new`` one."""
        for parsed, add in ((old, False), (new, True)):
            if parsed is None:
                continue
            for service in parsed.services():
                _link(self._by_service, (key[0], service), key, add)
            if parsed.repository is not None:
                _link(self._by_repository, parsed.repository, key, add)
        if new is None:
            self._specs.pop(key, None)
        else:
            self._specs[key] = new

    # ---- timing ---------------------------------------------------------------------------------
    def next_delay(self, key: Key, requested: float | None) -> float:
        """Seconds until the next pass of ``key`` after a pass that asked for ``requested`` (None: none)."""
        timing = self.timing
        if requested is not None and requested < timing.resync:
            base = max(0.0, requested)
            return base + min(timing.jitter_max, base * timing.jitter * self._rand())
        if key in self._resynced:
            base = timing.resync
        else:  # the first resync after a start: anywhere in the interval
            self._resynced.add(key)
            base = timing.resync * self._rand()
        return base * (1 + timing.jitter * self._rand())

    def retry_delay(self, failures: int) -> float:
        base = self.timing.backoff(failures)
        return base + min(self.timing.jitter_max, base * self.timing.jitter * self._rand())

    # ---- the queue ------------------------------------------------------------------------------
    def enqueue(self, key: Key) -> None:
        if key not in self._releases or key in self._queued:
            return
        self._queued.add(key)
        if key not in self._active:
            self._queue.put_nowait(key)

    def enqueue_after(self, key: Key, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds, replacing the timer set before."""
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(0.0, delay), self.enqueue, key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            body, parsed = self._releases.get(key), self._specs.get(key)
            if body is None or parsed is None:
                continue
            self._active.add(key)
            try:
                requested = await asyncio.to_thread(self._reconcile, body, parsed.spec)
                self._failures.pop(key, None)
                delay = self.next_delay(key, requested)
            except Exception as exc:  # a failed pass is retried with backoff; the error is logged, not fatal
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = self.retry_delay(failures)
                self.log.warning("reconcile failed; retrying", release=key[1], namespace=key[0], action="Reconcile",
                                 error=f"{type(exc).__name__}: {exc}"[:500], retry_in=round(delay, 3))
            finally:
                self._active.discard(key)
            if key not in self._releases:  # deleted during the pass: drop what the pass may have re-created
                self._failures.pop(key, None)
                if self._forget is not None:
                    self._forget(*key)
                continue
            if key in self._queued:  # events arrived while we worked: go again now
                self._queue.put_nowait(key)
            else:
                self.enqueue_after(key, delay)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._work(), name=f"bluegreen-worker-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
