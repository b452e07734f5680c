"""Real requests through a Service during a release: one bounded load run split into named phases (first
release, cut-over, rollback, scale-down...), each judged on its own by ``assert_zero_downtime`` and the
whole run judged on the concatenated version sequence. The load runs without a gap from the first phase
to the end, so no moment of the release goes unobserved."""

from __future__ import annotations

import http.client
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from loadgen import LoadGenerator, LoadReport, zero_downtime_problems
from loadreport import RequestRecord

RATE = 80.0
"""Requests per second in total: moderate, so the 2-core machine keeps up while pods start."""
TIMEOUT = 5.0
"""Per request, connect included: generous, so only a real stall counts as a timeout."""


SLOW_SECONDS = 10
"""How long each slow request takes to be answered (``GET /?delay=10``)."""


def slow_load(url: str) -> LoadGenerator:
    """Slow requests at 2/s, each answered after SLOW_SECONDS: about 20 are always in flight, so a colour's
    pods that terminate while serving them show whether they drain (preStop, then finish what is in flight)."""
    return LoadGenerator(f"{url}?delay={SLOW_SECONDS}", workers=24, rate=2, max_requests=500, max_seconds=300,
                         timeout=SLOW_SECONDS + 10)


def in_flight(report: LoadReport, wall_time: float, version: str) -> list[RequestRecord]:
    """Requests answered by ``version`` that had started before ``wall_time`` and ended after it."""
    at = wall_time - report.started_wall
    return [r for r in report.records if r.version == version and r.start < at < r.end]


def service_url(cluster_ip: str, port: int = 80) -> str:
    return f"http://{cluster_ip}:{port}/"


def answers(ip: str, port: int = 80, path: str = "/") -> tuple[int, str | None] | None:
    """(status, X-App-Version) of one GET, or None when nothing answered."""
    connection = http.client.HTTPConnection(ip, port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-App-Version")
    except OSError:
        return None
    finally:
        connection.close()


def wait_answering(ip: str, port: int = 80, timeout: float = 90) -> float:
    """Poll until the Service answers 200 with a version; return when (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = answers(ip, port)
        if got is not None and got[0] == 200 and got[1]:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"the Service at {ip}:{port} did not answer within {timeout}s")


@dataclass(frozen=True)
class Phase:
    name: str
    expected: tuple[str, ...]
    start: float
    """Seconds on the load's time base (``LoadGenerator.elapsed``)."""


def collapse(versions: list[str]) -> list[str]:
    """Consecutive repeats removed: v1, v1, v2 -> v1, v2."""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


class PhasedLoad:
    """``with PhasedLoad(url) as load: load.phase("cut-over", ["v1", "v2"]); ...``; then ``load.verdict()``."""

    def __init__(self, url: str, *, rate: float = RATE, max_seconds: float = 300) -> None:
        self.generator = LoadGenerator(url, workers=4, rate=rate, max_requests=50_000, max_seconds=max_seconds,
                                       timeout=TIMEOUT)
        self.phases: list[Phase] = []

    def __enter__(self) -> PhasedLoad:
        self.generator.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.generator.stop()

    def phase(self, name: str, expected: list[str]) -> None:
        """A new phase begins now (the first one at the start of the run) and the previous one ends."""
        start = self.generator.elapsed() if self.phases else 0.0
        self.phases.append(Phase(name, tuple(expected), start))

    def wait_more(self, version: str, count: int, timeout: float = 30) -> None:
        """Block until ``count`` more successful answers of ``version`` arrived (the load keeps going)."""
        counter = self.generator.counter
        base = counter.snapshot().by_version.get(version, 0)
        counter.wait_for(lambda c: c.by_version.get(version, 0) >= base + count, timeout=timeout)
        if not self.generator.running:
            raise AssertionError("the load run ended before the test did: raise max_seconds")

    def reports(self) -> list[tuple[Phase, LoadReport]]:
        """Each phase's requests (by start) as a report of its own."""
        whole = self.generator.report
        ends = [p.start for p in self.phases[1:]] + [float("inf")]
        result = []
        for phase, end in zip(self.phases, ends, strict=True):
            records = [r for r in whole.records if phase.start <= r.start < end]
            duration = min(end, whole.duration) - phase.start
            result.append((phase, LoadReport(whole.target, duration, records, whole.started_wall)))
        return result

    def verdict(self, label: str = "zero-downtime") -> list[str]:
        """Print one line per phase and one for the run; fail unless every phase and the run were zero
        downtime with their expected versions. Returns the printed lines."""
        lines, problems = [], []
        for phase, report in self.reports():
            versions = "\u2192".join(report.versions_in_order) or "(none)"
            lines.append(f"{label} {phase.name}: {report.sent} requests, {report.failed} failed, {versions} "
                         f"({report.rate:.0f}/s over {report.duration:.1f}s)")
            problems += [f"{phase.name}: {p}" for p in zero_downtime_problems(report, phase.expected)]
        whole = self.generator.report
        expected = collapse([v for p in self.phases for v in p.expected])
        lines.append(f"{label} whole run: {whole.summary()} in {whole.duration:.1f}s")
        problems += [f"whole run: {p}" for p in zero_downtime_problems(whole, expected)]
        print("\n" + "\n".join(lines))
        assert not problems, "zero downtime violated: " + "; ".join(problems)
        return lines
