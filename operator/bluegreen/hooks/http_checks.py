"""HTTP checks (``spec.checks.*[].http``): GETs on the operator's own small thread pool, never in a pass.

``HttpCheckRunner`` implements ``bluegreen.core.checks.CheckRunner`` for the checks whose ``http`` is set. A
run (one hook of one release, commit and colour) lives in memory: after an operator restart it is run again
(cheap and safe). Each check:

- pre-promotion: one GET per attempt (``timeoutSeconds``); passes on the first good answer, fails after
  ``attempts`` consecutive failed attempts spaced by ``intervalSeconds``;
- post-promotion: a GET every ``intervalSeconds`` for ``durationSeconds`` (0: one round); fails as soon as
  ``attempts`` consecutive probes failed (default 1: at once), passes when the duration is over.

A good answer has ``expectStatus`` (default any 2xx) and, if set, a body containing ``bodyContains``. A
failure's message carries the status and the start of the body, or the error. ``service`` is resolved to its
ClusterIP and port through ``resolve`` (the operator's watched view) at every attempt.

The guard: addresses in ``deny_networks`` (operator-wide ``--check-deny-networks`` /
``BLUEGREEN_CHECK_DENY_NETWORKS``, default link-local ``169.254.0.0/16,fe80::/10``, where cloud metadata
services live) are never called: the name is resolved and every address checked before connecting, and the
connected peer is checked again before anything is sent. Such a check fails with reason ``Refused`` and a
message naming the setting (the networks are parsed and matched by ``bluegreen.core.networks``, shared with the
notification senders). ``wake(release)`` is called whenever a check's verdict changes, so the
controller queues the release at once.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bluegreen.core.checks import CheckResult, CheckRun, CheckSpec, Hook, Verdict
from bluegreen.core.networks import DEFAULT_DENY_NETWORKS as DEFAULT_DENY_NETWORKS  # re-exported
from bluegreen.core.networks import DENY_SETTING as DENY_SETTING
from bluegreen.core.networks import Network as Network
from bluegreen.core.networks import denied as denied
from bluegreen.core.networks import parse_networks as parse_networks
from bluegreen.core.spec import ReleaseRef
from bluegreen.logs import get_logger

Resolve = Callable[[str, str, int | None], tuple[str, int] | None]
"""(namespace, service, port or None) -> (ClusterIP, port), or None when the view has no such Service/port."""
Wake = Callable[[ReleaseRef], None]

BODY_LIMIT = 64 * 1024
"""Bytes of a body read (bodyContains is searched in them)."""
MESSAGE_BODY = 200
"""Characters of the body quoted in a message."""
DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class Answer:
    """One attempt: good or not, its reason (CamelCase) and what it saw."""

    ok: bool
    reason: str
    message: str


class RefusedAddress(Exception):
    """The address is in a denied network."""


def _quote(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text[:MESSAGE_BODY] + ("..." if len(text) > MESSAGE_BODY else "")


def get(url: str, timeout: float, networks: Sequence[Network]) -> tuple[int, bytes]:
    """One GET of ``url``: (status, the first BODY_LIMIT bytes). Raises RefusedAddress, OSError, HTTPException."""
    parts = urlsplit(url)
    host, https = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if denied(str(info[4][0]), networks):
            raise RefusedAddress(str(info[4][0]))
    connection: http.client.HTTPConnection
    if https:
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.connect()
        peer = str(connection.sock.getpeername()[0])
        if denied(peer, networks):  # the name may resolve elsewhere now than a moment ago
            raise RefusedAddress(peer)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers={"User-Agent": "bluegreen-operator", "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read(BODY_LIMIT)
    finally:
        connection.close()


def attempt(url: str, check: CheckSpec, networks: Sequence[Network]) -> Answer:
    """One attempt of ``check`` against ``url``."""
    probe = check.http
    assert probe is not None
    try:
        status, body = get(url, check.timeout_seconds, networks)
    except RefusedAddress as exc:
        return Answer(False, "Refused", f"GET {url}: address {exc} is in a network the operator may not call "
                                        f"({DENY_SETTING})")
    except TimeoutError:
        return Answer(False, "Timeout", f"GET {url}: no answer within {check.timeout_seconds:g}s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, "Unreachable", f"GET {url}: {type(exc).__name__}: {exc}"[:300])
    good = status == probe.expect_status if probe.expect_status is not None else 200 <= status < 300
    if not good:
        wanted = probe.expect_status or "2xx"
        return Answer(False, "HttpStatus", f"GET {url}: HTTP {status} (expected {wanted}): {_quote(body)}")
    if probe.body_contains is not None and probe.body_contains.encode() not in body:
        return Answer(False, "BodyMismatch",
                      f"GET {url}: HTTP {status} without {probe.body_contains!r} in the body: {_quote(body)}")
    return Answer(True, "Passed", f"GET {url}: HTTP {status}")


@dataclass
class _Run:
    results: dict[str, CheckResult] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)


RunKey = tuple[str, str, str, str, str]  # namespace, name, hook, commit, colour


def _key(run: CheckRun) -> RunKey:
    return run.release.namespace, run.release.name, str(run.hook), run.commit, str(run.color)


class HttpCheckRunner:
    """Runs HTTP checks on a thread pool of ``workers``; thread-safe."""

    def __init__(self, resolve: Resolve, wake: Wake | None = None, *,
                 deny_networks: Sequence[Network] | None = None, workers: int = DEFAULT_WORKERS,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._resolve = resolve
        self._wake = wake
        self.deny_networks = tuple(deny_networks if deny_networks is not None
                                   else parse_networks(DEFAULT_DENY_NETWORKS))
        self._now = now
        self._monotonic = monotonic
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bluegreen-check")
        self._runs: dict[RunKey, _Run] = {}
        self._lock = threading.Lock()

    # ---- the CheckRunner port -------------------------------------------------------------------
    def ensure(self, run: CheckRun, checks: Sequence[CheckSpec],
               job_manifests: Mapping[str, Mapping[str, Any]] | None = None) -> Mapping[str, CheckResult]:
        started = []
        with self._lock:
            state = self._runs.setdefault(_key(run), _Run())
            for check in _http(checks):
                if check.name not in state.results:
                    state.results[check.name] = CheckResult(check.name, Verdict.RUNNING, "Running", "started",
                                                            started_at=self._now())
                    started.append(check)
            current = dict(state.results)
        for check in started:
            self._pool.submit(self._run_check, run, check, state)
        return {name: current[name] for name in (c.name for c in _http(checks)) if name in current}

    def results(self, run: CheckRun, checks: Sequence[CheckSpec]) -> Mapping[str, CheckResult]:
        with self._lock:
            state = self._runs.get(_key(run))
            found = dict(state.results) if state is not None else {}
        return {c.name: found[c.name] for c in _http(checks) if c.name in found}

    def rerun(self, run: CheckRun, checks: Sequence[CheckSpec]) -> None:
        with self._lock:
            state = self._runs.pop(_key(run), None)
        if state is not None:
            state.stop.set()

    def cancel(self, release: ReleaseRef, keep: CheckRun | None = None) -> None:
        kept = _key(keep) if keep is not None else None
        with self._lock:
            for key in [k for k in self._runs if k[:2] == (release.namespace, release.name) and k != kept]:
                self._runs.pop(key).stop.set()

    def close(self) -> None:
        """Stop every run (at the operator's shutdown): sleeping checks end at once, requests by their timeout."""
        with self._lock:
            for state in self._runs.values():
                state.stop.set()
            self._runs.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- one check, on a pool thread ------------------------------------------------------------
    def _run_check(self, run: CheckRun, check: CheckSpec, state: _Run) -> None:
        try:
            verdict, answer, probes = self._probe_until_verdict(run, check, state)
        except Exception as exc:  # a bug must not leave a check Running for ever
            verdict, answer, probes = Verdict.FAILED, Answer(False, "Error", f"{type(exc).__name__}: {exc}"), 1
        if verdict is Verdict.RUNNING:  # cancelled
            return
        message = answer.message if probes == 1 else f"{answer.message} (after {probes} attempts)"
        self._set(run, state, check.name, verdict, answer.reason, message, finished=True)

    def _probe_until_verdict(self, run: CheckRun, check: CheckSpec, state: _Run) -> tuple[Verdict, Answer, int]:
        post = run.hook is Hook.POST_PROMOTION
        end = self._monotonic() + check.duration_seconds
        failures = probes = 0
        while True:
            answer = self._attempt(run, check)
            probes += 1
            failures = 0 if answer.ok else failures + 1
            if failures >= check.attempts:
                return Verdict.FAILED, answer, probes
            if answer.ok and (not post or self._monotonic() >= end):
                return Verdict.PASSED, answer, probes
            if not answer.ok:
                self._set(run, state, check.name, Verdict.RUNNING, "Running",
                          f"attempt {failures}/{check.attempts} failed: {answer.message}")
            if state.stop.wait(check.interval_seconds):
                return Verdict.RUNNING, answer, probes

    def _attempt(self, run: CheckRun, check: CheckSpec) -> Answer:
        probe = check.http
        assert probe is not None
        if probe.url is not None:
            return attempt(probe.url, check, self.deny_networks)
        assert probe.service is not None
        address = self._resolve(run.release.namespace, probe.service, probe.port)
        if address is None:
            port = f" port {probe.port}" if probe.port is not None else ""
            return Answer(False, "ServiceNotFound",
                          f"Service {probe.service!r}{port} has no ClusterIP and port in the operator's view")
        host, port_number = address
        host = f"[{host}]" if ":" in host else host
        return attempt(f"http://{host}:{port_number}{probe.path}", check, self.deny_networks)

    def _set(self, run: CheckRun, state: _Run, name: str, verdict: Verdict, reason: str, message: str,
             finished: bool = False) -> None:
        """Record a result of a run still current (a cancelled run's news is dropped); wake on a new verdict."""
        with self._lock:
            current = self._runs.get(_key(run))
            if current is not state or name not in current.results:
                return
            before = current.results[name]
            current.results[name] = replace(before, verdict=verdict, reason=reason, message=message,
                                            finished_at=self._now() if finished else None)
        if before.verdict is verdict:
            return
        if finished:  # one line per verdict (benchmarks/gates.py times a rollback from it)
            log = get_logger().bind(release=run.release.name, namespace=run.release.namespace, hook=str(run.hook),
                                    check=name, commit=run.commit[:12], color=str(run.color), reason=reason)
            (log.info if verdict is Verdict.PASSED else log.warning)(f"check {verdict.lower()}: {message}",
                                                                     action="Check")
        if self._wake is not None:
            self._wake(run.release)


def _http(checks: Iterable[CheckSpec]) -> list[CheckSpec]:
    return [check for check in checks if check.http is not None]
