"""A level-triggered work queue over releases (in the manner of client-go's workqueue), on asyncio.

Watch events only say *which* release to look at; every pass re-reads everything. A release is never
reconciled by two workers at once; events that arrive meanwhile mark it dirty, so exactly one more pass
follows. Each pass names when the next one is due (a scale-down time, a progress deadline, the git
interval); failures are retried with a per-release exponential backoff.

The spec is parsed once per change of a release (its uid or generation), kept with it (or the ``SpecError``),
used for matching Service events and pushes, and handed to every pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bluegreen.core.repourl import repository_key
from bluegreen.core.spec import ANNOTATION_RECONCILE_AT, GitRef, ReleaseSpec, SpecError, parse_spec
from bluegreen.logs import get_logger

Key = tuple[str, str]  # (namespace, name)
ReconcileFn = Callable[[Mapping[str, Any], ReleaseSpec | SpecError], float | None]

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 60.0


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


class Controller:
    """Keeps the latest body of each release and a queue of releases to reconcile."""

    def __init__(self, reconcile: ReconcileFn, *, forget: Callable[[str, str], None] | None = None,
                 request_check: Callable[[str, str, float], None] | None = None, workers: int = 4) -> None:
        self._reconcile = reconcile
        self._forget = forget
        self._request_check = request_check
        self._workers = workers
        self._releases: dict[Key, Mapping[str, Any]] = {}
        self._specs: dict[Key, ParsedSpec] = {}
        self._seen: dict[Key, tuple[Any, ...]] = {}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.log = get_logger("bluegreen.controller")

    # ---- what the watches report ----------------------------------------------------------------
    def upsert(self, body: Mapping[str, Any]) -> None:
        """A release was listed, added or changed; only spec/annotation changes (not our status) queue it."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self._releases[key] = body
        parsed = self._specs.get(key)
        if parsed is None or parsed.version != (meta.get("uid"), meta.get("generation")):
            self._specs[key] = ParsedSpec.of(body)
        fingerprint = (meta.get("uid"), meta.get("generation"),
                       (meta.get("annotations") or {}).get(ANNOTATION_RECONCILE_AT))
        previous = self._seen.get(key)
        if previous != fingerprint:
            self._seen[key] = fingerprint
            token = fingerprint[2]
            forced = previous is not None and token is not None and token != previous[2]
            if forced and self._request_check is not None:
                self._request_check(key[0], key[1], time.monotonic())  # a new reconcile-at: check git at once
                if previous is not None and previous[:2] == fingerprint[:2]:
                    return  # nothing else changed: the check queues the release when it is done
            self.enqueue(key)

    def remove(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._releases.pop(key, None)
        self._specs.pop(key, None)
        self._seen.pop(key, None)
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if self._forget is not None:
            self._forget(namespace, name)

    def service_changed(self, namespace: str, service: str) -> None:
        for (ns, name), parsed in list(self._specs.items()):
            spec = parsed.spec
            if ns == namespace and isinstance(spec, ReleaseSpec) and service in (spec.service, spec.preview_service):
                self.enqueue((ns, name))

    def releases(self) -> list[Key]:
        return list(self._releases)

    def trigger(self, repository_urls: Iterable[str], ref: str | None) -> int:
        """A push to one of these repositories (to ``ref``, e.g. ``refs/heads/main``; None: any ref): check git
        now for every release that watches it. Returns how many releases were asked to check."""
        wanted = {repository_key(url) for url in repository_urls}
        now = time.monotonic()
        count = 0
        for key, parsed in list(self._specs.items()):
            spec = parsed.spec
            if not isinstance(spec, ReleaseSpec) or parsed.repository not in wanted:
                continue
            if not ref_matches(spec.source.ref, ref):
                continue
            if self._request_check is not None:
                self._request_check(key[0], key[1], now)
            self.enqueue(key)
            count += 1
        return count

    # ---- the queue ------------------------------------------------------------------------------
    def enqueue(self, key: Key) -> None:
        if key not in self._releases or key in self._queued:
            return
        self._queued.add(key)
        if key not in self._active:
            self._queue.put_nowait(key)

    def enqueue_after(self, key: Key, delay: float) -> None:
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
                delay = await asyncio.to_thread(self._reconcile, body, parsed.spec)
                self._failures.pop(key, None)
            except Exception as exc:  # a failed pass is retried with backoff; the error is logged, not fatal
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
                self.log.warning("reconcile failed; retrying", release=key[1], namespace=key[0], action="Reconcile",
                                 error=f"{type(exc).__name__}: {exc}"[:500], retry_in=delay)
            finally:
                self._active.discard(key)
            if key not in self._releases:  # deleted during the pass: drop what the pass may have re-created
                self._failures.pop(key, None)
                if self._forget is not None:
                    self._forget(*key)
                continue
            if key in self._queued:  # events arrived while we worked: go again now
                self._queue.put_nowait(key)
            elif delay is not None and key in self._releases:
                self.enqueue_after(key, delay)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"bluegreen-worker-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
