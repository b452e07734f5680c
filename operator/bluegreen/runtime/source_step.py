"""The source step of a pass: subscribe the release to the fetch scheduler and adopt the latest result.

Git is never read here (``runtime.fetcher`` does it on its own threads), so the step never blocks: it
(re)subscribes the release with what its spec names, asks for a check now when the
``bluegreen.dev/reconcile-at`` annotation changed or the release was resumed, and takes the latest result
(commit, manifest, signature verdict) into the release's memory. While a forced check of the release is
under way (for up to ``FORCED_CHECK_HOLD``), the pass stops there: the check's end queues it again, so a push
or a ``bluegreen reconcile`` costs no pass on stale data beside the fetch. When there is no result yet, the
memory keeps what it had; a release that never had one waits up to ``FIRST_RESULT_GRACE`` seconds for its
first check (so a new or restarted release does not report ``NotFetched`` for the milliseconds a check
takes), then reports ``NotFetched`` until it arrives. A suspended release is unsubscribed: no git traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bluegreen.core.conditions import is_transient
from bluegreen.core.errors import Outcome
from bluegreen.core.spec import ReleaseRef, ReleaseSpec
from bluegreen.runtime.feeds import SourceResult, Subscription
from bluegreen.runtime.fetcher import FetchScheduler
from bluegreen.runtime.memory import NOT_FETCHED, Memory

FIRST_RESULT_GRACE: Final = 5.0
"""Seconds a release without any git result waits for its first check before it reports ``NotFetched``."""
FORCED_CHECK_HOLD: Final = 1.0
"""Seconds a pass defers to a forced check of its release under way (a push, ``reconcile-at``): it stops after
the source step, and the scheduler queues the release again the moment the check is done."""


class SourceStep:
    """Keeps a release subscribed to the fetch scheduler and its ``Memory`` up to date with the results."""

    def __init__(self, fetcher: FetchScheduler, monotonic: Callable[[], float]) -> None:
        self.fetcher = fetcher
        self.monotonic = monotonic

    def run(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, token: str | None) -> float | None:
        """Adopt the latest git result. None: go on with the pass; a number: stop here (nothing is known of
        git yet), the pass is due again within that many seconds or as soon as the first result is in."""
        if spec.suspend:
            if not memory.suspended:
                self.fetcher.unsubscribe(release.namespace, release.name)
            memory.suspended = True  # a forced check asked for meanwhile is served by the resume anyway
            return None
        # A new reconcile-at token asks for a check now; so does resuming.
        forced = (token is not None and token != memory.reconcile_token) or memory.suspended
        memory.suspended = False
        memory.reconcile_token = token
        now = self.monotonic()
        self.fetcher.subscribe(Subscription.of(release, spec, spec.job_paths))
        asked = self.fetcher.requested_at(release.namespace, release.name, served=True)
        passed_at, memory.passed_at = memory.passed_at, now
        if forced and (asked is None or passed_at is None or asked < passed_at):  # else the controller asked
            self.fetcher.request_check(release.namespace, release.name, now)
        if self.fetcher.inline:
            self.fetcher.run_due()
        result = self.fetcher.result(release.namespace, release.name)
        if result is not None:
            adopt(memory, result)
            asked = self.fetcher.requested_at(release.namespace, release.name)
            if asked is not None and now - asked < FORCED_CHECK_HOLD:
                return FORCED_CHECK_HOLD - (now - asked)  # its result comes at once: no pass on stale data
            return None
        if memory.source.reason != NOT_FETCHED:
            return None  # the source changed: go on with what was read before until its first check is in
        if memory.waiting_since is None:
            memory.waiting_since = now
        waited = now - memory.waiting_since
        return FIRST_RESULT_GRACE - waited if waited < FIRST_RESULT_GRACE else None


def adopt(memory: Memory, result: SourceResult) -> None:
    """Take a check's result into the release's memory (idempotent: every pass adopts the latest).

    A check that failed before reaching a commit keeps the last commit; it keeps the last good manifest (and
    its Job manifests) too when a retry may cure the failure (unreachable, fetch failed), so a release under
    way can finish, and drops them otherwise (the branch, the path or the Secret is gone: hold until a good
    commit arrives).
    """
    memory.checked_at = result.checked_at
    memory.waiting_since = None
    if result.commit is None and not result.source.ok:
        source = result.source
        memory.source = Outcome(False, source.reason, source.message, memory.source.commit)
        if not is_transient(source):
            memory.template = None
            memory.job_manifests = {}
        return
    memory.source = result.source
    memory.commit = result.commit
    memory.template = result.template
    memory.job_manifests = result.job_manifests
    memory.verified = result.verified
