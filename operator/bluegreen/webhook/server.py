"""Push-webhook receiver: a git server says "I was pushed to", the operator checks git now.

A push only shortens the wait for the next git check of the releases that watch the pushed repository and
ref. It never says *what* to deploy: the payload's commit ids are ignored and the operator reads git
itself, so a forged or replayed payload can at worst cause an early, harmless fetch (and a request that
fails authentication causes nothing at all).

Routes (plain HTTP; TLS is terminated in front of it, e.g. by an Ingress)::

    POST /hooks/github    X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>, X-GitHub-Event: push|ping
    POST /hooks/gitlab    X-Gitlab-Token: <secret>, X-Gitlab-Event: Push Hook|Tag Push Hook
    POST /hooks/gitea     X-Gitea-Signature or X-Forgejo-Signature: <hex HMAC-SHA256(secret, body)>,
                          X-Gitea-Event or X-Forgejo-Event: push   (also for Forgejo)
    POST /hooks/generic   X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>,
                          body {"repository": "<clone url>", "ref": "refs/heads/main"}
    GET  /healthz         200

The provider-specific parts (:func:`authenticate`, :func:`parse_push`) are pure functions; :func:`make_app`
builds the aiohttp application around them and :class:`WebhookServer` runs it in the current event loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from bluegreen.core.recorder import Recorder
from bluegreen.logs import get_logger
from bluegreen.webhook.providers import (
    PROVIDERS,
    PayloadError,
    authenticate,
    delivery_id,
    event_name,
    is_ping,
    parse_push,
    redact,
)

MAX_BODY_BYTES: Final = 1024 * 1024
"""Larger bodies are refused with 413 (GitHub caps its payloads at 25 MB, but pushes are far smaller)."""
MAX_LINE_BYTES: Final = 8190
MAX_HEADER_FIELD_BYTES: Final = 8190
MAX_HEADERS: Final = 64
MAX_CONCURRENT_REQUESTS: Final = 32
"""More requests in flight than this get 503 at once: caps the memory held by bodies being read."""
BODY_READ_TIMEOUT_SECONDS: Final = 10.0

SecretSource = Callable[[], bytes | None]
"""Returns the current shared secret, or None when it is unavailable (then every request is refused)."""
Trigger = Callable[[frozenset[str], str | None], int]
"""``Controller.trigger``: check git now for the releases watching one of these URLs at this ref."""


class _LogThrottle:
    """At most ``limit`` rejection lines per ``window`` seconds; the next line logged says how many were left
    out, so a flood of bad requests cannot flood the log."""

    def __init__(self, limit: int = 20, window: float = 10.0) -> None:
        self.limit = limit
        self.window = window
        self._started = 0.0
        self._count = 0
        self._suppressed = 0

    def allow(self) -> tuple[bool, int]:
        now = time.monotonic()
        if now - self._started >= self.window:
            self._started, self._count = now, 0
        if self._count < self.limit:
            self._count += 1
            suppressed, self._suppressed = self._suppressed, 0
            return True, suppressed
        self._suppressed += 1
        return False, 0


def make_app(secret_source: SecretSource, trigger: Trigger, *, max_body: int = MAX_BODY_BYTES,
             max_concurrent: int = MAX_CONCURRENT_REQUESTS, recorder: Recorder | None = None) -> web.Application:
    """The receiver: ``POST /hooks/{github,gitlab,gitea,generic}`` and ``GET /healthz``. Every answer to a
    ``/hooks/`` request is reported to ``recorder`` (provider ``unknown`` for any other path)."""
    recorder = recorder if recorder is not None else Recorder()
    log = get_logger("bluegreen.webhook")
    throttle = _LogThrottle()
    in_flight = 0

    def reply(code: int, /, **body: Any) -> web.Response:
        return web.json_response(body, status=code)

    def reject(request: web.Request, provider: str, status: int, error: str) -> web.Response:
        allowed, suppressed = throttle.allow()
        if allowed:
            extra = {"suppressed": suppressed} if suppressed else {}
            log.warning("webhook rejected", action="Webhook", provider=provider, status=status, reason=error,
                        remote=request.remote, **extra)
        return reply(status, error=error)

    async def hook(request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        response = await answer(request, provider)
        recorder.webhook_request(provider if provider in PROVIDERS else "unknown", response.status)
        return response

    async def answer(request: web.Request, provider: str) -> web.Response:
        nonlocal in_flight
        if provider not in PROVIDERS:
            return reject(request, provider[:40], 404, f"unknown provider; use one of {', '.join(PROVIDERS)}")
        if in_flight >= max_concurrent:
            response = reject(request, provider, 503, "too many requests in flight")
            response.headers["Retry-After"] = "1"
            return response
        in_flight += 1
        try:
            return await handle(request, provider)
        finally:
            in_flight -= 1

    async def handle(request: web.Request, provider: str) -> web.Response:
        if request.content_type != "application/json":
            return reject(request, provider, 415, "Content-Type must be application/json")
        if request.content_length is not None and request.content_length > max_body:
            return reject(request, provider, 413, f"body larger than {max_body} bytes")
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return reject(request, provider, 413, f"body larger than {max_body} bytes")
        except TimeoutError:
            return reject(request, provider, 408, "body not received in time")
        secret = secret_source()
        if secret is None:
            return reject(request, provider, 503, "webhook secret unavailable")
        if not authenticate(provider, request.headers, body, secret):
            return reject(request, provider, 401, "missing or invalid signature")
        event = event_name(provider, request.headers)
        if is_ping(provider, request.headers):
            log.info("webhook ping", action="Webhook", provider=provider, delivery=delivery_id(request.headers))
            return reply(200, ping="pong")
        try:
            push = parse_push(provider, request.headers, body)
        except PayloadError as exc:
            return reject(request, provider, 400, str(exc))
        if push is None:
            return reply(200, triggered=0, ignored=f"event {(event or 'none')[:60]!r} is not a push")
        try:
            triggered = trigger(push.repository_urls, push.ref)
        except Exception as exc:  # never a 500 with a traceback to a git server; the log has the detail
            log.error("webhook trigger failed", action="Webhook", provider=provider,
                      error=f"{type(exc).__name__}: {exc}"[:500])
            return reply(500, error="internal error")
        log.info("webhook push", action="Webhook", provider=provider, ref=push.ref, triggered=triggered,
                 repositories=sorted(map(redact, push.repository_urls)), delivery=delivery_id(request.headers))
        return reply(202, triggered=triggered)

    async def healthz(_: web.Request) -> web.Response:
        return reply(200, status="ok")

    app = web.Application(client_max_size=max_body)
    app.router.add_post("/hooks/{provider}", hook)
    app.router.add_get("/healthz", healthz)
    return app


# ---- running it ---------------------------------------------------------------------------------------
def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``0.0.0.0:9443``, ``127.0.0.1:0``, ``[::]:9443``) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f"expected HOST:PORT with a host (0.0.0.0 for every interface), got {text!r}")
    return host, int(port)


def check_listen(host: str, port: int) -> None:
    """Raise OSError now if ``host:port`` cannot be listened on (unknown host, port in use, no permission),
    so that ``bluegreen run`` fails before it starts rather than from inside kopf's startup."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: TIME_WAIT is no conflict
        probe.bind(address)


@dataclass(frozen=True)
class WebhookConfig:
    """What ``bluegreen run --webhook-listen HOST:PORT --webhook-secret-file PATH`` asked for."""

    host: str
    port: int
    secret_file: Path


class WebhookServer:
    """The receiver on ``host:port`` in the running event loop (kopf's): ``await start()`` / ``await stop()``."""

    def __init__(self, host: str, port: int, secret_source: SecretSource, trigger: Trigger, *,
                 recorder: Recorder | None = None) -> None:
        self.host = host
        self.requested_port = port
        self._app = make_app(secret_source, trigger, recorder=recorder)
        self._runner: web.AppRunner | None = None
        self.log = get_logger("bluegreen.webhook")

    async def start(self) -> None:
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=5.0,
                               keepalive_timeout=75,
                               max_line_size=MAX_LINE_BYTES, max_field_size=MAX_HEADER_FIELD_BYTES,
                               max_headers=MAX_HEADERS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.log.info("webhook receiver listening", action="Webhook", host=self.host, port=self.port,
                      routes=[f"/hooks/{p}" for p in PROVIDERS])

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._runner is not None:
            for address in self._runner.addresses:
                if isinstance(address, tuple) and len(address) >= 2:
                    return int(address[1])
        return self.requested_port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
