"""The load generator (tests/app/loadgen.py) and its report (tests/app/loadreport.py).

The sequence, transition and flip logic is pure and table-driven; the generator itself runs for real
against test web app processes on loopback, through a small TCP forwarder whose backend the test swaps.
"""

from __future__ import annotations

import contextlib
import errno
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
import loadgen
from appprocess import AppProcess
from loadgen import LoadCounter, LoadGenerator, RequestSpec, loopback_target, run_load
from loadreport import (
    LoadReport,
    RequestRecord,
    assert_zero_downtime,
    flips_back,
    transitions_of,
    unexplained,
    version_runs,
    zero_downtime_problems,
)


def rec(index: int, start: float, version: str | None = "v1", error: str | None = None,
        end: float | None = None) -> RequestRecord:
    return RequestRecord(index, start, start + 0.002 if end is None else end, start + 0.0001,
                         200 if error is None else 503, version, error, "test" if error else "")


def sequence(versions: list[str]) -> list[RequestRecord]:
    """One successful record per version, 10 ms apart."""
    return [rec(i, i * 0.01, v) for i, v in enumerate(versions)]


def report_of(records: list[RequestRecord]) -> LoadReport:
    return LoadReport("http://127.0.0.1:1/", max((r.end for r in records), default=0.0), records)


# --- pure: order, runs, transitions, flips ------------------------------------------------------------------


@pytest.mark.parametrize(("records", "runs"), [
    pytest.param([], [], id="nothing"),
    pytest.param(sequence(["v1", "v1", "v1"]), [("v1", 3)], id="one-version"),
    pytest.param(sequence(["v1", "v1", "v2", "v2", "v2"]), [("v1", 2), ("v2", 3)], id="one-switch"),
    pytest.param(sequence(["v1", "v2", "v2", "v1"]), [("v1", 1), ("v2", 2), ("v1", 1)], id="switch-back"),
    pytest.param([rec(0, 0.0), rec(1, 0.02, "v2"), rec(2, 0.01)], [("v1", 2), ("v2", 1)], id="by-start-not-index"),
    pytest.param([rec(1, 0.5, "v2"), rec(0, 0.5, "v1")], [("v1", 1), ("v2", 1)], id="tie-by-index"),
    pytest.param([rec(0, 0.0, end=5.0), rec(1, 0.1, "v2", end=0.2), rec(2, 0.3, "v2")], [("v1", 1), ("v2", 2)],
                 id="end-time-ignored"),
    pytest.param([rec(0, 0.0), rec(1, 0.1, "v2", error="bad-status"), rec(2, 0.2)], [("v1", 2)],
                 id="failed-requests-carry-no-version"),
    pytest.param([rec(0, 0.0, None, error="refused"), rec(1, 0.1, "v2")], [("v2", 1)], id="leading-failure"),
])
def test_version_runs(records: list[RequestRecord], runs: list[tuple[str, int]]) -> None:
    assert [(r.version, r.count) for r in version_runs(records)] == runs


def test_runs_and_transitions_carry_first_start_and_index() -> None:
    records = [rec(0, 0.0), rec(1, 0.1), rec(3, 0.2, "v2"), rec(2, 0.3, "v2"), rec(4, 0.4)]
    runs = version_runs(records)
    assert [(r.first, r.last, r.first_index) for r in runs] == [(0.0, 0.1, 0), (0.2, 0.3, 3), (0.4, 0.4, 4)]
    assert [(t.from_version, t.to_version, t.at, t.index) for t in transitions_of(runs)] == [
        ("v1", "v2", 0.2, 3), ("v2", "v1", 0.4, 4)]
    assert str(transitions_of(runs)[0]) == "v1\u2192v2 at 0.200s (request #3)"


@pytest.mark.parametrize(("versions", "flips"), [
    pytest.param(["v1"], [], id="none"),
    pytest.param(["v1", "v2"], [], id="cut-over"),
    pytest.param(["v1", "v2", "v3"], [], id="forward-only"),
    pytest.param(["v1", "v2", "v1"], [("v2", "v1")], id="rollback"),
    pytest.param(["v1", "v2", "v1", "v2"], [("v2", "v1"), ("v1", "v2")], id="flapping"),
    pytest.param(["v1", "v2", "v3", "v1"], [("v3", "v1")], id="back-two"),
    pytest.param(["v1", "v2", "v3", "v2"], [("v3", "v2")], id="back-one"),
])
def test_flips_back(versions: list[str], flips: list[tuple[str, str]]) -> None:
    found = flips_back(transitions_of(version_runs(sequence(versions))))
    assert [(t.from_version, t.to_version) for t in found] == flips


@pytest.mark.parametrize(("observed", "expected", "extra"), [
    pytest.param(["v1", "v2", "v1"], ["v1", "v2", "v1"], [], id="exact"),
    pytest.param(["v1", "v2", "v1", "v2"], ["v1", "v2", "v1"], [("v1", "v2")], id="one-flip-too-many"),
    pytest.param(["v1", "v2", "v1"], ["v1", "v2"], [("v2", "v1")], id="unexpected-rollback"),
    pytest.param(["v1"], ["v1", "v2"], [], id="missing-switch-is-no-extra"),
    pytest.param(["v1", "v2"], ["v2"], [("v1", "v2")], id="unexpected-first-version"),
    pytest.param(["v1", "v3", "v2"], ["v1", "v2"], [("v1", "v3"), ("v3", "v2")], id="wrong-version"),
])
def test_unexplained_transitions(observed: list[str], expected: list[str], extra: list[tuple[str, str]]) -> None:
    found = unexplained(transitions_of(version_runs(sequence(observed))), expected)
    assert [(t.from_version, t.to_version) for t in found] == extra


def test_unexpected_flips_are_flips_back_beyond_the_expected_ones() -> None:
    flapping = report_of(sequence(["v1", "v2", "v1", "v2"]))
    assert [(t.from_version, t.to_version) for t in flapping.unexpected_flips(["v1", "v2", "v1"])] == [("v1", "v2")]
    assert len(flapping.flips_back) == 2
    assert report_of(sequence(["v1", "v2", "v1"])).unexpected_flips(["v1", "v2", "v1"]) == []
    assert report_of(sequence(["v1", "v2", "v3"])).unexpected_flips(["v1", "v2"]) == []  # v3 is new, not back


# --- pure: the report and the verdict -----------------------------------------------------------------------


def test_report_counts_and_summary() -> None:
    records = [rec(0, 0.0), rec(1, 0.1, None, error="timeout"), rec(2, 0.2, "v2"), rec(3, 0.3, None, "refused"),
               rec(4, 0.4, None, "refused")]
    report = report_of(records)
    assert (report.sent, report.failed, report.succeeded) == (5, 3, 2)
    assert report.error_counts == {"timeout": 1, "refused": 2}
    assert report.versions_in_order == ["v1", "v2"]
    assert report.summary() == "requests sent 5, failed 3, versions v1\u2192v2 (refused 2, timeout 1)"
    assert report.errors[0].startswith("#1 start 0.1000s connected +0.1ms end +2.0ms - 503 timeout: test")
    assert len(report.errors) == 3
    assert report.rate == pytest.approx(5 / 0.402)
    assert report_of(sequence(["v1", "v1"])).summary() == "requests sent 2, failed 0, versions v1"
    assert report_of([]).summary() == "requests sent 0, failed 0, versions (none)"


@pytest.mark.parametrize(("records", "expected", "problems"), [
    pytest.param(sequence(["v1", "v1", "v2", "v2", "v1"]), ["v1", "v2", "v1"], [], id="clean-rollback"),
    pytest.param(sequence(["v1", "v1"]), ["v1"], [], id="no-switch-expected"),
    pytest.param([], ["v1"], ["no request was sent", "versions went (none), expected v1"], id="no-requests"),
    pytest.param([rec(0, 0.0), rec(1, 0.1, None, "reset"), rec(2, 0.2, "v2")], ["v1", "v2"],
                 ["1 of 3 requests failed (reset 1); first: #1 start 0.1000s"], id="a-reset"),
    pytest.param(sequence(["v1", "v1"]), ["v1", "v2"],
                 ["versions went v1, expected v1\u2192v2 (one change per switch)"], id="switch-not-seen"),
    pytest.param(sequence(["v1", "v2", "v1", "v2"]), ["v1", "v2", "v1"],
                 ["versions went v1\u2192v2\u2192v1\u2192v2, expected v1\u2192v2\u2192v1 (one change per switch); "
                  "unexpected v1\u2192v2 at 0.030s (request #3): #0 start"], id="flip-back"),
])
def test_zero_downtime_problems(records: list[RequestRecord], expected: list[str], problems: list[str]) -> None:
    found = zero_downtime_problems(report_of(records), expected)
    assert len(found) == len(problems), found
    for message, prefix in zip(found, problems, strict=True):
        assert message.startswith(prefix), message


def test_assert_zero_downtime_raises_with_the_summary() -> None:
    assert_zero_downtime(report_of(sequence(["v1", "v2"])), ["v1", "v2"])
    with pytest.raises(AssertionError, match=r"zero downtime violated: .* \[requests sent 2, failed 0, versions v1\]"):
        assert_zero_downtime(report_of(sequence(["v1", "v1"])), ["v1", "v2"])


# --- pure: targets, responses, bounds, counter ------------------------------------------------------------


@pytest.mark.parametrize(("url", "target"), [
    ("http://127.0.0.1:8080/", ("127.0.0.1", 8080, "/")),
    ("http://127.96.12.34/", ("127.96.12.34", 80, "/")),
    ("http://127.255.255.254:1/x?delay=1", ("127.255.255.254", 1, "/x?delay=1")),
    ("http://localhost:9000", ("127.0.0.1", 9000, "/")),
    ("http://[::1]:8080/", ("::1", 8080, "/")),
])
def test_loopback_targets(url: str, target: tuple[str, int, str]) -> None:
    parsed = loopback_target(url)
    assert (parsed.ip, parsed.port, parsed.path) == target


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://192.168.1.1:80/", "http://128.0.0.1/", "http://0.0.0.0:8080/", "http://example.com/",
    "http://127.0.0.1.nip.io/", "https://127.0.0.1/", "ftp://127.0.0.1/", "http://[::2]/", "127.0.0.1:8080",
])
def test_non_loopback_targets_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"refusing|only http"):
        loopback_target(url)
    with pytest.raises(ValueError):
        LoadGenerator(url)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"HTTP/1.0 200 OK\r\nX-App-Version: v1\r\nContent-Length: 2\r\n\r\nok", (200, "v1", None)),
    (b"HTTP/1.1 201 Created\r\nx-app-version:  v2 \r\n\r\n{}", (201, "v2", None)),
    (b"HTTP/1.0 503 Service Unavailable\r\nX-App-Version: v1\r\n\r\nno", (503, "v1", "bad-status")),
    (b"HTTP/1.0 301 Moved\r\nX-App-Version: v1\r\n\r\n", (301, "v1", "bad-status")),
    (b"HTTP/1.0 300 Multiple\r\nX-App-Version: v1\r\n\r\n", (300, "v1", "bad-status")),
    (b"HTTP/1.0 299 Odd\r\nX-App-Version: v1\r\n\r\n", (299, "v1", None)),
    (b"HTTP/1.0 199 Odd\r\nX-App-Version: v1\r\n\r\n", (199, "v1", "bad-status")),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", (200, None, "bad-response")),
    (b"SSH-2.0-OpenSSH\r\n\r\n", (None, None, "bad-response")),
    (b"", (None, None, "closed")),
    (b"HTTP/1.0 200 OK\r\nX-App-Ver", (None, None, "closed")),
    (b"HTTP/1.0 200 OK\r\nX-App-Version: v1\r\nContent-Length: 10\r\n\r\nshort", (200, "v1", "closed")),
])
def test_response_parsing(raw: bytes, expected: tuple[int | None, str | None, str | None]) -> None:
    status, version, error, _, _ = loadgen._parse(raw)
    assert (status, version, error) == expected


@pytest.mark.parametrize(("err", "error_class"), [
    (errno.ECONNREFUSED, "refused"), (errno.ECONNRESET, "reset"), (errno.EPIPE, "reset"),
    (errno.ECONNABORTED, "reset"), (errno.ETIMEDOUT, "timeout"), (errno.EHOSTUNREACH, "other"),
])
def test_connect_errors_are_classified(err: int, error_class: str) -> None:
    assert loadgen._classify(err) == error_class


@pytest.mark.parametrize("options", [
    {"workers": 0}, {"workers": 65}, {"rate": 0}, {"rate": 2001}, {"max_requests": 0},
    {"max_requests": 50_001}, {"max_seconds": 0}, {"max_seconds": 601}, {"timeout": 0}, {"timeout": 31},
])
def test_bounds_are_enforced(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoadGenerator("http://127.0.0.1:1/", **options)  # type: ignore[arg-type]


def test_counter_counts_and_waits() -> None:
    counter = LoadCounter()
    for record in [rec(0, 0.0), rec(1, 0.1, "v2"), rec(2, 0.2, "v2"), rec(3, 0.3, None, "timeout")]:
        counter.add(record)
    counts = counter.snapshot()
    assert (counts.sent, counts.ok, counts.failed, counts.last_version) == (4, 3, 1, "v2")
    assert counts.by_version == {"v1": 1, "v2": 2} and counts.by_error == {"timeout": 1}
    assert counter.wait_for(lambda c: c.by_version.get("v2", 0) >= 2, timeout=0.1).sent == 4
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="never matched"):
        counter.wait_for(lambda c: c.sent > 4, timeout=0.2)
    assert 0.2 <= time.monotonic() - began < 1.0


# --- real runs -------------------------------------------------------------------------------------------------


class Forwarder:
    """A loopback TCP forwarder: each connection goes to the backend that is current when it is accepted."""

    def __init__(self, backend: tuple[str, int]) -> None:
        self.backend = backend
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._pipe, args=(client, self.backend), daemon=True).start()

    @staticmethod
    def _pipe(client: socket.socket, backend: tuple[str, int]) -> None:
        with client:
            try:
                upstream = socket.create_connection(backend, timeout=2)
            except OSError:
                return
            with upstream:
                peers = {client: upstream, upstream: client}
                open_ends = [client, upstream]
                while open_ends:
                    readable, _, _ = select.select(open_ends, [], [], 5)
                    if not readable:
                        return
                    for sock in readable:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].sendall(data)
                        else:
                            open_ends.remove(sock)
                            with contextlib.suppress(OSError):
                                peers[sock].shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepter.join(timeout=2)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppProcess, AppProcess]]:
    logs = tmp_path_factory.mktemp("apps")
    env = {"APP_SHUTDOWN_DELAY": "0"}
    v1 = AppProcess("v1", host="127.0.0.91", env=env, log_dir=logs).start()
    v2 = AppProcess("v2", host="127.0.0.92", env=env, log_dir=logs).start()
    print(f"app start: {v1.startup_seconds:.3f}s, {v2.startup_seconds:.3f}s")
    yield v1, v2
    v1.stop()
    v2.stop()


@pytest.fixture
def forwarder(two_versions: tuple[AppProcess, AppProcess]) -> Iterator[Forwarder]:
    v1, _ = two_versions
    fwd = Forwarder((v1.host, v1.port))
    yield fwd
    fwd.close()


def test_versions_follow_the_switches_with_a_new_connection_per_request(
    two_versions: tuple[AppProcess, AppProcess], forwarder: Forwarder
) -> None:
    v1, v2 = two_versions
    with LoadGenerator(forwarder.url, rate=400, max_requests=5000, max_seconds=20) as load:
        load.counter.wait_for(lambda c: c.by_version.get("v1", 0) >= 60, timeout=10)
        switched_at = load.elapsed()
        forwarder.backend = (v2.host, v2.port)
        load.counter.wait_for(lambda c: c.by_version.get("v2", 0) >= 60, timeout=10)
        seen_v1 = load.counter.snapshot().by_version["v1"]
        back_at = load.elapsed()
        forwarder.backend = (v1.host, v1.port)
        load.counter.wait_for(lambda c: c.by_version["v1"] >= seen_v1 + 60, timeout=10)
    report = load.report
    print(f"{report.summary()} at {report.rate:.0f} requests/s")
    assert_zero_downtime(report, expected=["v1", "v2", "v1"])
    assert report.sent == load.counter.snapshot().sent == forwarder.connections  # one connection each
    first, second = report.transitions
    # a connection sent just before a switch may be accepted just after it: the cut is where the forwarder was
    assert switched_at - 0.1 < first.at < back_at
    assert back_at - 0.1 < second.at
    assert [(t.from_version, t.to_version) for t in report.flips_back] == [("v2", "v1")]
    assert all(r.start <= (r.connected or 0) <= r.end for r in report.records)


def test_stops_by_itself_at_the_count_or_the_duration(two_versions: tuple[AppProcess, AppProcess]) -> None:
    v1, _ = two_versions
    counted = run_load(v1.url, rate=1000, max_requests=30, max_seconds=10)
    assert (counted.sent, counted.failed) == (30, 0)
    assert sorted(r.index for r in counted.records) == list(range(30))
    began = time.monotonic()
    timed = run_load(v1.url, workers=2, rate=40, max_requests=1000, max_seconds=0.5)
    assert time.monotonic() - began < 3.0
    assert 10 <= timed.sent <= 20  # due at 0, 25 ms ... 475 ms; one that is late past 0.5 s is not sent
    assert timed.versions_in_order == ["v1"]
    assert all(r.start >= r.index / 40 for r in timed.records)  # never ahead of the rate
    began = time.monotonic()
    slow_rate = run_load(v1.url, rate=1, max_requests=5, max_seconds=0.3)  # the 2nd is due after the end
    assert slow_rate.sent == 1 and time.monotonic() - began < 0.8


def test_posts_and_slow_answers_are_recorded(two_versions: tuple[AppProcess, AppProcess]) -> None:
    v1, _ = two_versions
    posted = run_load(v1.url, rate=100, max_requests=2, max_seconds=5,
                      request_for=lambda i: RequestSpec("POST", "/admin/recover-health", b"{}"))
    assert posted.failed == 0 and b'"healthy": true' in posted.records[0].body
    slow = run_load(v1.url + "?delay=1", rate=100, max_requests=2, max_seconds=5, timeout=0.3)
    assert slow.error_counts == {"timeout": 2}
    assert all("response timed out" in r.detail and r.connected is not None for r in slow.records)
    missing = run_load(v1.url + "nowhere", rate=100, max_requests=2, max_seconds=5)
    assert missing.error_counts == {"bad-status": 2} and missing.versions_in_order == []


def test_a_killed_backend_shows_as_failed_requests(tmp_path: Path) -> None:
    app = AppProcess("v1", host="127.0.0.93", env={"APP_SHUTDOWN_DELAY": "0"}, log_dir=tmp_path).start()
    try:
        with LoadGenerator(app.url, rate=200, max_requests=2000, max_seconds=10) as load:
            load.counter.wait_for(lambda c: c.ok >= 30, timeout=10)
            killed_at = load.elapsed()
            app.signal(signal.SIGKILL)
            load.counter.wait_for(lambda c: c.failed >= 20, timeout=10)
    finally:
        app.stop()
    report = load.report
    print(report.summary())
    assert report.failed >= 20
    assert "refused" in report.error_counts
    assert set(report.error_counts) <= {"refused", "reset", "closed"}
    assert all(r.end >= killed_at for r in report.records if not r.ok)
    assert report.versions_in_order == ["v1"]
    with pytest.raises(AssertionError, match=r"requests failed \(refused"):
        assert_zero_downtime(report, expected=["v1"])


def test_a_forwarder_without_backend_gives_closed_connections(forwarder: Forwarder) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        forwarder.backend = probe.getsockname()  # bound, not listening: upstream connects are refused
        report = run_load(forwarder.url, rate=100, max_requests=3, max_seconds=5)
    assert report.failed == 3  # the forwarder hangs up on the unread request: a reset, or a plain close
    assert set(report.error_counts) <= {"closed", "reset"}
