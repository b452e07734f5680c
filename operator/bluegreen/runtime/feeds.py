"""The fetch scheduler's bookkeeping: which git checks are due, in which lane they run, who hears of the
results. Pure (no threads, no I/O, the clock and the randomness are handed in); ``FetchScheduler`` in
``runtime.fetcher`` runs it.

Releases *subscribe* with what their ``spec.source`` names (a ``Subscription``). Subscriptions of the same
repository (``git.remote``'s mirror key of the URL) and the same credentials Secret form one *feed*, checked
by one run at a time, whatever the number of releases:

- **Timed**: a feed is due ``interval * (1 + u)`` after its mirror last contacted the remote (or its last run
  started, when it could not), with ``interval`` the shortest of its subscribers' and ``u`` drawn anew each
  time from ``[0, jitter)``: feeds that started together drift apart, and no feed is checked more often than
  its interval. A timed run accepts a remote contact made in the last half interval (``not_before``), so
  feeds whose Secrets hold the same credentials, which share one git mirror, share its contacts too.
- **Joining**: a new subscriber, or one whose source changed, makes the feed due now, content with the
  mirror's last contact (no remote contact just because a release was created or the operator restarted).
- **Forced**: a push webhook, the ``bluegreen.dev/reconcile-at`` annotation or a resume asks for a check no
  older than the moment it asked. Requests coalesce: any number of them while a run is under way cost one
  more run after it, and one run serves every request made before it started.
- **Lanes**: at most ``workers`` runs are *fresh* at a time, and at most ``max_threads`` are in flight. A run
  older than ``stuck_after`` seconds (a slow or hanging server) stops counting as fresh and counts against
  the slow budget (``max_threads - workers``); a feed whose last run took that long runs in the slow lane,
  which never takes a fresh place. A due run that finds the fresh places taken starts in the slow lane at
  once if it is a forced check or a release's first one (what people wait for), else once it has waited
  ``stuck_after``. So as long as fewer than ``max_threads - workers`` repositories hang at once, a check of
  a healthy one never waits for them: a forced or first check not at all, a timed one at most
  ``stuck_after`` (while hanging repositories are not known to be slow yet).
- **Notified** after a run: the releases whose result changed (a new commit, a new error, a recovery), the
  releases that joined, and those whose forced check it served.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bluegreen.core.commits import CommitInfo
from bluegreen.core.desired import DesiredTemplate
from bluegreen.core.errors import Outcome, SourceError
from bluegreen.core.hook_jobs import JobManifest
from bluegreen.core.spec import GitRef, ReleaseRef, ReleaseSpec
from bluegreen.git.remote import parse_url

ReleaseKey = tuple[str, str]
"""(namespace, name)"""
FeedKey = tuple[str, str | None, str | None]
"""(the repository's mirror key, the credentials Secret's namespace and name, or None twice)"""

JITTER = 0.05
WORKERS = 4
MAX_THREADS = 64
STUCK_AFTER = 2.0
VERDICTS_KEPT = 16
MAX_BACKOFF = 10.0
"""A feed whose checks keep failing (unreachable remote, refused credentials, missing Secret) waits its interval
times 1, 2, 4, 8, then at most this factor between timed checks; a forced check is never held back."""


class Lane(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class Subscription:
    """What one release asks to be read from git."""

    release: ReleaseKey
    url: str
    ref: GitRef
    path: str
    secret: str | None = None
    """``spec.source.secretRef.name``: the git credentials, in the release's namespace."""
    verify_secret: str | None = None
    """``spec.source.verify.secretRef.name``: the trusted keys, when signatures are checked."""
    interval: float = 30.0
    job_paths: tuple[str, ...] = ()
    """More files of the same commit: the hook Job manifests (``job.path`` of the checks, the migrations),
    read at the manifest's commit and parsed as batch/v1 Jobs (``SourceResult.job_manifests``)."""

    @classmethod
    def of(cls, release: ReleaseRef, spec: ReleaseSpec, job_paths: tuple[str, ...] = ()) -> Subscription:
        src = spec.source
        verify = src.verify.secret_ref if src.verify is not None else None
        return cls((release.namespace, release.name), src.url, src.ref, src.path, src.secret_ref, verify,
                   src.interval_seconds, tuple(sorted(set(job_paths))))

    def same_source(self, other: Subscription) -> bool:
        """Whether both read the same thing (they may differ in their interval)."""
        return (self.url, self.ref, self.path, self.secret, self.verify_secret, self.job_paths) == \
            (other.url, other.ref, other.path, other.secret, other.verify_secret, other.job_paths)


def feed_key(sub: Subscription) -> FeedKey:
    """The feed a subscription belongs to: one per repository and credentials Secret."""
    try:
        repository = parse_url(sub.url).key
    except SourceError:  # the run reports it; such a URL is a feed of its own
        repository = sub.url
    if sub.secret is None:
        return (repository, None, None)
    return (repository, sub.release[0], sub.secret)


@dataclass(frozen=True)
class SourceResult:
    """What the latest check of git says for one release (what the pass adopts into its memory)."""

    source: Outcome
    """``Fetched`` with the commit, or why not."""
    commit: CommitInfo | None = None
    """The commit the ref pointed to; None when the check failed before reaching one."""
    template: DesiredTemplate | None = None
    """The manifest to release; None when there is none (see ``source``)."""
    verified: Outcome | None = None
    """The signature verdict, when ``verify`` is set."""
    checked_at: float = field(default=0.0, compare=False)
    """``time.monotonic()`` when the run that produced it started; not part of what changed."""
    job_manifests: Mapping[str, JobManifest] = field(default_factory=dict)
    """The parsed Job manifests of the commit by path (``Subscription.job_paths``), with ``template``."""


@dataclass(frozen=True)
class Work:
    """One run of a feed: check these subscriptions against a mirror refreshed no earlier than ``not_before``."""

    feed: FeedKey
    subscriptions: tuple[Subscription, ...]
    previous: Mapping[ReleaseKey, SourceResult]
    not_before: float
    started: float
    lane: Lane
    verdicts: dict[tuple[str, str], Outcome] = field(compare=False)
    contacts: bool = True
    """Whether ``not_before`` asks for a fresh remote contact (a timed or forced check, or the first one)."""
    """The feed's signature verdicts by (commit, trusted keys): written only by its one run in flight."""


@dataclass(frozen=True)
class RunOutcome:
    results: Mapping[ReleaseKey, SourceResult]
    refreshed_at: float | None = None
    """When the mirror last contacted the remote, as this run saw it (None: no check succeeded)."""


@dataclass
class Feed:
    key: FeedKey
    jitter: float
    subscribers: dict[ReleaseKey, Subscription] = field(default_factory=dict)
    base: float | None = None
    """When the mirror last contacted the remote, or the last run started if it could not."""
    requests: dict[ReleaseKey, float] = field(default_factory=dict)
    """Forced checks not served yet: release -> when it asked."""
    joiners: set[ReleaseKey] = field(default_factory=set)
    """Subscribers without a result for their current subscription."""
    running: Work | None = None
    slow: bool = False
    """Its last run took longer than ``stuck_after``: it runs in the slow lane."""
    verdicts: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    failures: int = 0
    """Timed or forced runs in a row that reached no commit (see ``backoff``)."""

    @property
    def interval(self) -> float:
        return min(sub.interval for sub in self.subscribers.values())

    @property
    def backoff(self) -> float:
        """The factor on the interval after ``failures`` failed runs in a row: 1, 1, 2, 4, 8, MAX_BACKOFF."""
        return min(2.0 ** max(self.failures - 1, 0), MAX_BACKOFF)

    def timed_due(self) -> float:
        """When the next timed check is due (-inf before the first run)."""
        if self.base is None:
            return -math.inf
        return self.base + self.interval * self.backoff * (1 + self.jitter)

    def due(self) -> float:
        """When this feed should run next: at once for a request or a joiner, else its timed check."""
        if self.requests or self.joiners:
            return -math.inf
        return self.timed_due()

    def not_before(self, now: float) -> float:
        """The oldest remote contact a run starting ``now`` may use: the latest request's moment; for a timed
        check one in the last half interval; for joiners alone the mirror's last contact."""
        if self.requests:
            return max(self.requests.values())
        if self.base is None:
            return now
        if now >= self.timed_due():
            return now - self.interval / 2
        return self.base


class FeedBook:
    """Subscriptions, feeds and results; not thread-safe (``FetchScheduler`` holds a lock around it)."""

    def __init__(self, *, workers: int = WORKERS, max_threads: int = MAX_THREADS, stuck_after: float = STUCK_AFTER,
                 jitter: float = JITTER, random: Callable[[], float]) -> None:
        if workers < 1 or max_threads <= workers:
            raise ValueError(f"need 1 <= workers < max_threads, got {workers} and {max_threads}")
        self.workers = workers
        self.max_threads = max_threads
        self.stuck_after = stuck_after
        self.jitter = jitter
        self.random = random
        self.feeds: dict[FeedKey, Feed] = {}
        self.subscriptions: dict[ReleaseKey, Subscription] = {}
        self.results: dict[ReleaseKey, SourceResult] = {}
        self.asked: dict[ReleaseKey, float] = {}
        """The latest forced check each release asked for, served or not."""

    # ---- what the passes say --------------------------------------------------------------------
    def subscribe(self, sub: Subscription) -> bool:
        """Add or update a release's subscription; True when something changed (the dispatcher may act)."""
        old = self.subscriptions.get(sub.release)
        if old == sub:
            return False
        key = feed_key(sub)
        if old is not None and feed_key(old) != key:
            self._leave(old)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(key, self._draw())
        feed.subscribers[sub.release] = sub
        self.subscriptions[sub.release] = sub
        if old is None or not old.same_source(sub) or sub.release not in self.results:
            self.results.pop(sub.release, None)
            feed.joiners.add(sub.release)
        return True

    def unsubscribe(self, release: ReleaseKey) -> None:
        self.asked.pop(release, None)
        old = self.subscriptions.pop(release, None)
        if old is not None:
            self._leave(old)

    def request(self, release: ReleaseKey, at: float) -> bool:
        """A forced check for ``release``'s feed, no older than ``at``; False when it is not subscribed."""
        sub = self.subscriptions.get(release)
        if sub is None:
            return False
        feed = self.feeds[feed_key(sub)]
        feed.requests[release] = max(at, feed.requests.get(release, at))
        self.asked[release] = max(at, self.asked.get(release, at))
        return True

    def result(self, release: ReleaseKey) -> SourceResult | None:
        return self.results.get(release)

    def requested_at(self, release: ReleaseKey, *, served: bool = False) -> float | None:
        """When ``release`` last asked for a forced check that no run has served yet (None: none), or with
        ``served`` one served or not."""
        if served:
            return self.asked.get(release)
        sub = self.subscriptions.get(release)
        return None if sub is None else self.feeds[feed_key(sub)].requests.get(release)

    def due_at(self, release: ReleaseKey) -> float | None:
        """When the feed of ``release`` runs next (None: not subscribed)."""
        sub = self.subscriptions.get(release)
        return None if sub is None else self.feeds[feed_key(sub)].due()

    # ---- what the dispatcher does ---------------------------------------------------------------
    def take(self, now: float, *, unlimited: bool = False) -> list[Work]:
        """Start the runs that are due and fit in their lane (all that are due with ``unlimited``)."""
        running = [feed.running for feed in self.feeds.values() if feed.running is not None]
        fresh = sum(1 for work in running if work.lane is Lane.FAST and now - work.started < self.stuck_after)
        other = len(running) - fresh
        due = [feed for feed in self.feeds.values() if feed.running is None and feed.due() <= now]
        due.sort(key=lambda feed: (_priority(feed), feed.timed_due()))
        started = []
        for feed in due:
            lane = Lane.SLOW if feed.slow else Lane.FAST
            if not unlimited:
                if lane is Lane.FAST and (fresh >= self.workers or fresh + other >= self.max_threads):
                    if not self._may_overflow(feed, now):
                        continue
                    lane = Lane.SLOW  # no more waiting for the fresh places
                if lane is Lane.SLOW and other >= self.max_threads - self.workers:
                    continue
            fresh, other = (fresh + 1, other) if lane is Lane.FAST else (fresh, other + 1)
            contacts = bool(feed.requests) or now >= feed.timed_due()
            feed.running = Work(feed.key, tuple(feed.subscribers.values()),
                                {k: self.results[k] for k in feed.subscribers if k in self.results},
                                feed.not_before(now), now, lane, feed.verdicts, contacts)
            started.append(feed.running)
        return started

    def wake_at(self, now: float) -> float | None:
        """When ``take`` may have something new to start (None: only after a change or a finished run)."""
        moments = []
        held_back = False
        for feed in self.feeds.values():
            if feed.running is not None:
                continue
            due = feed.due()
            if due > now:
                moments.append(due)
                continue
            held_back = True  # due already, held back by its lane: it overflows once it waited stuck_after
            if due + self.stuck_after > now:
                moments.append(due + self.stuck_after)
        if held_back:  # ... or a fresh run turning stuck frees a place
            moments += [feed.running.started + self.stuck_after for feed in self.feeds.values()
                        if feed.running is not None and feed.running.lane is Lane.FAST
                        and feed.running.started + self.stuck_after > now]
        return min(moments, default=None)

    def _may_overflow(self, feed: Feed, now: float) -> bool:
        """May this due feed start in the slow lane when the fresh places are taken? A forced check or a
        release's first one at once; a timed check once it waited ``stuck_after``."""
        return bool(feed.requests or feed.joiners) or now - feed.timed_due() >= self.stuck_after

    def complete(self, work: Work, outcome: RunOutcome, now: float) -> set[ReleaseKey]:
        """Record a finished run; return the releases to notify."""
        feed = self.feeds.get(work.feed)
        if feed is None or feed.running is not work:  # everyone left meanwhile
            return set()
        feed.running = None
        if now - work.started > self.stuck_after:
            feed.slow = True
        elif work.contacts:  # a quick answer from the mirror alone proves nothing about the server
            feed.slow = False
        if outcome.refreshed_at is not None:
            feed.base = outcome.refreshed_at
            feed.failures = 0
        elif work.contacts or feed.base is None:  # it failed; an answer from the mirror alone keeps the timer
            feed.base = work.started
            feed.failures = feed.failures + 1 if _reached_no_commit(outcome) else 0
        feed.jitter = self._draw()
        while len(feed.verdicts) > VERDICTS_KEPT:
            del feed.verdicts[next(iter(feed.verdicts))]
        notify = set()
        for sub in work.subscriptions:
            key = sub.release
            if feed.subscribers.get(key) is None or not feed.subscribers[key].same_source(sub):
                continue  # left, or changed what it reads, during the run: its own run follows
            new = outcome.results.get(key)
            if new is None:
                continue
            if self.results.get(key) != new or key in feed.joiners:
                notify.add(key)
            self.results[key] = new
            feed.joiners.discard(key)
        for key, at in list(feed.requests.items()):
            if at <= work.started:
                del feed.requests[key]
                notify.add(key)
        return notify

    def _leave(self, sub: Subscription) -> None:
        key = feed_key(sub)
        feed = self.feeds.get(key)
        self.results.pop(sub.release, None)
        if feed is None:
            return
        feed.subscribers.pop(sub.release, None)
        feed.joiners.discard(sub.release)
        feed.requests.pop(sub.release, None)
        if not feed.subscribers:
            del self.feeds[key]

    def _draw(self) -> float:
        return self.random() * self.jitter


def _reached_no_commit(outcome: RunOutcome) -> bool:
    """A failed run that found no commit for anyone (the remote, the credentials or the Secret failed; not a
    bad file at a good commit)."""
    return all(result.commit is None for result in outcome.results.values())


def _priority(feed: Feed) -> int:
    """Forced checks first, then releases waiting for their first result, then timed checks."""
    if feed.requests:
        return 0
    return 1 if feed.joiners else 2
