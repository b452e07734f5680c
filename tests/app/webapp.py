"""The test web app: answers with its version and configuration, has a switchable health check, drains on
SIGTERM, and reads and writes a PostgreSQL table. Standard library only (``http.server``), so it runs under
any python3; the PostgreSQL driver (pg8000) is imported only when ``DATABASE_URL`` is set and a ``/db/``
endpoint is used. See ``tests/app/README.md`` for the environment, the endpoints and the shutdown sequence.

    APP_VERSION=v1 APP_MESSAGE=hello python3 tests/app/webapp.py --host 127.0.0.77 --port 8080
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from appdb import Database, DatabaseError, parse_columns

MAX_DELAY = 30.0
"""Upper bound of ``?delay=`` and ``APP_RESPONSE_DELAY`` (seconds)."""
MAX_BODY = 64 * 1024
IDLE_TIMEOUT = 10.0
"""A connection that sends no complete request within this time is closed (bounds the drain)."""


def log(message: str) -> None:
    """One line on stdout (the pod log), flushed at once."""
    print(f"webapp[{os.getpid()}]: {message}", flush=True)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    value = float(raw) if raw else default
    if not 0 <= value <= 3600:
        raise ValueError(f"{name}={raw!r}: expected seconds between 0 and 3600")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the app is configured with (environment, then command-line overrides)."""

    version: str
    host: str
    port: int
    message: str | None = None
    config_file: str | None = None
    pod_name: str | None = None
    pod_ip: str | None = None
    namespace: str | None = None
    startup_delay: float = 0.0
    shutdown_delay: float = 1.0
    response_delay: float = 0.0
    health_fail_file: str | None = None
    database_url: str | None = None
    db_table: str = "items"
    db_columns: tuple[str, ...] = ("name",)
    access_log: bool = False

    @classmethod
    def load(cls, env: Mapping[str, str], argv: Sequence[str] | None = None) -> Settings:
        """Read the ``APP_*`` / ``POD_*`` / ``DATABASE_URL`` variables; ``--host``/``--port`` override."""
        parser = argparse.ArgumentParser(description="bluegreen test web app")
        parser.add_argument("--host", help="listen address (default $APP_HOST, else $POD_IP, else 127.0.0.1)")
        parser.add_argument("--port", type=int, help="listen port (default $APP_PORT, else 8080)")
        args = parser.parse_args(argv)
        pod_ip = env.get("POD_IP") or None
        return cls(
            version=env.get("APP_VERSION") or "unversioned",
            host=args.host or env.get("APP_HOST") or pod_ip or "127.0.0.1",
            port=args.port if args.port is not None else int(env.get("APP_PORT") or 8080),
            message=env.get("APP_MESSAGE"),
            config_file=env.get("APP_CONFIG_FILE") or None,
            pod_name=env.get("POD_NAME") or None,
            pod_ip=pod_ip,
            namespace=env.get("POD_NAMESPACE") or None,
            startup_delay=_seconds(env, "APP_STARTUP_DELAY", 0.0),
            shutdown_delay=_seconds(env, "APP_SHUTDOWN_DELAY", 1.0),
            response_delay=min(_seconds(env, "APP_RESPONSE_DELAY", 0.0), MAX_DELAY),
            health_fail_file=env.get("APP_HEALTH_FAIL_FILE") or None,
            database_url=env.get("DATABASE_URL") or None,
            db_table=env.get("APP_DB_TABLE") or "items",
            db_columns=parse_columns(env.get("APP_DB_COLUMNS") or "name"),
            access_log=env.get("APP_ACCESS_LOG", "") not in ("", "0", "false"),
        )


Response = tuple[int, str, bytes]
"""HTTP status, content type, body."""


class HttpError(Exception):
    """Ends a request with ``status`` and a JSON ``{"error": message}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class App:
    """Request handling and the state the endpoints change (thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._failing = False
        self.draining = False
        self.in_flight = 0
        self.served = 0
        self._db: Database | None = None

    # --- state ----------------------------------------------------------------------------------------

    def unhealthy_reason(self) -> str | None:
        """Why ``/healthz`` fails now, or None when healthy."""
        if self._failing:
            return "told to fail (POST /admin/fail-health)"
        flag = self.settings.health_fail_file
        if flag and os.path.exists(flag):
            return f"flag file {flag} exists"
        return None

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.served += 1

    @property
    def db(self) -> Database:
        s = self.settings
        if s.database_url is None:
            raise HttpError(503, "no database: DATABASE_URL is not set")
        with self._lock:
            if self._db is None:
                self._db = Database(s.database_url, s.db_table, s.db_columns)
            return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    # --- endpoints ------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes) -> Response:
        """Route one request; errors become JSON bodies with the right status."""
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        routes = {
            ("GET", "/"): self.index,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/admin/state"): self.state,
            ("POST", "/admin/fail-health"): self.fail_health,
            ("POST", "/admin/recover-health"): self.recover_health,
            ("GET", "/db/items"): self.list_items,
            ("POST", "/db/items"): self.add_item,
            ("GET", "/db/schema"): self.db_schema,
        }
        route = routes.get((method, url.path))
        try:
            if route is None:
                known = any(path == url.path for _, path in routes)
                raise HttpError(405 if known else 404, f"no route {method} {url.path}")
            return route(query, body)
        except HttpError as exc:
            return self.json(exc.status, {"error": str(exc)})
        except DatabaseError as exc:
            return self.json(500, {"error": str(exc)})
        except ValueError as exc:
            return self.json(400, {"error": str(exc)})

    def json(self, status: int, payload: Mapping[str, Any]) -> Response:
        body = json.dumps({"version": self.settings.version, **payload}, default=str).encode() + b"\n"
        return status, "application/json", body

    def index(self, query: Mapping[str, str], _body: bytes) -> Response:
        s = self.settings
        delay = min(float(query.get("delay", 0) or 0), MAX_DELAY) + s.response_delay
        if delay > 0:
            time.sleep(delay)
        config = None
        if s.config_file:
            try:
                config = Path(s.config_file).read_text()
            except OSError as exc:
                raise HttpError(500, f"cannot read APP_CONFIG_FILE {s.config_file}: {exc.strerror}") from exc
        return self.json(200, {
            "message": s.message, "config": config, "config_file": s.config_file, "pod": s.pod_name,
            "pod_ip": s.pod_ip, "namespace": s.namespace, "pid": os.getpid(),
        })

    def healthz(self, _query: Mapping[str, str], _body: bytes) -> Response:
        reason = self.unhealthy_reason()
        if reason is None:
            return 200, "text/plain", b"ok\n"
        return 503, "text/plain", f"unhealthy: {reason}\n".encode()

    def state(self, _query: Mapping[str, str], _body: bytes) -> Response:
        with self._lock:
            counts = {"in_flight": self.in_flight, "served": self.served}
        return self.json(200, {"healthy": self.unhealthy_reason() is None, "draining": self.draining, **counts})

    def fail_health(self, _query: Mapping[str, str], _body: bytes) -> Response:
        self._failing = True
        log("health check told to fail")
        return self.json(200, {"healthy": False})

    def recover_health(self, _query: Mapping[str, str], _body: bytes) -> Response:
        self._failing = False
        log("health check told to recover")
        return self.json(200, {"healthy": self.unhealthy_reason() is None})

    def list_items(self, query: Mapping[str, str], _body: bytes) -> Response:
        limit = int(query["limit"]) if "limit" in query else None
        items = self.db.rows(limit)
        return self.json(200, {"table": self.db.table, "columns": list(self.db.columns), "count": len(items),
                               "items": items})

    def add_item(self, _query: Mapping[str, str], body: bytes) -> Response:
        try:
            fields = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from exc
        if not isinstance(fields, dict):
            raise HttpError(400, "body must be a JSON object")
        default = fields.get("value")
        values = {c: str(fields.get(c, default)) for c in self.db.columns
                  if c in fields or default is not None}
        new_id = self.db.insert(values)
        return self.json(201, {"id": new_id, "table": self.db.table, "written": values})

    def db_schema(self, query: Mapping[str, str], _body: bytes) -> Response:
        table = query.get("table") or self.db.table
        return self.json(200, {"table": table, "columns": self.db.schema(table)})


class Handler(BaseHTTPRequestHandler):
    """One request per connection (HTTP/1.0), answered by the server's ``App``."""

    server: AppServer
    protocol_version = "HTTP/1.0"
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        app = self.server.app
        app.begin()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, ctype, body = app.json(413, {"error": f"body over {MAX_BODY} bytes"})
            else:
                status, ctype, body = app.handle(method, self.path, self.rfile.read(length) if length else b"")
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-App-Version", app.settings.version)
            if app.settings.pod_name:
                self.send_header("X-App-Pod", app.settings.pod_name)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        finally:
            app.end()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.settings.access_log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class AppServer(ThreadingHTTPServer):
    """A thread per connection; ``server_close`` waits for every request thread (none is a daemon)."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS query); the literal address is enough here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def drain_backlog(self) -> int:
        """Serve connections already queued in the listen backlog (so closing it resets none); returns them."""
        self.socket.setblocking(False)
        taken = 0
        while True:
            try:
                conn, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return taken
            conn.setblocking(True)
            self.process_request(conn, address)
            taken += 1


def serve(settings: Settings, stop: threading.Event) -> int:
    """Start-up delay, serve until ``stop``, then drain: keep serving ``shutdown_delay`` seconds, stop
    accepting, finish the requests in flight. Returns the exit code."""
    log(f"version {settings.version} starting (startup delay {settings.startup_delay:g}s)")
    if settings.startup_delay and stop.wait(settings.startup_delay):
        log("stopped during startup delay; exit 0")
        return 0
    app = App(settings)
    try:
        server = AppServer((settings.host, settings.port), app)
    except OSError as exc:
        log(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
        return 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="accept")
    thread.start()
    log(f"listening on http://{settings.host}:{settings.port}")
    while not stop.wait(1.0):
        pass
    app.draining = True
    log(f"SIGTERM: serving {settings.shutdown_delay:g}s more while endpoints are updated")
    time.sleep(settings.shutdown_delay)
    server.shutdown()
    thread.join()
    queued = server.drain_backlog()
    log(f"stopped accepting; finishing {app.in_flight} in-flight request(s) ({queued} from the backlog)")
    server.server_close()  # closes the listener, then joins every request thread
    app.close()
    log(f"served {app.served} request(s); exit 0")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.load(os.environ, argv)
    except ValueError as exc:
        log(f"bad configuration: {exc}")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return serve(settings, stop)


if __name__ == "__main__":
    sys.exit(main())
