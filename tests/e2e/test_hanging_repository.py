"""A repository that hangs delays nobody else. Twenty releases follow twenty repositories of one git server
(``git daemon`` behind a loopback proxy of this test); once they all serve, the proxy starts accepting
connections and never answering, like a server that hangs. Meanwhile a release on a healthy repository
cuts over to a new commit and rolls back (``git revert``, forced check): both complete within seconds,
well before the hanging fetches time out (``BLUEGREEN_GIT_TIMEOUT``). Then the twenty report
``SourceReady=False`` (``RepositoryUnreachable``, timed out) and keep serving, untouched.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from waiting import wait_until

from conftest import MANIFEST, Cluster, GitRepo, Operator, operator_kubeconfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import gitservers

HANGING = 20
GIT_TIMEOUT = 20.0
"""The operator's network timeout for git (seconds): the hanging fetches end after this."""
PROMPT = GIT_TIMEOUT / 2
"""What "promptly" means here: well before the hanging fetches time out."""


class Proxy:
    """Forwards TCP connections to ``upstream`` on loopback; after ``hang()``, accepts and never answers."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.hanging = False
        self.held: list[tuple[float, socket.socket]] = []
        self._server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._server.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def hang(self) -> None:
        self.hanging = True

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self.hanging:
                    self.held.append((time.monotonic(), conn))  # kept open, never read, never answered
                    continue
                self._open.append(conn)
            threading.Thread(target=self._forward, args=(conn,), daemon=True).start()

    def _forward(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.upstream)) as up:
            with self._lock:
                self._open.append(up)
            threading.Thread(target=_pipe, args=(up, conn), daemon=True).start()
            _pipe(conn, up)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for sock in self._open + [conn for _, conn in self.held]:
                with contextlib.suppress(OSError):
                    sock.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[Proxy, Path]]:
    """git daemon serving ``tmp_path/served``, behind a proxy that can start hanging."""
    served = tmp_path / "served"
    served.mkdir()
    daemon = gitservers.GitDaemon(tmp_path / "daemon", served)
    front = Proxy(daemon.port)
    try:
        yield front, served
    finally:
        front.close()
        daemon.stop()


@pytest.fixture
def slow_git_operator(kube_client: client.ApiClient, crd: None, namespace: str, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[Operator]:
    monkeypatch.setenv("BLUEGREEN_GIT_TIMEOUT", f"{GIT_TIMEOUT:g}")
    runner = Operator(namespace, operator_kubeconfig(kube_client, namespace, tmp_path), tmp_path).start()
    yield runner
    runner.stop()


def test_a_hanging_repository_delays_no_cut_over_or_rollback_elsewhere(
        cluster: Cluster, repo: GitRepo, proxy: tuple[Proxy, Path], slow_git_operator: Operator, tmp_path: Path,
        endpoints) -> None:  # type: ignore[no-untyped-def]
    front, served = proxy
    names = [f"hang-{n:02d}" for n in range(HANGING)]
    source = GitRepo(tmp_path / "hanging-source", app="hang")
    for name in names:  # one repository each: twenty mirrors, twenty fetches hanging at once
        source.write(MANIFEST.format(name=name, app=name, replicas=1, image="registry.local/hang:v1", delay=0),
                     message=f"{name} v1")
        gitservers.publish(served, f"{name}.git", source.path)
        cluster.create_service(name, app=name)
        cluster.custom.create_namespaced_custom_object("bluegreen.dev", "v1alpha1", cluster.namespace,
                                                       "bluegreenreleases", {
            "apiVersion": "bluegreen.dev/v1alpha1", "kind": "BlueGreenRelease", "metadata": {"name": name},
            "spec": {"source": {"url": front.url(f"{name}.git"), "path": source.manifest_path, "interval": "2s"},
                     "service": name, "scaleDownDelaySeconds": 300}})
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", replicas=2, delay=1)
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    for name in names:
        wait_until(lambda n=name: cluster.status(n).get("activeColor") == "blue"
                   and cluster.condition("Ready", n).get("status") == "True", timeout=60, what=f"{name} serving")
    before = {name: (cluster.deployment("blue", name).metadata.resource_version,  # type: ignore[union-attr]
                     cluster.selector(name), cluster.status(name)["activeRevision"]) for name in names}

    front.hang()
    wait_until(lambda: len(front.held) >= HANGING, timeout=15, what="every hanging repository being fetched")
    first_hang = front.held[0][0]
    with endpoints() as recorded:
        v2 = repo.release("registry.local/shop:v2", replicas=2, delay=1)
        started = time.monotonic()
        cluster.check_now()
        cluster.wait_serving(v2, "green", timeout=GIT_TIMEOUT)
        cut_over = time.monotonic() - started
        reverted = repo.revert()
        started = time.monotonic()
        cluster.check_now()
        cluster.wait_serving(reverted, "blue", timeout=GIT_TIMEOUT)
        rollback = time.monotonic() - started
        done = time.monotonic()
    recorded.assert_never_empty()
    hung_for = done - first_hang
    print(f"\nbeside {HANGING} hanging repositories (git timeout {GIT_TIMEOUT:g}s): cut-over {cut_over:.2f}s "
          f"(new commit -> green serving, incl. readiness ~1s), warm rollback {rollback:.2f}s; the first fetch "
          f"had hung for {hung_for:.1f}s by then")
    assert hung_for < GIT_TIMEOUT, "the cut-over and the rollback happened while the fetches hung"
    assert cut_over < PROMPT and rollback < PROMPT

    def unreachable(name: str) -> bool:
        condition = cluster.condition("SourceReady", name)
        return condition.get("status") == "False" and condition.get("reason") == "RepositoryUnreachable"

    wait_until(lambda: all(unreachable(n) for n in names), timeout=GIT_TIMEOUT + 20,
               what="the hanging releases reporting RepositoryUnreachable")
    message = cluster.condition("SourceReady", names[0])["message"]
    assert "timed out" in message and front.url(f"{names[0]}.git") in message
    assert "blue keeps serving" in cluster.condition("Ready", names[0])["message"]
    after = {name: (cluster.deployment("blue", name).metadata.resource_version,  # type: ignore[union-attr]
                    cluster.selector(name), cluster.status(name)["activeRevision"]) for name in names}
    assert after == before, "nothing that serves the hanging releases was touched"
    assert all(cluster.deployment("green", name) is None for name in names)
