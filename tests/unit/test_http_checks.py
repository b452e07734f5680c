"""The HTTP check runner against a real HTTP server on loopback: attempts, expectStatus and bodyContains,
timeouts, the post-promotion duration, Services resolved through the view, the deny-networks guard, wake-ups,
cancellation, and the dispatcher that routes job checks."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bluegreen.core.checks import CheckRun, CheckSpec, Hook, HttpProbe, JobProbe, Verdict
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.hooks.http_checks import DENY_SETTING, HttpCheckRunner, denied, parse_networks
from bluegreen.hooks.runner import JOB_CHECKS_UNAVAILABLE, CheckRunners

RELEASE = ReleaseRef("shop", "shop", "u-1")


@dataclass
class App:
    """A tiny app whose answers the test sets: status, body and delay per path; it counts requests."""

    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    hits: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    """Statuses to answer first, in order (then ``status``)."""


@pytest.fixture
def app() -> Iterator[tuple[App, int]]:
    state = App()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            time.sleep(state.delay)
            status = state.script.pop(0) if state.script else state.status
            self.send_response(status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, server.server_address[1]
    server.shutdown()
    server.server_close()


def check(port: int, hook: Hook = Hook.PRE_PROMOTION, path: str = "/healthz", **fields: Any) -> CheckSpec:
    probe = fields.pop("probe", None) or HttpProbe(url=f"http://127.0.0.1:{port}{path}")
    settings: dict[str, Any] = {"timeout_seconds": 2.0, "interval_seconds": 0.05, **fields}
    return CheckSpec(name="smoke", hook=hook, http=probe, **settings)


def run_of(hook: Hook = Hook.PRE_PROMOTION, commit: str = "c1") -> CheckRun:
    return CheckRun(RELEASE, hook, commit, Color.GREEN)


class Woken:
    def __init__(self) -> None:
        self.releases: list[ReleaseRef] = []
        self.event = threading.Event()

    def __call__(self, release: ReleaseRef) -> None:
        self.releases.append(release)
        self.event.set()


def runner(addresses: dict[tuple[str, int | None], tuple[str, int]] | None = None, wake: Woken | None = None,
           deny: str = "169.254.0.0/16,fe80::/10") -> HttpCheckRunner:
    known = addresses or {}
    return HttpCheckRunner(lambda namespace, name, port: known.get((name, port)), wake,
                           deny_networks=parse_networks(deny))


def verdict_of(checks: HttpCheckRunner, spec: CheckSpec, run: CheckRun | None = None, timeout: float = 10) -> Any:
    run = run or run_of(spec.hook)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = checks.results(run, [spec]).get(spec.name)
        if found is not None and found.verdict is not Verdict.RUNNING:
            return found
        time.sleep(0.01)
    raise AssertionError(f"no verdict within {timeout}s: {checks.results(run, [spec])}")


def test_a_good_answer_passes_and_wakes_the_release(app: tuple[App, int]) -> None:
    state, port = app
    woken = Woken()
    checks = runner(wake=woken)
    spec = check(port)
    started = checks.ensure(run_of(), [spec], {})
    assert started["smoke"].verdict is Verdict.RUNNING and started["smoke"].started_at is not None
    result = verdict_of(checks, spec)
    assert (result.verdict, result.reason) == (Verdict.PASSED, "Passed")
    assert result.finished_at is not None
    assert woken.event.wait(5) and woken.releases == [RELEASE]
    assert state.hits == ["/healthz"]
    checks.ensure(run_of(), [spec], {})
    time.sleep(0.1)
    assert state.hits == ["/healthz"], "a finished check is never started again"


@pytest.mark.parametrize(("status", "body", "fields", "verdict", "reason"), [
    pytest.param(204, b"", {}, Verdict.PASSED, "Passed", id="any-2xx"),
    pytest.param(503, b"unhealthy: db down", {}, Verdict.FAILED, "HttpStatus", id="5xx-fails"),
    pytest.param(302, b"", {}, Verdict.FAILED, "HttpStatus", id="redirect-is-not-followed"),
    pytest.param(418, b"teapot", {"expect_status": 418}, Verdict.PASSED, "Passed", id="expect-status"),
    pytest.param(200, b"ok", {"expect_status": 201}, Verdict.FAILED, "HttpStatus", id="expect-status-differs"),
    pytest.param(200, b'{"db": "up"}', {"body_contains": '"db": "up"'}, Verdict.PASSED, "Passed", id="body"),
    pytest.param(200, b'{"db": "down"}', {"body_contains": '"db": "up"'}, Verdict.FAILED, "BodyMismatch",
                 id="body-mismatch"),
])
def test_the_answer_decides(app: tuple[App, int], status: int, body: bytes, fields: dict[str, Any],
                            verdict: Verdict, reason: str) -> None:
    state, port = app
    state.status, state.body = status, body
    probe = HttpProbe(url=f"http://127.0.0.1:{port}/", **fields)
    checks = runner()
    spec = check(port, probe=probe)
    checks.ensure(run_of(), [spec], {})
    result = verdict_of(checks, spec)
    assert (result.verdict, result.reason) == (verdict, reason), result.message
    if verdict is Verdict.FAILED:
        assert f"HTTP {status}" in result.message and body.decode() in result.message


def test_a_failure_quotes_only_the_start_of_the_body(app: tuple[App, int]) -> None:
    state, port = app
    state.status, state.body = 500, b"x" * 5000
    checks = runner()
    spec = check(port)
    checks.ensure(run_of(), [spec], {})
    message = verdict_of(checks, spec).message
    assert "x" * 200 in message and "x" * 201 not in message and len(message) < 400


def test_attempts_are_consecutive_failures_spaced_by_the_interval(app: tuple[App, int]) -> None:
    state, port = app
    state.script = [503, 503]
    checks = runner()
    spec = check(port, attempts=3, interval_seconds=0.2)
    began = time.monotonic()
    checks.ensure(run_of(), [spec], {})
    result = verdict_of(checks, spec)
    assert result.verdict is Verdict.PASSED and len(state.hits) == 3
    assert time.monotonic() - began >= 0.4, "two pauses of intervalSeconds"
    state.script, state.hits[:] = [503, 503, 503], []
    spec = check(port, attempts=3)
    checks.ensure(run_of(commit="c2"), [spec], {})
    result = verdict_of(checks, spec, run_of(commit="c2"))
    assert result.verdict is Verdict.FAILED and len(state.hits) == 3
    assert "(after 3 attempts)" in result.message


def test_a_slow_answer_times_out(app: tuple[App, int]) -> None:
    state, port = app
    state.delay = 1.5
    checks = runner()
    spec = check(port, timeout_seconds=0.3)
    checks.ensure(run_of(), [spec], {})
    result = verdict_of(checks, spec)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "Timeout")


def test_nothing_listening_is_unreachable() -> None:
    checks = runner()
    spec = check(1)  # port 1 on loopback: connection refused
    checks.ensure(run_of(), [spec], {})
    result = verdict_of(checks, spec)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "Unreachable")


def test_post_promotion_probes_for_the_duration_then_passes(app: tuple[App, int]) -> None:
    state, port = app
    checks = runner()
    spec = check(port, Hook.POST_PROMOTION, duration_seconds=0.5, interval_seconds=0.1)
    began = time.monotonic()
    checks.ensure(run_of(Hook.POST_PROMOTION), [spec], {})
    result = verdict_of(checks, spec)
    assert result.verdict is Verdict.PASSED and time.monotonic() - began >= 0.5
    assert len(state.hits) >= 4


def test_post_promotion_fails_at_once_on_a_failing_probe(app: tuple[App, int]) -> None:
    state, port = app
    woken = Woken()
    checks = runner(wake=woken)
    spec = check(port, Hook.POST_PROMOTION, duration_seconds=30, interval_seconds=0.1)
    checks.ensure(run_of(Hook.POST_PROMOTION), [spec], {})
    time.sleep(0.3)
    assert checks.results(run_of(Hook.POST_PROMOTION), [spec])["smoke"].verdict is Verdict.RUNNING
    state.status, state.body = 503, b"unhealthy"
    failing = time.monotonic()
    assert woken.event.wait(5)
    result = checks.results(run_of(Hook.POST_PROMOTION), [spec])["smoke"]
    assert result.verdict is Verdict.FAILED and "HTTP 503" in result.message
    assert time.monotonic() - failing < 1.0, "within an interval (0.1 s) and a request"


def test_a_service_is_resolved_to_its_cluster_ip_and_port(app: tuple[App, int]) -> None:
    state, port = app
    probe = HttpProbe(service="shop-preview", path="/ready")
    checks = runner({("shop-preview", None): ("127.0.0.1", port)})
    spec = check(port, probe=probe)
    checks.ensure(run_of(), [spec], {})
    assert verdict_of(checks, spec).verdict is Verdict.PASSED
    assert state.hits == ["/ready"]
    unknown = check(port, probe=HttpProbe(service="nope"))
    checks.ensure(run_of(commit="c2"), [unknown], {})
    result = verdict_of(checks, unknown, run_of(commit="c2"))
    assert (result.verdict, result.reason) == (Verdict.FAILED, "ServiceNotFound")


def test_a_denied_address_is_refused_before_any_packet_with_the_setting_named(app: tuple[App, int]) -> None:
    state, port = app
    checks = runner(deny="127.0.0.0/8")
    spec = check(port)
    checks.ensure(run_of(), [spec], {})
    result = verdict_of(checks, spec)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "Refused")
    assert DENY_SETTING in result.message and "127.0.0.1" in result.message
    assert state.hits == [], "nothing was sent"
    metadata = runner()
    meta_check = check(port, probe=HttpProbe(url="http://169.254.169.254/latest/meta-data/"))
    metadata.ensure(run_of(), [meta_check], {})
    assert verdict_of(metadata, meta_check).reason == "Refused"


@pytest.mark.parametrize(("address", "networks", "refused"), [
    ("169.254.169.254", "169.254.0.0/16,fe80::/10", True),
    ("fe80::1", "169.254.0.0/16,fe80::/10", True),
    ("::ffff:169.254.169.254", "169.254.0.0/16", True),
    ("127.0.0.1", "169.254.0.0/16,fe80::/10", False),
    ("10.0.0.1", "", False),
])
def test_denied_networks(address: str, networks: str, refused: bool) -> None:
    assert denied(address, parse_networks(networks)) is refused


def test_a_bad_network_does_not_parse() -> None:
    with pytest.raises(ValueError):
        parse_networks("169.254.0.0/16,not-a-network")


def test_cancel_drops_the_runs_of_the_release_but_the_one_kept(app: tuple[App, int]) -> None:
    _, port = app
    checks = runner()
    spec = check(port, Hook.POST_PROMOTION, duration_seconds=30, interval_seconds=0.1)
    old, kept = run_of(Hook.POST_PROMOTION, "c1"), run_of(Hook.POST_PROMOTION, "c2")
    checks.ensure(old, [spec], {})
    checks.ensure(kept, [spec], {})
    checks.cancel(RELEASE, keep=kept)
    assert checks.results(old, [spec]) == {}
    assert checks.results(kept, [spec])["smoke"].verdict is Verdict.RUNNING
    checks.close()


def test_the_dispatcher_routes_by_kind_and_fails_job_checks_without_a_job_runner(app: tuple[App, int]) -> None:
    _, port = app
    http_check = check(port)
    job_check = CheckSpec(name="e2e", hook=Hook.PRE_PROMOTION, job=JobProbe(path="checks/job.yaml"))
    runners = CheckRunners(http=runner())
    started = runners.ensure(run_of(), [http_check, job_check], {})
    assert started["smoke"].verdict is Verdict.RUNNING
    assert (started["e2e"].verdict, started["e2e"].reason) == (Verdict.FAILED, JOB_CHECKS_UNAVAILABLE)
    assert runners.results(run_of(), [job_check])["e2e"].reason == JOB_CHECKS_UNAVAILABLE


def test_the_dispatcher_gives_job_checks_to_the_job_runner() -> None:
    seen: list[tuple[str, ...]] = []

    class JobRunner:
        def ensure(self, run: CheckRun, checks: Any, job_manifests: Any) -> dict[str, Any]:
            seen.append(tuple(c.name for c in checks))
            return {}

        def results(self, run: CheckRun, checks: Any) -> dict[str, Any]:
            return {}

        def cancel(self, release: ReleaseRef, keep: CheckRun | None = None) -> None:
            seen.append(("cancel",))

    job_check = CheckSpec(name="e2e", hook=Hook.PRE_PROMOTION, job=JobProbe(path="checks/job.yaml"))
    runners = CheckRunners(http=runner(), job=JobRunner())
    assert runners.ensure(run_of(), [job_check], {"checks/job.yaml": {}}) == {}
    runners.cancel(RELEASE)
    assert seen == [("e2e",), ("cancel",)]
