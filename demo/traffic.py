"""Real traffic for `make demo`: the bounded load generator of tests/app sends requests to the Service's
ClusterIP from the moment it first answers until the end of the demo, one load run per step, back to back,
with one shared counter for the running total. Each step's run is judged like the e2e tests judge theirs:
every request must succeed and the version must change exactly as that step expects."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))
from loadgen import LoadCounter, LoadGenerator, LoadReport, RequestSpec, zero_downtime_problems
from loadreport import RequestRecord

RATE = 50.0
"""Requests per second, each on a new connection (so each one goes through the proxy's current table)."""
TIMEOUT = 5.0


def get(ip: str, port: int = 80, path: str = "/") -> tuple[int, dict[str, object]] | None:
    """One GET of the Service: (status, JSON body), or None when nothing answered."""
    connection = http.client.HTTPConnection(ip, port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def versions_text(versions: list[str]) -> str:
    return "\u2192".join(versions) or "(none)"


class Traffic:
    """``start_when_answering()``, then ``end_step(expected)`` after each step, ``finish()`` at the end.

    ``request_for`` chooses each request (default: GET /); ``show`` is the path ``end_step`` GETs and prints,
    with the keys of its answer to show."""

    def __init__(self, ip: str, say: Callable[[str], None], port: int = 80,
                 request_for: Callable[[int], RequestSpec] | None = None,
                 show: tuple[str, tuple[str, ...]] = ("/", ("version", "message", "pod", "pod_ip"))) -> None:
        self.ip, self.port, self.say = ip, port, say
        self.url = f"http://{ip}:{port}/"
        self.request_for = request_for
        self.show = show
        self.counter = LoadCounter()
        self.reports: list[tuple[LoadReport, list[str]]] = []
        self._generator: LoadGenerator | None = None
        self._waiter: threading.Thread | None = None

    def _new_run(self) -> LoadGenerator:
        return LoadGenerator(self.url, workers=4, rate=RATE, max_requests=50_000, max_seconds=600, timeout=TIMEOUT,
                             counter=self.counter, request_for=self.request_for).start()

    def start_when_answering(self, timeout: float = 120) -> None:
        """In the background: poll the Service and start the load at its first answer."""
        def wait() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                answer = get(self.ip, self.port)
                if answer is not None and answer[0] == 200:
                    self._generator = self._new_run()
                    self.say(f"  Service shop answers at {self.url} ({answer[1].get('version')}): load started, "
                             f"{RATE:.0f} requests/s, a new connection each")
                    return
                time.sleep(0.05)
        self._waiter = threading.Thread(target=wait, daemon=True)
        self._waiter.start()

    def wait_more(self, version: str, count: int, timeout: float = 30) -> None:
        """Let the load run until ``count`` more answers of ``version`` came back."""
        if self._waiter is not None:
            self._waiter.join(timeout)
        base = self.counter.snapshot().by_version.get(version, 0)
        self.counter.wait_for(lambda c: c.by_version.get(version, 0) >= base + count, timeout=timeout)

    def running_total(self) -> str:
        counts = self.counter.snapshot()
        return f"{counts.sent} requests, {counts.failed} errors"

    def end_step(self, expected: list[str]) -> None:
        """Close this step's load run (the next one starts at once) and print what it saw."""
        finished = self._generator
        if finished is None:
            raise SystemExit("demo: the Service never answered; see the operator log")
        self._generator = self._new_run()
        report = finished.stop()
        self.reports.append((report, expected))
        self.say(f"  traffic in this step: {report.sent} requests, {report.failed} failed, versions "
                 f"{versions_text(report.versions_in_order)}; whole demo so far: {self.running_total()}")
        path, keys = self.show
        answer = get(self.ip, self.port, path)
        if answer is not None:
            body = answer[1]
            shown = {k: body.get(k) for k in keys}
            print(f"\n$ curl -s {self.url.rstrip('/')}{path}\n{json.dumps(shown)}", flush=True)

    def stop(self) -> None:
        """Stop the current load run, if any (``finish`` does it too); what it saw is dropped."""
        if self._generator is not None and self._generator.running:
            self._generator.stop()

    def records(self) -> list[RequestRecord]:
        """Every request of the steps closed so far (all of them after ``finish``)."""
        return [record for report, _ in self.reports for record in report.records]

    def finish(self) -> list[str]:
        """Stop the load; print the totals; return what was not zero downtime ([] when all was)."""
        if self._generator is not None:
            self.reports.append((self._generator.stop(), []))
        problems = []
        for number, (report, expected) in enumerate(self.reports, 1):
            if expected:
                problems += [f"step {number}: {p}" for p in zero_downtime_problems(report, expected)]
            elif report.failed:
                problems.append(f"after the last step: {report.failed} of {report.sent} requests failed")
        versions: list[str] = []
        for report, _ in self.reports:
            for version in report.versions_in_order:
                if not versions or versions[-1] != version:
                    versions.append(version)
        seconds = sum(report.duration for report, _ in self.reports)
        print(f"=== traffic over the whole demo: {self.running_total()} in {seconds:.1f}s, versions "
              f"{versions_text(versions)}", flush=True)
        for problem in problems:
            print(f"NOT zero downtime: {problem}", flush=True)
        return problems
