"""The ``/metrics`` endpoint on loopback (``bluegreen.metrics.server``): what it serves, on one thread, and
the ``--metrics-listen`` values the operator accepts or refuses."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from bluegreen.cli import _parser
from bluegreen.metrics import server as metrics_server
from bluegreen.metrics.server import ListenError, MetricsServer, parse_metrics_listen


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), (":8000", ("0.0.0.0", 8000)), ("[::1]:9100", ("::1", 9100)),
    ("localhost:0", ("localhost", 0)), (" :8000 ", ("0.0.0.0", 8000)),
    ("0", None), ("off", None), ("OFF", None), ("", None), ("false", None),
])
def test_parse_metrics_listen(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_metrics_listen(text) == expected


@pytest.mark.parametrize("text", ["8000", "127.0.0.1:", "127.0.0.1:http", ":65536", "::1:8000", "on", ":-1"])
def test_parse_metrics_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_metrics_listen(text)


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Counter]]:
    registry = CollectorRegistry()
    counter = Counter("bluegreen_test_things_total", "Things.", ["kind"], registry=registry)
    counter.labels("a").inc(3)
    server = MetricsServer("127.0.0.1", 0, registry)
    server.start()
    yield server, counter
    server.stop()


def get(server: MetricsServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_metrics_are_served_at_metrics_and_root_and_nothing_else(served: tuple[MetricsServer, Counter]) -> None:
    server, counter = served
    assert server.port != 0
    status, headers, text = get(server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'bluegreen_test_things_total{kind="a"} 3.0' in text
    counter.labels("a").inc()
    assert b'bluegreen_test_things_total{kind="a"} 4.0' in get(server, "/")[2], "every scrape renders anew"
    status, _, text = get(server, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and text.endswith(b"# EOF\n")
    status, headers, raw = get(server, "/metrics", {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip" and b"bluegreen_test_things_total" in gzip.decompress(raw)
    assert get(server, "/healthz")[0] == 404 and get(server, "/metrics/x")[0] == 404


def test_scrapes_are_answered_on_one_thread(served: tuple[MetricsServer, Counter]) -> None:
    server, _ = served
    names_before = {t.name for t in threading.enumerate()}
    assert "bluegreen-metrics" in names_before
    before = threading.active_count()
    for _ in range(20):
        assert get(server, "/metrics")[0] == 200
    assert threading.active_count() == before, "no thread per request"


def test_a_client_that_stalls_is_cut_and_holds_up_the_next_scrape_only_that_long(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_server._QuietHandler, "timeout", 0.5)
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry())
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as stalled:
            stalled.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
            time.sleep(0.05)
            started = time.monotonic()
            assert get(server, "/metrics")[0] == 200
            waited = time.monotonic() - started
        assert 0.3 < waited < 3, f"the scrape waited {waited:.2f}s behind the stalled client"
    finally:
        server.stop()


def test_stop_frees_the_port_and_the_thread() -> None:
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry())
    server.start()
    port = server.port
    server.stop()
    assert "bluegreen-metrics" not in {t.name for t in threading.enumerate()}
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
    server.stop()  # twice: nothing to do


def test_a_port_in_use_is_a_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=rf"127\.0\.0\.1:{port}: .*in use"):
            MetricsServer("127.0.0.1", port, CollectorRegistry()).start()


# ---- the CLI ------------------------------------------------------------------------------------------
def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_METRICS_LISTEN"}
    environment.update({"KUBECONFIG": "/nonexistent/kubeconfig", **(env or {})})
    return subprocess.run([sys.executable, "-m", "bluegreen.cli", *args], capture_output=True, text=True,
                          timeout=60, env=environment)


def test_the_cli_takes_the_flag_as_given() -> None:
    assert _parser().parse_args(["run", "--metrics-listen", ":8000"]).metrics_listen == ":8000"
    assert _parser().parse_args(["run"]).metrics_listen is None


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--metrics-listen", "8000"], None, "--metrics-listen"),
    (["--metrics-listen", "nowhere:port"], {"BLUEGREEN_METRICS_LISTEN": ":8000"}, "--metrics-listen"),
    ([], {"BLUEGREEN_METRICS_LISTEN": "sometimes"}, "BLUEGREEN_METRICS_LISTEN"),
])
def test_a_bad_value_refuses_to_start(args: list[str], env: dict[str, str] | None, named: str) -> None:
    result = run_cli("run", "-n", "default", "--log-format", "json", *args, env=env)
    assert result.returncode == 2, result.stderr
    assert f"cannot start: {named}" in result.stdout + result.stderr


def test_a_port_in_use_refuses_to_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "-n", "default", "--log-format", "json", "--metrics-listen", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"--metrics-listen 127.0.0.1:{port}" in result.stdout + result.stderr
    assert "in use" in result.stdout + result.stderr
