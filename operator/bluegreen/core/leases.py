"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it. Pure.

One candidate holds the Lease and renews it every ``retry_period``; the others read it every
``retry_period`` and take it over once it has not changed for ``lease_duration`` *as they observed it* (their
own monotonic clock from the moment they saw the record change, never the record's timestamps: clocks of
different nodes may differ). A holder that cannot renew for ``renew_deadline`` stops acting at once; since
``renew_deadline < lease_duration``, it has stopped before anyone may take over. A holder that shuts down
releases the Lease (empty holder), so a standby takes over on its next read instead of after the duration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bluegreen.core.spec import parse_duration

DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2
"""client-go's: a candidate's retries wait retry_period x (1 + up to 1.2); the renew deadline must leave room."""
DEFAULT_LEASE_NAME = "bluegreen-operator"


@dataclass(frozen=True)
class LeaseSettings:
    """Where the Lease lives and its timing, in seconds (client-go's defaults: 15 s / 10 s / 2 s)."""

    namespace: str
    name: str = DEFAULT_LEASE_NAME
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why these settings are unsafe (client-go's rules), or None."""
        if not self.namespace or not self.name:
            return "the Lease needs a namespace and a name"
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            return "lease duration, renew deadline and retry period must be positive"
        if self.lease_duration <= self.renew_deadline:
            return (f"the lease duration ({self.lease_duration:g}s) must be longer than the renew deadline "
                    f"({self.renew_deadline:g}s): a holder that cannot renew must stop before another may take over")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            return (f"the renew deadline ({self.renew_deadline:g}s) must be longer than {JITTER_FACTOR:g} x the retry "
                    f"period ({self.retry_period:g}s)")
        return None

    @classmethod
    def parse(cls, namespace: str, name: str, lease_duration: str, renew_deadline: str,
              retry_period: str) -> LeaseSettings:
        """From durations such as ``15s``; raises ValueError naming the bad one."""
        return cls(namespace, name, parse_duration(lease_duration), parse_duration(renew_deadline),
                   parse_duration(retry_period))


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec: who holds it, for how long, since when (RFC 3339 micro-times, as the API stores them)."""

    holder: str
    duration_seconds: int
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @property
    def released(self) -> bool:
        return not self.holder


@dataclass(frozen=True)
class Observation:
    """A candidate's last look at the Lease: the record and when (monotonic) it last saw it change."""

    record: LeaseRecord | None
    changed_at: float

    def seen(self, record: LeaseRecord | None, now: float) -> Observation:
        """This observation after reading ``record`` at ``now``: the clock restarts only when it changed."""
        if record == self.record:
            return self
        return Observation(record, now)

    def expired(self, now: float) -> bool:
        """The holder has not renewed for its whole duration as this candidate saw it (or released it)."""
        record = self.record
        return record is None or record.released or now >= self.changed_at + record.duration_seconds


def claim(observation: Observation, me: str, now: float, stamp: str, settings: LeaseSettings) -> LeaseRecord | None:
    """The record to write to hold the Lease now (a renewal when ``me`` holds it, a take-over once it
    expired, a new Lease when there is none), or None: another candidate holds it."""
    current = observation.record
    duration = max(1, round(settings.lease_duration))
    if current is None:
        return LeaseRecord(me, duration, stamp, stamp, 0)
    if current.holder == me:
        return replace(current, duration_seconds=duration, renew_time=stamp,
                       acquire_time=current.acquire_time or stamp)
    if not observation.expired(now):
        return None
    return LeaseRecord(me, duration, stamp, stamp, current.transitions + 1)


def release(current: LeaseRecord, me: str, stamp: str) -> LeaseRecord | None:
    """The record that gives the Lease up (empty holder, 1 s), as client-go's ReleaseOnCancel; None when ``me``
    does not hold it."""
    if current.holder != me:
        return None
    return replace(current, holder="", duration_seconds=1, renew_time=stamp)


def still_leading(last_renewed: float | None, now: float, settings: LeaseSettings) -> bool:
    """May the holder that last renewed at ``last_renewed`` still act? Only within the renew deadline."""
    return last_renewed is not None and now - last_renewed < settings.renew_deadline
