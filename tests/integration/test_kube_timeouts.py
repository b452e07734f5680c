"""Every Kubernetes API call of the operator has a request timeout: against a real socket on loopback that
accepts connections and never answers (a half-open API server), reads and writes fail instead of hanging."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.kube.client import RequestTimeouts, TimedApiClient
from bluegreen.kube.cluster import KubeCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:PORT: accepts every connection, reads what is sent, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stopping.set()
    listener.close()
    for conn in held:
        conn.close()


def cluster_at(host: str, timeouts: RequestTimeouts) -> KubeCluster:
    configuration = client.Configuration()
    configuration.host = host
    return KubeCluster(TimedApiClient(configuration, timeouts))


RELEASE = ReleaseRef("ns", "shop", "u")
CALLS: dict[str, Callable[[KubeCluster], Any]] = {
    "read a Secret (GET)": lambda c: c.read_secret("ns", "creds"),
    "check before creating a colour (GET)": lambda c: c.apply_deployment(
        {"metadata": {"name": "shop-blue", "namespace": "ns", "labels": {"bluegreen.dev/release": "shop"}}}),
    "switch a selector (PATCH)": lambda c: c.switch_selector("ns", "shop", Color.GREEN),
    "scale (PATCH)": lambda c: c.scale(RELEASE, Color.BLUE, 0, {}),
    "patch the status (PATCH)": lambda c: c.patch_status(RELEASE, {"phase": "Healthy"}),
    "post an Event (POST)": lambda c: c.post_event(RELEASE, "Normal", "Test", "hello"),
    "list releases (CLI)": lambda c: c.list_releases("ns"),
}


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_a_call_to_a_silent_api_server_times_out(silent_server: str, call: str) -> None:
    cluster = cluster_at(silent_server, RequestTimeouts(connect=1.0, read=0.3))
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        CALLS[call](cluster)
    elapsed = time.monotonic() - started
    assert "timed out" in repr(raised.value).lower() or "timeout" in type(raised.value).__name__.lower()
    # urllib3 retries an idempotent GET up to 3 times: each attempt is bounded by the read timeout
    assert elapsed < 4 * 0.3 + 1.0, f"{call} took {elapsed:.2f}s"


def test_a_call_may_still_name_its_own_timeout(silent_server: str) -> None:
    cluster = cluster_at(silent_server, RequestTimeouts(connect=1.0, read=30.0))
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        cluster.core.patch_namespaced_service("shop", "ns", {}, _request_timeout=(1.0, 0.2))
    assert time.monotonic() - started < 2.0


def test_timeouts_are_configurable_from_the_environment() -> None:
    assert RequestTimeouts.from_env({}) == RequestTimeouts(5.0, 30.0)
    assert RequestTimeouts.from_env({"BLUEGREEN_API_CONNECT_TIMEOUT": "2", "BLUEGREEN_API_READ_TIMEOUT": "7.5"}) \
        == RequestTimeouts(2.0, 7.5)
