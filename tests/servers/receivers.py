"""Notification receivers on 127.0.0.1 for tests: real HTTP servers on threads, written as a receiver would
be (the HMAC check is the snippet of docs/notifications.md), not with the operator's code.

- ``Receiver``: records every POST (headers, body, arrival time, whether its HMAC signature verifies) and
  answers with the statuses of ``script`` first (with their headers), then ``status``.
- ``HangingReceiver``: accepts connections, reads what comes and never answers: a client's timeout must fire.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does (docs/notifications.md): HMAC-SHA256 of the raw body, compared in constant time."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when the request was read."""
    verified: bool | None
    """None: the receiver checks no signature."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A threaded HTTP server recording POSTs; ``secret`` set: it checks the ``X-Bluegreen-Signature``."""

    secret: bytes | None = None
    status: int = 200
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signed = None if state.secret is None else verify(state.secret, body,
                                                                  self.headers.get("X-Bluegreen-Signature"))
                with state.arrived:
                    state.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic(),
                                                   signed))
                    status, headers = state.script.pop(0) if state.script else (state.status, {})
                    state.arrived.notify_all()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """The first ``count`` requests, once they arrived (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} requests within {timeout}s: "
                                         f"{[r.json for r in self.received]}")
                self.arrived.wait(left)
            return list(self.received[:count])

    def events(self) -> list[str]:
        """The ``event`` of each webhook document received."""
        return [r.json.get("event") for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HangingReceiver:
    """Accepts connections and holds them open without answering; records when each came and when the client
    gave up (closed it)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted: list[float] = []
        self.closed: list[float] = []
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                self._reap()
                continue
            except OSError:
                return
            conn.setblocking(False)
            self._conns.append(conn)
            self.accepted.append(time.monotonic())

    def _reap(self) -> None:
        """Note the connections the client closed (it gave up): peeking reads b'' once the peer is gone."""
        for conn in list(self._conns):
            try:
                data = conn.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data == b"":
                self.closed.append(time.monotonic())
                self._conns.remove(conn)
                conn.close()
            else:  # the request is there, unread: drain it so a later EOF shows
                with contextlib.suppress(OSError):
                    conn.recv(65536)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for conn in self._conns:
            conn.close()
        self.sock.close()
