"""What a load run saw, and the zero-downtime verdict: pure functions over request records (no I/O).

Order. Requests are ordered by their *start*: the moment just before the client sent the connection's
SYN. The load generator sends SYNs one at a time (under a lock, the timestamp taken inside it), so start
order is the order in which connections reached the listener, and a proxy that picks a backend per
connection in accept order (as kube-proxy does per connection) gives every request the version it
routed to at that moment. Responses may complete out of order (a slow old-version response can finish
after newer ones); that does not matter, as the end time plays no part. So no ordering tolerance is
applied: one request out of place is reported as a flip.

Versions are read only from successful requests; a failed request is a failure, whatever it answered.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

ERROR_CLASSES = ("refused", "reset", "closed", "timeout", "bad-status", "bad-response", "other")
"""refused: connection refused; reset: connection reset or broken pipe; closed: the peer closed before a
complete response; timeout: no connection or no complete response in time; bad-status: an answer other
than 2xx; bad-response: not HTTP, or no ``X-App-Version`` header; other: any other socket error."""
ARROW = "\u2192"


@dataclass(frozen=True)
class RequestRecord:
    """One request: times are seconds since the run began."""

    index: int
    """Order in which the request was scheduled (0, 1, 2...)."""
    start: float
    """Just before the SYN was sent."""
    end: float
    connected: float | None = None
    """When the TCP connection was established (None if it never was)."""
    status: int | None = None
    version: str | None = None
    """The ``X-App-Version`` response header."""
    error: str | None = None
    """None for success, else one of ERROR_CLASSES."""
    detail: str = ""
    body: bytes = b""
    local_port: int | None = None
    """The client's TCP port, to match the request with a proxy's or server's log."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """``#12 start 1.234s connected +0.1ms end +3.0ms v1 200`` (for failure messages)."""
        parts = [f"#{self.index} start {self.start:.4f}s"]
        if self.connected is not None:
            parts.append(f"connected +{(self.connected - self.start) * 1000:.1f}ms")
        parts.append(f"end +{(self.end - self.start) * 1000:.1f}ms")
        parts.append(self.version or "-")
        parts.append(str(self.status) if self.status is not None else "-")
        if self.error:
            parts.append(f"{self.error}: {self.detail}")
        return " ".join(parts)


@dataclass(frozen=True)
class Run:
    """Consecutive successful requests (by start) that got the same version."""

    version: str
    count: int
    first: float
    last: float
    first_index: int


@dataclass(frozen=True)
class Transition:
    """The version changed: ``at`` is the start of the first request that got ``to_version``."""

    from_version: str
    to_version: str
    at: float
    index: int
    """Scheduling index of that first request."""

    def __str__(self) -> str:
        return f"{self.from_version}{ARROW}{self.to_version} at {self.at:.3f}s (request #{self.index})"


def in_start_order(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """Records by start time (scheduling index breaks ties)."""
    return sorted(records, key=lambda r: (r.start, r.index))


def version_runs(records: Iterable[RequestRecord]) -> list[Run]:
    """Successful requests by start, grouped into runs of one version."""
    runs: list[Run] = []
    for rec in in_start_order(r for r in records if r.ok and r.version is not None):
        assert rec.version is not None
        if runs and runs[-1].version == rec.version:
            last = runs[-1]
            runs[-1] = Run(last.version, last.count + 1, last.first, rec.start, last.first_index)
        else:
            runs.append(Run(rec.version, 1, rec.start, rec.start, rec.index))
    return runs


def transitions_of(runs: Sequence[Run]) -> list[Transition]:
    """One transition between each pair of consecutive runs."""
    return [Transition(a.version, b.version, b.first, b.first_index) for a, b in itertools.pairwise(runs)]


def flips_back(transitions: Sequence[Transition]) -> list[Transition]:
    """Transitions back to a version that had been served before (v1→v2→v1: the second one)."""
    seen: set[str] = set()
    flips = []
    for t in transitions:
        seen.add(t.from_version)
        if t.to_version in seen:
            flips.append(t)
    return flips


def unexplained(transitions: Sequence[Transition], expected: Sequence[str]) -> list[Transition]:
    """Transitions not accounted for by the expected switches, matched in order (greedily)."""
    wanted = list(itertools.pairwise(expected))
    extra, position = [], 0
    for t in transitions:
        if position < len(wanted) and (t.from_version, t.to_version) == wanted[position]:
            position += 1
        else:
            extra.append(t)
    return extra


def versions_text(versions: Sequence[str]) -> str:
    return ARROW.join(versions) if versions else "(none)"


@dataclass
class LoadReport:
    """Everything one load run recorded, and what follows from it."""

    target: str
    duration: float
    records: list[RequestRecord] = field(default_factory=list)
    started_wall: float = 0.0
    """``time.time()`` when the run began (record times are relative to it)."""

    @cached_property
    def ordered(self) -> list[RequestRecord]:
        return in_start_order(self.records)

    @property
    def sent(self) -> int:
        return len(self.records)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if not r.ok)

    @property
    def succeeded(self) -> int:
        return self.sent - self.failed

    @property
    def rate(self) -> float:
        """Requests per second over the run."""
        return self.sent / self.duration if self.duration > 0 else 0.0

    @cached_property
    def error_counts(self) -> dict[str, int]:
        return dict(Counter(r.error for r in self.records if r.error is not None))

    @cached_property
    def errors(self) -> list[str]:
        """Up to ten failed requests, described, earliest first."""
        return [r.describe() for r in self.ordered if not r.ok][:10]

    @cached_property
    def runs(self) -> list[Run]:
        return version_runs(self.records)

    @property
    def versions_in_order(self) -> list[str]:
        """The versions served, by request start, each repeat collapsed: ``["v1", "v2", "v1"]``."""
        return [run.version for run in self.runs]

    @property
    def transitions(self) -> list[Transition]:
        return transitions_of(self.runs)

    @property
    def flips_back(self) -> list[Transition]:
        return flips_back(self.transitions)

    def unexpected_flips(self, expected: Sequence[str]) -> list[Transition]:
        """Flips back beyond what the ``expected`` version sequence explains."""
        extra = unexplained(self.transitions, expected)
        return [t for t in flips_back(self.transitions) if t in extra]

    def around(self, index: int, width: int = 3) -> list[str]:
        """The successful requests just before and after the one with scheduling ``index``, described."""
        good = [r for r in self.ordered if r.ok]
        at = next((i for i, r in enumerate(good) if r.index == index), 0)
        return [r.describe() for r in good[max(0, at - width): at + width]]

    def summary(self) -> str:
        """``requests sent 1200, failed 0, versions v1→v2→v1``."""
        line = f"requests sent {self.sent}, failed {self.failed}, versions {versions_text(self.versions_in_order)}"
        if self.error_counts:
            line += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.error_counts.items())) + ")"
        return line


def zero_downtime_problems(report: LoadReport, expected: Sequence[str]) -> list[str]:
    """Why ``report`` is not zero downtime with the ``expected`` version sequence ([] when it is)."""
    problems = []
    if report.sent == 0:
        problems.append("no request was sent")
    if report.failed:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.error_counts.items()))
        problems.append(f"{report.failed} of {report.sent} requests failed ({counts}); first: "
                        + " | ".join(report.errors[:3]))
    if report.versions_in_order != list(expected):
        problem = (f"versions went {versions_text(report.versions_in_order)}, expected "
                   f"{versions_text(expected)} (one change per switch)")
        extra = unexplained(report.transitions, expected)
        if extra:
            first = extra[0]
            problem += f"; unexpected {first}: " + " | ".join(report.around(first.index))
        problems.append(problem)
    return problems


def assert_zero_downtime(report: LoadReport, expected: Sequence[str]) -> None:
    """Fail unless every request succeeded and the versions changed exactly as ``expected``."""
    problems = zero_downtime_problems(report, expected)
    if problems:
        raise AssertionError("zero downtime violated: " + "; ".join(problems) + f" [{report.summary()}]")
