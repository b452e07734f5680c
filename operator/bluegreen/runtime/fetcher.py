"""The fetch scheduler: git is read per feed (one repository and credentials Secret) on fetch threads, never
inside a reconcile pass; a pass only reads the latest result (``result``), which never blocks.

The rules (what is due, lanes, coalescing, who is notified) are ``runtime.feeds.FeedBook``'s; one run's work
(Secret, fetch, read, verify, parse) is ``runtime.fetch_work.FeedWork``'s. This module runs them:

- one dispatcher thread sleeps until the next run is due (or a subscription, a request or a finished run
  wakes it) and starts each run on a thread of its own;
- why a thread per run rather than a fixed pool: a run blocked on a silent server cannot be interrupted
  (libgit2 returns after its network timeout), so a fixed pool can be used up by hanging repositories. Here
  the runs are bounded instead (``max_threads`` in flight): at most ``workers`` fresh ones, and a run that
  turns out slow (``stuck_after``) or belongs to a slow repository is in the slow lane, which has its own
  budget (``max_threads - workers``); see ``runtime.feeds``. No thread exists while no run is in flight;
- when a run changes a release's result (or serves its forced check), ``on_change(namespace, name)`` is
  called from that run's thread: the operator queues the release (``Controller.enqueue``, thread-safely).

``inline=True`` runs due work in the caller's thread instead (``run_due``): the reconciler's default when it
is not given a scheduler, for unit tests and one-off tools.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable
from typing import Final

from bluegreen.core.errors import Outcome
from bluegreen.core.protocols import Source, Verifier
from bluegreen.core.recorder import Recorder
from bluegreen.logs import get_logger
from bluegreen.runtime.feeds import (
    JITTER,
    MAX_THREADS,
    STUCK_AFTER,
    WORKERS,
    FeedBook,
    RunOutcome,
    SourceResult,
    Subscription,
    Work,
)
from bluegreen.runtime.fetch_work import FeedWork, Secrets

IDLE_WAKE_SECONDS: Final = 60.0
"""The dispatcher looks around at least this often, whatever it expects."""

OnChange = Callable[[str, str], None]


class FetchScheduler:
    """Subscriptions from the passes, git checks on fetch threads, results for the passes."""

    def __init__(self, source: Source, secrets: Secrets, verifier: Verifier, *, workers: int = WORKERS,
                 max_threads: int = MAX_THREADS, stuck_after: float = STUCK_AFTER, jitter: float = JITTER,
                 monotonic: Callable[[], float] = time.monotonic, random: Callable[[], float] = _random.random,
                 inline: bool = False, recorder: Recorder | None = None) -> None:
        self.book = FeedBook(workers=workers, max_threads=max_threads, stuck_after=stuck_after, jitter=jitter,
                             random=random)
        self.work = FeedWork(source, secrets, verifier)
        self.monotonic = monotonic
        self.inline = inline
        self.recorder = recorder if recorder is not None else Recorder()
        self.log = get_logger("bluegreen.fetcher")
        self._cond = threading.Condition()
        self._on_change: OnChange = _ignore
        self._dispatcher: threading.Thread | None = None
        self._stopping = False
        self._in_flight = 0

    # ---- what passes and webhooks call (never blocks on git) ------------------------------------
    def subscribe(self, sub: Subscription) -> None:
        with self._cond:
            if self.book.subscribe(sub):
                self._start_due()

    def unsubscribe(self, namespace: str, name: str) -> None:
        with self._cond:
            self.book.unsubscribe((namespace, name))

    def request_check(self, namespace: str, name: str, at: float) -> None:
        """Check git for this release's feed now, against a remote no older than ``at`` (monotonic)."""
        with self._cond:
            if self.book.request((namespace, name), at):
                self._start_due()

    def result(self, namespace: str, name: str) -> SourceResult | None:
        """The latest result for the release's current subscription (None: its first check is not done)."""
        with self._cond:
            return self.book.result((namespace, name))

    def requested_at(self, namespace: str, name: str, *, served: bool = False) -> float | None:
        """When the release asked for a forced check that is not done yet (None: no such check); with
        ``served``, its latest forced check, done or not."""
        with self._cond:
            return self.book.requested_at((namespace, name), served=served)

    def in_flight(self) -> int:
        """Runs under way now (for tests and metrics)."""
        with self._cond:
            return self._in_flight

    # ---- running --------------------------------------------------------------------------------
    def run_due(self) -> None:
        """Inline mode: run everything that is due now, in this thread."""
        with self._cond:
            works = self.book.take(self.monotonic(), unlimited=True)
            self._in_flight += len(works)
        for work in works:
            self._run(work)

    def start(self, on_change: OnChange) -> None:
        """Start the dispatcher thread; ``on_change`` hears of every release to queue."""
        self._on_change = on_change
        self._stopping = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="bluegreen-fetch-dispatcher", daemon=True)
        self._dispatcher.start()

    def stop(self) -> None:
        """Stop starting runs; runs in flight end on their own (their threads are daemons)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
            self._dispatcher = None

    def _dispatch(self) -> None:
        with self._cond:
            while not self._stopping:
                now = self._start_due()
                wake = self.book.wake_at(now)
                timeout = IDLE_WAKE_SECONDS if wake is None else min(IDLE_WAKE_SECONDS, max(0.0, wake - now))
                self._cond.wait(timeout)

    def _start_due(self) -> float:
        """Start the runs that are due now, each on a thread of its own (called with the lock held): from the
        dispatcher, and straight from a subscription or a request, which saves a thread hop on a push."""
        now = self.monotonic()
        if self._dispatcher is None or self._stopping:  # inline, or not started: nothing runs by itself
            return now
        for work in self.book.take(now):
            self._in_flight += 1
            threading.Thread(target=self._run, args=(work,), name="bluegreen-fetch", daemon=True).start()
        self._cond.notify_all()  # the dispatcher recomputes when to wake
        return now

    def _run(self, work: Work) -> None:
        try:
            outcome = self.work(work)
        except Exception as exc:  # a bug or an unexpected library error: reported as a transient failure
            self.log.warning("git check failed", action="Fetch", feed=work.feed[0],
                             error=f"{type(exc).__name__}: {exc}"[:500])
            outcome = _failed_run(work, f"The git check failed unexpectedly ({type(exc).__name__}); retried on "
                                        "the next check.")
        for (namespace, name), result in outcome.results.items():  # the first one is when a commit was seen
            if result.commit is not None:
                self.recorder.commit_seen(namespace, name, result.commit.sha)
        with self._cond:
            self._in_flight -= 1
            notify = self.book.complete(work, outcome, self.monotonic())
            self._cond.notify_all()
        for namespace, name in sorted(notify):
            try:
                self._on_change(namespace, name)
            except Exception as exc:  # e.g. the event loop is closed at shutdown
                self.log.debug("could not queue release", release=name, namespace=namespace, error=repr(exc))


def _failed_run(work: Work, message: str) -> RunOutcome:
    """Every subscriber's result after a run that crashed: a transient failure."""
    outcome = Outcome(False, "FetchFailed", message)
    return RunOutcome({sub.release: SourceResult(outcome, checked_at=work.started) for sub in work.subscriptions})


def _ignore(namespace: str, name: str) -> None:
    """No one to tell (inline mode: the pass reads the result right away)."""

