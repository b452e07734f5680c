"""One POST of a notification: connect and read timeouts, the deny-networks guard, and error descriptions that
never contain the URL (a Slack URL is a credential).

The guard is the HTTP checks' (``bluegreen.core.networks``): the host is resolved and every address checked
before connecting, the connected peer checked again before anything is sent. Redirects are not followed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bluegreen import __version__
from bluegreen.core.networks import DENY_SETTING, Network, denied

USER_AGENT = f"bluegreen-operator/{__version__}"
BODY_LIMIT = 4096
"""Bytes of an answer read (it is not kept)."""


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or ``status`` None and ``error`` (a network error)."""

    status: int | None
    error: str = ""
    retry_after: str | None = None
    """The ``Retry-After`` header of the answer, as sent."""

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else self.error


class DeliveryRefused(Exception):
    """The URL cannot be used (not http(s), no host, or a denied address): trying again changes nothing."""


def check_url(url: str) -> None:
    """Refuse anything but an http:// or https:// URL with a host (``DeliveryRefused``; the URL is not quoted)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryRefused("not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        raise DeliveryRefused("the URL's port is not a number") from None


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float,
         networks: Sequence[Network]) -> Answer:
    """POST ``body`` to ``url``. A network error is an ``Answer`` without status; raises ``DeliveryRefused``."""
    check_url(url)
    parts = urlsplit(url)
    host, https = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Answer(None, _describe(exc, timeout))
    for info in addresses:
        if denied(str(info[4][0]), networks):
            raise DeliveryRefused(f"its host resolves to an address the operator may not call ({DENY_SETTING})")
    connection: http.client.HTTPConnection
    if https:
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.connect()
        if denied(str(connection.sock.getpeername()[0]), networks):  # the name may resolve elsewhere now
            raise DeliveryRefused(f"its host resolves to an address the operator may not call ({DENY_SETTING})")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers={
            "User-Agent": USER_AGENT, "Connection": "close", "Content-Length": str(len(body)), **headers})
        response = connection.getresponse()
        response.read(BODY_LIMIT)
        return Answer(response.status, retry_after=response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, _describe(exc, timeout))
    finally:
        connection.close()


def _describe(exc: BaseException, timeout: float) -> str:
    """A network error in words that cannot carry the URL: its kind and, for an OS error, its errno text."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS: the server's certificate is not trusted"
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
