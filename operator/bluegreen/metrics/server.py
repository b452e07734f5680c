"""The ``/metrics`` endpoint: one HTTP server on one thread of its own (``--metrics-listen``).

Requests are answered one after another on that thread (a scrape renders in milliseconds), never on a thread
per request as ``prometheus_client.start_http_server`` does; a client that stalls is cut after
``REQUEST_TIMEOUT_SECONDS``. ``GET /metrics`` (and ``/``) serves the registry in the text format Prometheus
asks for (OpenMetrics when it accepts it, gzip when it accepts it); anything else is 404. Plain HTTP, like
controller-runtime's default: put it behind the cluster network, not the internet.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from bluegreen.logs import get_logger

REQUEST_TIMEOUT_SECONDS: Final = 10.0
OFF: Final = frozenset({"", "0", "off", "false", "no"})
"""``--metrics-listen`` values that turn the endpoint off (``0`` as controller-runtime's bind address)."""
METRICS_PATHS: Final = frozenset({"/metrics", "/"})


class ListenError(Exception):
    """The metrics address cannot be listened on (in use, unknown host, no permission)."""


def parse_metrics_listen(text: str) -> tuple[str, int] | None:
    """``--metrics-listen``: ``HOST:PORT``, ``:PORT`` (every IPv4 interface), ``[::]:PORT``, or ``0``/``off``
    (None: no endpoint). Raises ValueError for anything else."""
    value = text.strip()
    if value.lower() in OFF:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, :PORT or 0 (off), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets ([::1]:8000), got {text!r}")
    return host or "0.0.0.0", int(port)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def metrics_app(registry: CollectorRegistry) -> WsgiApp:
    """The WSGI application: the registry at ``/metrics`` and ``/``, 404 elsewhere."""
    render: WsgiApp = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in METRICS_PATHS:
            return render(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: the metrics are at /metrics\n"]

    return app


class _Server(WSGIServer):
    """wsgiref's single-threaded server, without the reverse DNS lookup of the bound address."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
        self.setup_environ()


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS  # socket timeout per connection: a stalled client frees the thread

    def log_message(self, format: str, *args: Any) -> None:  # no access log (scrapes every few seconds)
        pass


class MetricsServer:
    """``registry`` over HTTP on ``host:port``: ``start()`` binds (raising ``ListenError``) and starts the
    thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.host = host
        self.requested_port = port
        self.registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server_class = _IPv6Server if ":" in self.host else _Server
        try:
            server = server_class((self.host, self.requested_port), _QuietHandler)
        except OSError as exc:
            raise ListenError(f"{self.host}:{self.requested_port}: {exc.strerror or exc}") from None
        server.set_app(metrics_app(self.registry))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="bluegreen-metrics", daemon=True)
        self._thread.start()
        get_logger("bluegreen.metrics").info("metrics endpoint listening", action="Metrics", host=self.host,
                                             port=self.port, path="/metrics")

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self.requested_port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
