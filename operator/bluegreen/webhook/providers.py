"""What each git server sends: how it proves the shared secret, which event it is, which repository and ref
a push moved. Pure functions of headers and body (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bluegreen.core.errors import ReasonedError
from bluegreen.core.repourl import strip_userinfo

PROVIDERS: Final = ("github", "gitlab", "gitea", "generic")
MAX_URLS: Final = 16
MAX_URL_LENGTH: Final = 2048
MAX_REF_LENGTH: Final = 1024

Headers = Mapping[str, str]

# Which header carries the event name, and which event names are pushes, per provider.
_EVENT_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "github": ("x-github-event",),
    "gitlab": ("x-gitlab-event",),
    "gitea": ("x-forgejo-event", "x-gitea-event"),
    "generic": (),
}
_PUSH_EVENTS: Final[dict[str, frozenset[str]]] = {
    "github": frozenset({"push"}),
    "gitlab": frozenset({"Push Hook", "Tag Push Hook"}),
    "gitea": frozenset({"push"}),
    "generic": frozenset({"push"}),
}
# Where each provider's push payload names the repository: (object key, URL keys).
_URL_FIELDS: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "github": (("repository", ("clone_url", "ssh_url", "git_url", "html_url")),),
    "gitlab": (("project", ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")),
               ("repository", ("git_http_url", "git_ssh_url", "homepage", "url"))),
    "gitea": (("repository", ("clone_url", "ssh_url", "html_url")),),
}
_DELIVERY_HEADERS: Final = ("x-github-delivery", "x-gitlab-event-uuid", "x-forgejo-delivery", "x-gitea-delivery",
                            "x-request-id")
_CONTROL_CHARS = re.compile(r"[\x00-\x20\x7f]")


class PayloadError(ReasonedError, ValueError):
    """An authenticated push whose body is not what the provider sends (answered with 400)."""

    def __init__(self, message: str) -> None:
        super().__init__("InvalidPayload", message)


@dataclass(frozen=True)
class Push:
    """What a push tells the operator: which repository (under any of its URLs) and which ref moved."""

    repository_urls: frozenset[str]
    ref: str | None  # refs/heads/<branch> or refs/tags/<tag>; None: any ref of the repository


def _lower(headers: Headers) -> dict[str, str]:
    """Header names are case-insensitive: look them up lower-cased (the first value of a repeated header)."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        result.setdefault(name.lower(), value)
    return result


def _hmac_hex(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")


def _same(given: str, expected: bytes) -> bool:
    """Constant-time comparison of a header value with the expected bytes."""
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected)


def _prefixed_signature_ok(value: str | None, secret: bytes, body: bytes) -> bool:
    if value is None:
        return False
    scheme, _, digest = value.strip().partition("=")
    if scheme.strip().lower() != "sha256":
        return False
    return _same(digest.lower(), _hmac_hex(secret, body))


def authenticate(provider: str, headers: Headers, body: bytes, secret: bytes | str) -> bool:
    """Does this request carry proof of the shared ``secret`` the way ``provider`` sends it?

    HMAC signatures cover the raw body, so a body changed in transit fails. Every comparison is constant-time.
    An empty secret authenticates nothing.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        return False
    found = _lower(headers)
    if provider == "github":
        return _prefixed_signature_ok(found.get("x-hub-signature-256"), key, body)
    if provider == "generic":
        return _prefixed_signature_ok(found.get("x-signature-256"), key, body)
    if provider == "gitlab":
        token = found.get("x-gitlab-token")
        return token is not None and _same(token, key)
    if provider == "gitea":
        signature = found.get("x-forgejo-signature", found.get("x-gitea-signature"))
        return signature is not None and _same(signature.lower(), _hmac_hex(key, body))
    return False


def event_name(provider: str, headers: Headers) -> str | None:
    """The event the provider says this is (``push``, ``ping``, ``Push Hook``...); generic hooks are pushes."""
    if provider == "generic":
        return "push"
    found = _lower(headers)
    for name in _EVENT_HEADERS.get(provider, ()):
        if name in found:
            return found[name].strip()
    return None


def is_ping(provider: str, headers: Headers) -> bool:
    """GitHub's ``ping``, sent when a webhook is created: answered 200, triggers nothing."""
    return provider == "github" and event_name(provider, headers) == "ping"


def parse_push(provider: str, headers: Headers, body: bytes) -> Push | None:
    """The repository and ref of a push event; None for any other event (ping, pull request, issue...).

    Raises :class:`PayloadError` for a push whose body is not JSON or names no repository or no valid ref.
    Only URLs and the ref are read: commit ids in the payload are never used.
    """
    if provider not in PROVIDERS or event_name(provider, headers) not in _PUSH_EVENTS[provider]:
        return None
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    if provider == "generic":
        urls = _urls([payload.get("repository")])
    else:
        candidates: list[Any] = []
        for obj_key, url_keys in _URL_FIELDS[provider]:
            obj = payload.get(obj_key)
            if isinstance(obj, dict):
                candidates.extend(obj.get(k) for k in url_keys)
        urls = _urls(candidates)
    if not urls:
        raise PayloadError("the payload names no repository URL")
    ref = payload.get("ref")
    if ref is None and provider == "generic":
        return Push(urls, None)
    if not isinstance(ref, str) or not _valid_ref(ref):
        raise PayloadError("ref must be refs/heads/<branch> or refs/tags/<tag>")
    return Push(urls, ref)


def _urls(values: Iterable[Any]) -> frozenset[str]:
    urls = {value.strip() for value in values
            if isinstance(value, str) and value.strip() and len(value) <= MAX_URL_LENGTH}
    return frozenset(sorted(urls)[:MAX_URLS])


def _valid_ref(ref: str) -> bool:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return bool(ref[len(prefix):]) and len(ref) <= MAX_REF_LENGTH and not _CONTROL_CHARS.search(ref)
    return False


def redact(url: str) -> str:
    """A URL fit for a log line: without ``user:password@`` (a generic caller might send a URL with a token)."""
    return strip_userinfo(url)


def delivery_id(headers: Headers) -> str | None:
    """The provider's id of this delivery, for correlating log lines with the git server's delivery log."""
    found = _lower(headers)
    for name in _DELIVERY_HEADERS:
        if name in found:
            return found[name][:100]
    return None
