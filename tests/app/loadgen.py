"""A bounded HTTP load generator for zero-downtime tests: loopback targets only, stops by itself.

``workers`` threads send requests (``GET`` of the URL's path by default) at ``rate`` requests per second
in total, each on a NEW TCP connection (``Connection: close``), so every request goes through the
proxy's current table. It stops after ``max_requests`` or ``max_seconds``, whichever comes first (both
are required and capped), or at ``stop()``. Each request is recorded (``loadreport.RequestRecord``) and
counted live in a thread-safe ``LoadCounter``; the result is a ``loadreport.LoadReport``.

    with LoadGenerator("http://127.96.12.34:80/", rate=200, max_seconds=60) as load:
        load.counter.wait_for(lambda c: c.by_version.get("v1", 0) >= 20, timeout=10)
        ...  # cut over
    assert_zero_downtime(load.report, expected=["v1", "v2"])

Connections are opened one at a time (the SYN is sent under a lock, just after the start timestamp),
so request start order is the order connections reach the listener: see ``loadreport`` for why that
makes the version sequence exact. Everything after the SYN runs concurrently.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadreport import (
    LoadReport,
    RequestRecord,
    assert_zero_downtime,
    zero_downtime_problems,
)

__all__ = ["LoadCounter", "LoadGenerator", "LoadReport", "RequestSpec", "assert_zero_downtime", "run_load",
           "zero_downtime_problems"]

MAX_REQUESTS = 50_000
MAX_SECONDS = 600.0
MAX_RATE = 2_000.0
MAX_WORKERS = 64
MAX_TIMEOUT = 30.0
MAX_RESPONSE = 1 << 20
KEEP_BODY = 4096
"""Bytes of each response body kept in its record (enough for the app's JSON answers)."""


@dataclass(frozen=True)
class Target:
    """A checked loopback HTTP target."""

    ip: str
    port: int
    path: str
    host_header: str

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.ip else socket.AF_INET


def loopback_target(url: str) -> Target:
    """Parse ``http://<loopback>[:port]/path``; refuse anything not in 127.0.0.0/8, ::1 or ``localhost``."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// targets are supported, not {url!r}")
    host = parts.hostname or ""
    if host == "localhost":
        ip = "127.0.0.1"  # not resolved: a hosts file could point it elsewhere
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"refusing {url!r}: the host must be a loopback address or localhost") from None
        if not address.is_loopback:
            raise ValueError(f"refusing {url!r}: {host} is not a loopback address (127.0.0.0/8, ::1)")
        ip = str(address)
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(ip, port, path, parts.netloc)


@dataclass(frozen=True)
class RequestSpec:
    """What one request sends; ``path`` None means the URL's path."""

    method: str = "GET"
    path: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Counts:
    """A snapshot of a ``LoadCounter``."""

    sent: int
    ok: int
    failed: int
    by_version: dict[str, int] = field(default_factory=dict)
    by_error: dict[str, int] = field(default_factory=dict)
    last_version: str | None = None


class LoadCounter:
    """Live counts, thread-safe; one counter can be shared by several generators (a demo's running total)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sent = self._ok = 0
        self._by_version: dict[str, int] = {}
        self._by_error: dict[str, int] = {}
        self._last_version: str | None = None

    def add(self, record: RequestRecord) -> None:
        with self._changed:
            self._sent += 1
            if record.ok:
                self._ok += 1
                if record.version is not None:
                    self._by_version[record.version] = self._by_version.get(record.version, 0) + 1
                    self._last_version = record.version
            else:
                assert record.error is not None
                self._by_error[record.error] = self._by_error.get(record.error, 0) + 1
            self._changed.notify_all()

    def snapshot(self) -> Counts:
        with self._changed:
            return Counts(self._sent, self._ok, self._sent - self._ok, dict(self._by_version),
                          dict(self._by_error), self._last_version)

    def wait_for(self, predicate: Callable[[Counts], bool], timeout: float) -> Counts:
        """Block until ``predicate(snapshot)`` holds; raise TimeoutError with the counts if it does not in time."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                counts = self.snapshot()
                if predicate(counts):
                    return counts
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"load counts never matched within {timeout}s: {counts}")
                self._changed.wait(min(left, 0.1))


def _classify(err: int) -> str:
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "reset"
    if err == errno.ETIMEDOUT:
        return "timeout"
    return "other"


def _parse(raw: bytes) -> tuple[int | None, str | None, str | None, str, bytes]:
    """(status, version, error class, detail, body) from a whole response read until EOF."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not raw:
        return None, None, "closed", "connection closed without a response", b""
    if not sep:
        return None, None, "closed", f"connection closed inside the headers after {len(raw)} bytes", b""
    lines = head.decode("latin-1").split("\r\n")
    status_parts = lines[0].split(" ", 2)
    if len(status_parts) < 2 or not status_parts[0].startswith("HTTP/") or not status_parts[1].isdigit():
        return None, None, "bad-response", f"not an HTTP status line: {lines[0][:80]!r}", b""
    status = int(status_parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    version = headers.get("x-app-version")
    length = headers.get("content-length")
    if length is not None and length.isdigit() and len(body) < int(length):
        return status, version, "closed", f"body cut at {len(body)} of {length} bytes", body[:KEEP_BODY]
    if not 200 <= status < 300:
        return status, version, "bad-status", f"HTTP {status}: {body[:200]!r}", body[:KEEP_BODY]
    if not version:
        return status, None, "bad-response", "no X-App-Version header", body[:KEEP_BODY]
    return status, version, None, "", body[:KEEP_BODY]


def send_one(target: Target, spec: RequestSpec, index: int, timeout: float, syn_lock: threading.Lock,
             t0: float) -> RequestRecord:
    """One request on a new connection; never raises for network errors (they are recorded)."""
    now = time.monotonic
    sock = socket.socket(target.family, socket.SOCK_STREAM)
    connected: float | None = None
    port: int | None = None
    start = now() - t0
    try:
        sock.setblocking(False)
        with syn_lock:
            start = now() - t0
            err = sock.connect_ex((target.ip, target.port))
        port = sock.getsockname()[1] if err in (0, errno.EINPROGRESS, errno.EAGAIN) else None
        deadline = t0 + start + timeout
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            _, writable, _ = select.select([], [sock], [], max(0.0, deadline - now()))
            if not writable:
                return RequestRecord(index, start, now() - t0, error="timeout", detail="connect timed out")
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return RequestRecord(index, start, now() - t0, error=_classify(err),
                                 detail=f"connect: {errno.errorcode.get(err, err)}")
        connected = now() - t0
        sock.setblocking(True)
        sock.settimeout(max(0.001, deadline - now()))
        path = spec.path or target.path
        lines = [f"{spec.method} {path} HTTP/1.1", f"Host: {target.host_header}", "Connection: close",
                 "User-Agent: bluegreen-loadgen"]
        if spec.body is not None:
            lines += [f"Content-Type: {spec.content_type}", f"Content-Length: {len(spec.body)}"]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (spec.body or b""))
        chunks, size = [], 0
        while size <= MAX_RESPONSE:
            sock.settimeout(max(0.001, deadline - now()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        status, version, error, detail, body = _parse(b"".join(chunks))
        return RequestRecord(index, start, now() - t0, connected, status, version, error, detail, body, port)
    except TimeoutError:
        phase = "response" if connected is not None else "connect"
        return RequestRecord(index, start, now() - t0, connected, error="timeout", detail=f"{phase} timed out")
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
        return RequestRecord(index, start, now() - t0, connected, error="reset", detail=repr(exc))
    except ConnectionRefusedError as exc:
        return RequestRecord(index, start, now() - t0, connected, error="refused", detail=repr(exc))
    except OSError as exc:
        return RequestRecord(index, start, now() - t0, connected, error="other", detail=repr(exc))
    finally:
        sock.close()


class LoadGenerator:
    """Background load against one loopback URL; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        workers: int = 4,
        rate: float = 200.0,
        max_requests: int = 10_000,
        max_seconds: float = 60.0,
        timeout: float = 2.0,
        counter: LoadCounter | None = None,
        request_for: Callable[[int], RequestSpec] | None = None,
    ) -> None:
        self.target = loopback_target(url)
        self.url = url
        checks = [(1 <= workers <= MAX_WORKERS, f"workers must be 1..{MAX_WORKERS}"),
                  (0 < rate <= MAX_RATE, f"rate must be in (0, {MAX_RATE:g}] requests/s"),
                  (1 <= max_requests <= MAX_REQUESTS, f"max_requests must be 1..{MAX_REQUESTS}"),
                  (0 < max_seconds <= MAX_SECONDS, f"max_seconds must be in (0, {MAX_SECONDS:g}]"),
                  (0 < timeout <= MAX_TIMEOUT, f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.workers, self.rate, self.timeout = workers, rate, timeout
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.counter = counter or LoadCounter()
        self._request_for = request_for or (lambda _index: RequestSpec())
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._syn_lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._issued = 0
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._wall0 = 0.0
        self._report: LoadReport | None = None

    def start(self) -> LoadGenerator:
        """Start the workers (once)."""
        if self._threads:
            raise RuntimeError("already started")
        self._t0, self._wall0 = time.monotonic(), time.time()
        self._threads = [threading.Thread(target=self._work, name=f"loadgen-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def _next(self) -> int | None:
        """The next request's index, or None when the run is over."""
        with self._lock:
            if self._stop.is_set() or self._issued >= self.max_requests:
                return None
            if self._issued / self.rate >= self.max_seconds:
                return None
            index = self._issued
            self._issued += 1
            return index

    def _work(self) -> None:
        while (index := self._next()) is not None:
            due = self._t0 + index / self.rate
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            if time.monotonic() - self._t0 >= self.max_seconds:
                return
            record = send_one(self.target, self._request_for(index), index, self.timeout, self._syn_lock, self._t0)
            with self._lock:
                self._records.append(record)
            self.counter.add(record)

    def elapsed(self) -> float:
        """Seconds since the run began: the time base of the records, to mark events (a switch) on it."""
        return time.monotonic() - self._t0

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run ends by itself (count or duration reached); True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    def stop(self) -> LoadReport:
        """Stop scheduling, wait for the requests in flight (each bounded by ``timeout``), return the report."""
        self._stop.set()
        self.wait(self.timeout + 5.0)
        if self.running:
            raise RuntimeError("load generator workers did not stop")
        return self.report

    @property
    def report(self) -> LoadReport:
        """The report of the run (stops it first if it is still running)."""
        if not self._threads:
            raise RuntimeError("not started")
        if self.running:
            return self.stop()
        if self._report is None:
            with self._lock:
                records = list(self._records)
            duration = max((r.end for r in records), default=time.monotonic() - self._t0)
            self._report = LoadReport(self.url, duration, records, self._wall0)
        return self._report

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_load(url: str, **options: object) -> LoadReport:
    """Run a load to its end (``max_requests`` or ``max_seconds``) and return the report."""
    generator = LoadGenerator(url, **options)  # type: ignore[arg-type]
    generator.start()
    generator.wait()
    return generator.report


def main(argv: list[str] | None = None) -> int:
    """``python3 tests/app/loadgen.py URL [--rate R] [--seconds S] [--workers N] [--expect v1,v2]``."""
    import argparse

    parser = argparse.ArgumentParser(description="bounded loopback HTTP load; prints the summary line")
    parser.add_argument("url")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second in total")
    parser.add_argument("--seconds", type=float, default=10.0, help="maximum duration")
    parser.add_argument("--requests", type=int, default=MAX_REQUESTS, help="maximum count")
    parser.add_argument("--expect", help="comma-separated expected version sequence: exit 1 unless zero downtime")
    args = parser.parse_args(argv)
    report = run_load(args.url, workers=args.workers, rate=args.rate, max_seconds=args.seconds,
                      max_requests=args.requests)
    print(f"{report.summary()} in {report.duration:.2f}s ({report.rate:.0f} requests/s)")
    for line in report.errors[:5]:
        print(f"  {line}")
    if args.expect:
        problems = zero_downtime_problems(report, args.expect.split(","))
        for problem in problems:
            print(f"  NOT zero downtime: {problem}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
