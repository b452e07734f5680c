"""Read one file at one git ref, through a local bare mirror per repository and credential set.

With ``bluegreen.git.compaction`` (mirror garbage collection), the only modules of the project that import pygit2.

- ``GitSource.fetch`` resolves a ``GitRef`` (branch, tag, semver range or commit) to a commit. It lists the
  remote's refs first (one ls-remote, on the connection the fetch then reuses) and fetches only when the
  mirror lacks the wanted object: just that ref with ``depth=1`` for branch, tag and semver refs while the
  mirror is new or already shallow, and every branch and tag with full history for commit refs (whose
  "reachable from a branch or tag" check needs the whole graph; a shallow mirror is deepened first).
  The local transport cannot fetch shallow, so local mirrors are always complete.
- With ``not_before`` (a ``time.monotonic()`` value) the remote is not contacted when this mirror was
  refreshed at or after that time: the refs listed then are used, and so is a failure seen then. Calls
  for one mirror are serialized, so concurrent callers wait and then reuse the refresh that just ran.
  ``CommitInfo.refreshed_at`` tells when the mirror last contacted the remote (start of that ls-remote).
- ``GitSource.read`` reads a file at a commit from the mirror without network access, refusing escaping
  paths, symlinks, and blobs over ``max_bytes`` (measured from the object header, before loading it).
- ``GitSource.signature`` returns a commit's ``gpgsig`` signature and signed payload (OpenPGP or SSH).

Mirrors. There is one bare mirror per normalized URL and ``Credentials.fingerprint()``: callers with the
same URL and the same Secret content share it; different credentials (or none) never do, so nobody reads
through a mirror what only someone else's credentials could fetch. A rotated Secret therefore starts a new
mirror; the old one is deleted once unused for a week (``stale_after_seconds``). libgit2 writes a pack per
fetch and never collects garbage, so ``GitSource`` compacts a mirror (``bluegreen.git.compaction``) once it
holds ``pack_limit`` packs: one pack of what the refs reach, no unreachable commits, no stale ``shallow``
entries.

Credentials (``Credentials.from_secret_data``), given per call so a rotated Secret applies on the next call:

- SSH: the private key from memory; the user comes from the URL (default ``git``). Host keys are always
  checked against the Secret's known_hosts, never trusted blindly: libgit2 reads them from
  ``<homedir>/.ssh/known_hosts``, so each SSH operation points the process-wide homedir at a private
  temporary directory holding that Secret's known_hosts (see "Process-wide settings").
- HTTPS: username/password through the credentials callback, offered at most once per operation (libgit2
  asks again after each 401; the second request fails the operation), and only to the URL's host; a bearer
  token as an ``Authorization: Bearer`` header (pygit2's ``custom_headers`` callback). Credentials from a
  Secret are never sent over plain ``http://``.
- caFile: the trusted CAs for that repository, instead of the system's. libgit2 keeps one OpenSSL trust
  store per process and can only add to it (a CA once loaded stays trusted for every repository), so
  operations with a caFile run in a short-lived child process (``python -m bluegreen.git.source``) whose
  store holds only that bundle; the operator's own store stays the system's.

Process-wide settings. libgit2's homedir is one per process. ``_HOMEDIR`` is the one lock guarding it:
SSH operations that need the same known_hosts run together, an operation needing other known_hosts waits
until they are done (and then newcomers wait for it). HTTPS, git:// and local operations do not depend on
it and never wait. Connect and read timeouts (``timeout_seconds``) are process-wide too; the most recently
constructed ``GitSource`` sets them.

Secrets never reach logs, messages, ``repr``, the mirror's config or files left on disk: keys stay in
memory, known_hosts and CA bundles go to 0600 files in 0700 temporary directories removed after the
operation, and libgit2's error texts are scrubbed of every secret value before they become messages.

Every failure is a ``SourceError`` whose ``reason`` is a CamelCase word for a status condition and whose
``message`` tells the user what to fix (see docs/git-auth.md for the list).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pygit2
from pygit2.enums import CredentialType, FetchPrune, FileMode

from bluegreen.core.semver import RangeError, Version, highest_matching, parse_range
from bluegreen.core.spec import COMMIT_RE, GitRef, ref_name_problem
from bluegreen.git.compaction import (
    PACK_LIMIT,
    CompactionResult,
    compact,
    mirror_dir,
    needs_compaction,
    staging_dir,
    stale_mirrors,
)
from bluegreen.git.heap import release_free_memory

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CommitInfo",
    "Credentials",
    "GitRef",
    "GitSource",
    "Reason",
    "Snapshot",
    "SourceError",
]

Reason = Literal[
    "RepositoryUnreachable",
    "RepositoryNotFound",
    "RefNotFound",
    "InvalidRef",
    "PathNotFound",
    "InvalidPath",
    "NotAFile",
    "ManifestTooLarge",
    "InvalidURL",
    "FetchFailed",
    "InvalidSecret",
    "SecretNotFound",
    "AuthenticationFailed",
    "KnownHostsMissing",
    "HostKeyMismatch",
    "HostKeyUnknown",
    "CertificateInvalid",
]
"""Why reading from git failed. ``SecretNotFound`` is raised by callers that look the Secret up."""

SUMMARY_MAX_CHARS: Final = 200
DEFAULT_MAX_BYTES: Final = 1_000_000
FETCH_REFSPECS: Final = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
DEFAULT_SSH_USER: Final = "git"
_UNSHALLOW: Final = 2_147_483_647  # libgit2's GIT_FETCH_DEPTH_UNSHALLOW
_NETWORK_SCHEMES: Final = frozenset({"https", "http", "ssh", "git"})
_USERINFO_RE: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SCP_LIKE_RE: Final = re.compile(r"^[\w.-]+@[\w.-]+:")
_SSH_KEY_TYPES: Final = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
})
"""Host key types libssh2 reads from known_hosts; other lines (and @markers) would make it reject the file."""
_SECRET_TEXT_KEYS: Final = {
    "username": "username", "password": "password", "bearerToken": "bearer_token", "passphrase": "ssh_passphrase",
}
_SECRET_BYTES_KEYS: Final = {"identity": "ssh_identity", "known_hosts": "known_hosts", "caFile": "ca_bundle"}
_FINGERPRINT_SALT: Final = b"bluegreen-operator/credentials/v1"
_FINGERPRINT_ITERATIONS: Final = 20_000
_UNREACHABLE_MARKERS: Final = (
    "failed to resolve path",
    "could not find repository",
    "failed to connect",
    "failed to resolve address",
    "connection refused",
    "connection reset",
    "connection closed",
    "timed out",
    "resource temporarily unavailable",
    "no route to host",
    "network is unreachable",
)
_NOT_FOUND_MARKERS: Final = (
    "unexpected http status code: 404",
    "does not appear to be a git repository",
    "no such repository",
    "repository not found",
    "could not be found",
    "repository does not exist",
)
_AUTH_MARKERS: Final = (
    "authentication",
    "unexpected http status code: 401",
    "unexpected http status code: 403",
    "permission denied",
    "failed to authenticate",
    "private key",
)


@dataclass(frozen=True)
class CommitInfo:
    """The commit a ref resolved to."""

    sha: str
    """Full 40-hex object id."""
    summary: str
    """First line of the message, at most 200 characters."""
    author: str
    """``Name <email>``."""
    time: datetime
    """Commit (committer) time, tz-aware UTC."""
    refreshed_at: float = field(default=0.0, compare=False)
    """``time.monotonic()`` when the mirror last contacted the remote (start of its ls-remote); 0.0 when
    this process has not contacted it yet. Not part of the commit's identity (ignored by ``==``)."""

    @property
    def short_sha(self) -> str:
        """The first 7 hex digits of ``sha``."""
        return self.sha[:7]


@dataclass(frozen=True)
class Snapshot:
    """One file's bytes at one commit."""

    commit: CommitInfo
    path: str
    """Normalized, relative to the repository root (``a/b.yaml``)."""
    content: bytes

    @property
    def refreshed_at(self) -> float:
        """``commit.refreshed_at``: when the mirror last contacted the remote."""
        return self.commit.refreshed_at


class SourceError(Exception):
    """Reading from git failed; ``reason`` is CamelCase for conditions, ``message`` is for people."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.reason: Reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- credentials ------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Credentials:
    """Git credentials from a Kubernetes Secret; ``repr`` and ``fingerprint`` never reveal a value."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    ssh_identity: bytes | None = None
    """Private key (OpenSSH or PEM format)."""
    ssh_passphrase: str | None = None
    known_hosts: bytes | None = None
    """Trusted SSH host keys, ``ssh-keyscan`` format."""
    ca_bundle: bytes | None = None
    """PEM certificates of the CAs trusted for HTTPS instead of the system's."""

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> Credentials:
        """Credentials from a Secret's (base64-decoded) data.

        Keys: ``username``, ``password``, ``bearerToken``, ``identity``, ``passphrase``, ``known_hosts``,
        ``caFile``; others (e.g. ``identity.pub``) are ignored. Empty values count as absent and trailing
        newlines of one-line values are dropped. Raises ``SourceError("InvalidSecret")`` naming the key
        at fault, never its value.
        """
        values: dict[str, Any] = {}
        for key, attr in _SECRET_TEXT_KEYS.items():
            values[attr] = _secret_text(key, data.get(key))
        for key, attr in _SECRET_BYTES_KEYS.items():
            values[attr] = _secret_bytes(key, data.get(key))
        credentials = cls(**values)
        credentials._validate()
        return credentials

    def fingerprint(self) -> str:
        """A stable hex digest of every field: equal for equal credentials, revealing no value."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        # Salted and iterated, so that a leaked fingerprint does not make a weak password quick to guess.
        return hashlib.pbkdf2_hmac("sha256", self._canonical(), _FINGERPRINT_SALT, _FINGERPRINT_ITERATIONS).hex()

    def __repr__(self) -> str:
        present = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return f"Credentials({', '.join(present) or 'none'} set)"

    def _secret_strings(self) -> tuple[str, ...]:
        """Values that must never appear in a message (longest first), including encoded forms."""
        values = [v for v in (self.password, self.bearer_token, self.ssh_passphrase) if v]
        if self.username and self.password:
            values.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        if self.ssh_identity:
            values += [line for line in self.ssh_identity.decode("utf-8", "replace").splitlines() if len(line) >= 16]
        encoded = [quote(v, safe="") for v in values]
        return tuple(sorted({v for v in values + encoded if v}, key=len, reverse=True))

    def _canonical(self) -> bytes:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            raw = value.encode("utf-8") if isinstance(value, str) else value
            parts.append(f"{f.name}=-".encode() if raw is None else f"{f.name}={len(raw)}:".encode() + raw)
        return b"\n".join(parts)

    def _validate(self) -> None:
        if self.password is not None and self.username is None:
            raise _invalid_secret("password", "is set but username is not: add username too (for a token, "
                                  "the user name your git host expects with it)")
        if self.bearer_token is not None and (self.username is not None or self.password is not None):
            raise _invalid_secret("bearerToken", "cannot be combined with username/password: keep one of them")
        if self.bearer_token is not None and not re.fullmatch(r"[\x21-\x7e]+", self.bearer_token):
            raise _invalid_secret("bearerToken", "must be printable ASCII without spaces")
        if self.ssh_passphrase is not None and self.ssh_identity is None:
            raise _invalid_secret("passphrase", "is set but identity (the private key) is not")
        if self.ssh_identity is not None and not _looks_like_private_key(self.ssh_identity):
            raise _invalid_secret("identity", "is not a private key in OpenSSH or PEM format "
                                  "('-----BEGIN ... PRIVATE KEY-----')")
        if self.known_hosts is not None and not _known_host_entries(self.known_hosts):
            raise _invalid_secret("known_hosts", "has no usable line: expected 'host key-type base64-key' "
                                  f"lines as printed by ssh-keyscan, key types {', '.join(sorted(_SSH_KEY_TYPES))}")
        if self.ca_bundle is not None and b"-----BEGIN CERTIFICATE-----" not in self.ca_bundle:
            raise _invalid_secret("caFile", "holds no PEM certificate ('-----BEGIN CERTIFICATE-----')")


def _invalid_secret(key: str, problem: str) -> SourceError:
    return SourceError("InvalidSecret", f"The Secret's key {key!r} {problem}.")


def _secret_bytes(key: str, raw: object) -> bytes | None:
    if raw is None:
        return None
    if not isinstance(raw, bytes | bytearray):
        raise _invalid_secret(key, "must be given as bytes (the Secret's data, base64-decoded)")
    return bytes(raw) if raw.strip() else None


def _secret_text(key: str, raw: object) -> str | None:
    data = _secret_bytes(key, raw)
    if data is None:
        return None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise _invalid_secret(key, "is not UTF-8 text") from None
    if any(c in text for c in "\r\n\x00"):
        raise _invalid_secret(key, "must be a single line")
    return text or None


def _looks_like_private_key(data: bytes) -> bool:
    return data.isascii() and b"-----BEGIN " in data and b"PRIVATE KEY-----" in data


def _known_host_entries(data: bytes) -> list[tuple[str, str, str]]:
    """(host patterns, key type, base64 key) of each known_hosts line libssh2 can use."""
    entries = []
    for raw in data.decode("utf-8", "replace").splitlines():
        parts = raw.split()
        if len(parts) < 3 or parts[0].startswith(("#", "@")) or parts[1] not in _SSH_KEY_TYPES:
            continue
        try:
            base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        entries.append((parts[0], parts[1], parts[2]))
    return entries


def _clean_known_hosts(data: bytes) -> bytes:
    """Only the lines libssh2 can parse: one bad line would make it refuse the whole file."""
    return "".join(f"{hosts} {kind} {key}\n" for hosts, kind, key in _known_host_entries(data)).encode()


def _host_listed(data: bytes, host: str, port: int | None) -> bool:
    """Whether known_hosts has any key for ``host`` (``[host]:port`` or plain, hashed or not)."""
    names = [host.lower()] if port in (None, 22) else [f"[{host.lower()}]:{port}", host.lower()]
    for hosts, _kind, _key in _known_host_entries(data):
        for pattern in hosts.split(","):
            if _host_pattern_matches(pattern, names):
                return True
    return False


def _host_pattern_matches(pattern: str, names: list[str]) -> bool:
    if pattern.startswith("|1|"):
        try:
            salt_b64, digest_b64 = pattern[3:].split("|", 1)
            salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        except (ValueError, binascii.Error):
            return False
        return any(hmac.compare_digest(hmac.new(salt, n.encode(), hashlib.sha1).digest(), digest) for n in names)
    if pattern.startswith("!"):
        return False
    wildcards = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")  # OpenSSH: only * and ?
    return any(re.fullmatch(wildcards, n) for n in names)


# --- URLs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remote:
    """A validated repository URL in the forms needed to fetch, to show and to key the mirror."""

    fetch_url: str
    """What libgit2 gets (may contain credentials)."""
    display: str
    """Safe to show: userinfo removed."""
    key: str
    """Normalized, without userinfo: one mirror per key (and credential set)."""
    secrets: tuple[str, ...]
    """Strings to remove from any error text."""
    scheme: str
    """``https``, ``http``, ``ssh``, ``git`` or ``file``."""
    host: str = ""
    port: int | None = None
    user: str | None = None

    @property
    def shallow_ok(self) -> bool:
        """Whether the transport can fetch shallow (libgit2's local transport cannot)."""
        return self.scheme != "file"

    def scrub(self, text: str, credentials: Credentials | None = None) -> str:
        """``text`` without this URL's credentials, the Secret's values and any ``scheme://user@``."""
        text = text.replace(self.fetch_url, self.display)
        for secret in self.secrets + (credentials._secret_strings() if credentials else ()):
            text = text.replace(secret, "***")
        return _USERINFO_RE.sub(r"\1", text)


def _parse_url(url: str) -> _Remote:
    """Validate ``url`` and derive its fetch, display and key forms."""
    if not isinstance(url, str) or not url or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise SourceError("InvalidURL", f"Repository URL {url!r} is empty or contains control characters.")
    if url.startswith("/"):
        return _local_remote(url)
    hint = " For SSH write ssh://user@host/path instead of user@host:path." if _SCP_LIKE_RE.match(url) else ""
    shown = _USERINFO_RE.sub(r"\1", url)
    invalid = SourceError(
        "InvalidURL",
        f"Repository URL {shown!r} is not supported: use https://, http://, "
        f"ssh://, git://, file:// or an absolute local path.{hint}",
    )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise invalid from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.query:
            raise invalid
        return _local_remote(unquote(parts.path), shown=url)
    if scheme not in _NETWORK_SCHEMES or not parts.hostname:
        raise invalid
    hostport = parts.netloc.rpartition("@")[2]
    display = urlunsplit((scheme, hostport, parts.path, parts.query, ""))
    secrets: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        secrets.append(userinfo)
        if parts.password:
            secrets += [parts.password, unquote(parts.password)]
        if scheme in ("https", "http") and parts.username:  # a token is often sent as the user name
            secrets += [parts.username, unquote(parts.username)]
    path = parts.path.rstrip("/")
    key = f"{scheme}://{hostport.lower()}{path}" + (f"?{parts.query}" if parts.query else "")
    fetch_url = scheme + url[len(parts.scheme) :]
    ordered = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    user = unquote(parts.username) if parts.username else None
    return _Remote(fetch_url, display, key, ordered, scheme, parts.hostname, port, user)


def _local_remote(path: str, *, shown: str | None = None) -> _Remote:
    """A repository on the local file system (``/abs/path`` or ``file:///abs/path``)."""
    normalized = os.path.normpath(path)
    url = "file://" + quote(normalized)
    # libgit2 treats a plain path that does not exist as an unknown protocol; a file:// URL gives a
    # clear "failed to resolve path" instead, so always hand it the URL form.
    return _Remote(fetch_url=url, display=shown or normalized, key=url, secrets=(), scheme="file")


def _check_transport(remote: _Remote, credentials: Credentials | None) -> None:
    """Refuse, before any network access, what must not be attempted with these credentials."""
    if remote.scheme == "ssh" and (credentials is None or credentials.known_hosts is None):
        raise SourceError(
            "KnownHostsMissing",
            f"Cannot verify the SSH host key of {remote.display}: SSH host keys are always checked, and the "
            "git Secret has no known_hosts. Add the server's host keys to the Secret under known_hosts "
            f"(e.g. the output of `ssh-keyscan{_keyscan_port(remote)} {remote.host}`, checked against "
            "fingerprints your git host publishes).",
        )
    if remote.scheme == "http" and credentials is not None and (
        credentials.username or credentials.password or credentials.bearer_token
    ):
        raise SourceError(
            "InvalidURL",
            f"Refusing to send the git Secret's credentials over plain http to {remote.display}: "
            "use an https:// URL.",
        )


def _keyscan_port(remote: _Remote) -> str:
    return f" -p {remote.port}" if remote.port not in (None, 22) else ""


def _check_ref(ref: GitRef) -> None:
    if ref.kind == "commit":
        if not COMMIT_RE.fullmatch(ref.name.lower()):
            raise SourceError(
                "InvalidRef", f"Commit {ref.name!r} is not a commit id: give 7 to 40 hex digits."
            )
    elif ref.kind in ("branch", "tag"):
        problem = ref_name_problem(ref.name)
        if problem:
            raise SourceError("InvalidRef", f"The {ref.kind} name {ref.name!r} is invalid: it {problem}.")
    elif ref.kind == "semver":
        try:
            parse_range(ref.name)
        except RangeError as exc:
            raise SourceError("InvalidRef", f"The semver range {ref.name!r} is invalid: {exc}.") from None
    else:
        raise SourceError("InvalidRef", f"Unknown ref kind {ref.kind!r}: use branch, tag, semver or commit.")


# --- per-mirror state -----------------------------------------------------------------------------------


@dataclass
class _MirrorState:
    """What this process knows about one mirror; fields other than ``counts`` change under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    refreshed_at: float | None = None
    advertised: dict[str, str] | None = None
    """The remote's branches and tags (and peeled ``^{}`` entries) as of ``refreshed_at``."""
    failure: SourceError | None = None
    failed_at: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"ls_remote": 0, "fetch": 0, "compact": 0})
    """Network operations attempted and compactions run; read and written under ``_STATES_GUARD``."""
    handed_out: dict[str, float] = field(default_factory=dict)
    """Commits ``fetch`` returned, oldest first, with when: the ``HANDED_OUT_MAX`` most recent are kept through
    a compaction for ``GitSource.retain_seconds`` even if their branch moved on, so that a caller's following
    ``read`` or ``signature`` still finds them."""
    compact_not_before: float = 0.0
    """After a failed compaction, do not retry before this ``time.monotonic()``."""


_STATES: dict[str, _MirrorState] = {}
_STATES_GUARD = threading.Lock()


def _state_for(mirror: Path) -> _MirrorState:
    key = os.fspath(mirror.absolute())
    with _STATES_GUARD:
        return _STATES.setdefault(key, _MirrorState())


def _touch(mirror: Path) -> None:
    """Mark the mirror as used now (its directory mtime): see ``stale_mirrors``."""
    with contextlib.suppress(OSError):
        os.utime(mirror)


def _hand_out(state: _MirrorState, sha: str) -> None:
    """Note that ``fetch`` returned ``sha`` (the most recent ``HANDED_OUT_MAX`` are remembered)."""
    state.handed_out.pop(sha, None)
    state.handed_out[sha] = time.monotonic()
    while len(state.handed_out) > HANDED_OUT_MAX:
        del state.handed_out[next(iter(state.handed_out))]


@dataclass
class _SyncResult:
    """The outcome of contacting the remote once: what it advertised, what was attempted, what failed."""

    advertised: dict[str, str] | None = None
    ls_remote: int = 0
    fetch: int = 0
    error: SourceError | None = None


def _record(state: _MirrorState, result: _SyncResult, started: float) -> None:
    with _STATES_GUARD:
        state.counts["ls_remote"] += result.ls_remote
        state.counts["fetch"] += result.fetch
    if result.advertised is not None:
        state.advertised, state.refreshed_at = result.advertised, started
        state.failure = state.failed_at = None
    elif result.error is not None:
        state.failure, state.failed_at = SourceError(result.error.reason, result.error.message), started


def _reuse(
    state: _MirrorState, repo: pygit2.Repository, remote: _Remote, ref: GitRef, not_before: float
) -> dict[str, str] | None:
    """The refs of a refresh made since ``not_before`` if the mirror can answer from them alone.

    A failed attempt made since ``not_before`` is raised again instead of contacting the remote.
    """
    if state.failure is not None and state.failed_at is not None and state.failed_at >= not_before:
        raise SourceError(state.failure.reason, state.failure.message)
    if state.advertised is None or state.refreshed_at is None or state.refreshed_at < not_before:
        return None
    if _plan(repo, remote, ref, state.advertised) is not None:
        return None  # the wanted objects were never fetched: contact the remote
    return state.advertised


# --- process-wide settings ------------------------------------------------------------------------------


class _SettingGate:
    """One process-wide setting shared by operations that need the same value; others wait their turn.

    The first holder of a value runs ``setup`` (which returns its cleanup); the last one to leave runs the
    cleanup. While someone waits for another value, newcomers wait for the current holders to drain.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._key: str | None = None
        self._holders = 0
        self._waiting = 0
        self._drains = 0
        self._cleanup: Callable[[], None] | None = None

    @contextlib.contextmanager
    def hold(self, key: str, setup: Callable[[], Callable[[], None]]) -> Iterator[None]:
        """Run the body while the setting has the value named ``key``."""
        with self._cond:
            self._wait_turn(key)
            if self._holders == 0:
                self._cleanup = setup()
                self._key = key
            self._holders += 1
        try:
            yield
        finally:
            with self._cond:
                self._holders -= 1
                if self._holders == 0:
                    cleanup, self._cleanup, self._key = self._cleanup, None, None
                    self._drains += 1
                    self._cond.notify_all()
                    if cleanup is not None:
                        cleanup()

    def _wait_turn(self, key: str) -> None:
        self._waiting += 1
        try:
            if self._waiting > 1 and self._holders:  # others wait already: let the current group drain first
                drains = self._drains
                while self._drains == drains:
                    self._cond.wait()
            while self._holders and self._key != key:
                self._cond.wait()
        finally:
            self._waiting -= 1


_HOMEDIR = _SettingGate()
"""Guards ``pygit2.settings.homedir``, where libgit2 finds ``.ssh/known_hosts``."""


@contextlib.contextmanager
def _private_dir(prefix: str) -> Iterator[Path]:
    """A fresh 0700 temporary directory, removed with everything in it afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by the owner only (0600) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _ssh_home(known_hosts: bytes, remote: _Remote) -> Callable[[], None]:
    """Point libgit2's homedir at a new private directory holding ``known_hosts``; return its cleanup."""
    home = Path(tempfile.mkdtemp(prefix="bluegreen-ssh-"))
    try:
        (home / ".ssh").mkdir(mode=0o700)
        _write_private(home / ".ssh" / "known_hosts", known_hosts)
        pygit2.settings.homedir = str(home)
    except (OSError, pygit2.GitError) as exc:
        shutil.rmtree(home, ignore_errors=True)
        raise SourceError("FetchFailed", f"Cannot prepare known_hosts for {remote.display}: {exc}.") from None
    return lambda: shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _transport_settings(remote: _Remote, credentials: Credentials | None) -> Iterator[None]:
    """Hold the process-wide settings this operation depends on (the SSH homedir) while it runs."""
    if remote.scheme != "ssh" or credentials is None or credentials.known_hosts is None:
        yield
        return
    known_hosts = _clean_known_hosts(credentials.known_hosts)
    with _HOMEDIR.hold(hashlib.sha256(known_hosts).hexdigest(), lambda: _ssh_home(known_hosts, remote)):
        yield


# --- talking to the remote --------------------------------------------------------------------------------


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials (each kind offered once per operation), certificate verdicts and the bearer header."""

    def __init__(self, remote: _Remote, credentials: Credentials | None) -> None:
        super().__init__()
        self.target = remote
        self.creds = credentials
        self.offered: set[str] = set()
        self.rejected_certificate = False

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        """Answer libgit2's request for credentials; a second request of a kind means they were refused."""
        host = (urlsplit(url).hostname or "").lower()
        if self.target.host and host and host != self.target.host.lower():
            raise self._auth_failed(f"the server redirected to {host}; credentials are only sent to "
                                    f"{self.target.host}")
        user = username_from_url or self.target.user or DEFAULT_SSH_USER
        if allowed_types & (CredentialType.SSH_KEY | CredentialType.SSH_MEMORY):
            return self._ssh_key(user)
        if allowed_types & CredentialType.USERNAME:
            return pygit2.Username(user)
        if allowed_types & CredentialType.USERPASS_PLAINTEXT:
            return self._userpass()
        raise self._auth_failed(f"the server asks for an authentication method this operator does not "
                                f"support ({allowed_types!r})")

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        """Accept exactly what libgit2 verified (TLS chain and name, or SSH host key in known_hosts)."""
        if not valid:
            self.rejected_certificate = True
        return bool(valid)

    def custom_headers(self) -> list[str] | None:
        """``Authorization: Bearer`` for HTTPS when the Secret holds a bearer token."""
        if self.creds is not None and self.creds.bearer_token and self.target.scheme == "https":
            return [f"Authorization: Bearer {self.creds.bearer_token}"]
        return None

    def _ssh_key(self, user: str) -> pygit2.Keypair:
        if self.creds is None or self.creds.ssh_identity is None:
            raise self._auth_failed("the SSH server asks for a key, and the git Secret has no identity "
                                    "(private key)")
        if "ssh" in self.offered:
            raise self._auth_failed(f"the SSH server refused the Secret's key for user {user!r}: check that "
                                    "its public key is registered (e.g. as a deploy key) and the user name "
                                    "in the URL")
        self.offered.add("ssh")
        identity = self.creds.ssh_identity.decode("ascii")
        return pygit2.KeypairFromMemory(user, None, identity, self.creds.ssh_passphrase or "")

    def _userpass(self) -> pygit2.UserPass:
        creds = self.creds
        if creds is None or (creds.username is None and creds.bearer_token is None):
            raise self._auth_failed("the server requires authentication: add username and password, or "
                                    "bearerToken, to the git Secret")
        if creds.username is None:
            raise self._auth_failed("the server refused the bearer token from the git Secret")
        if "userpass" in self.offered:
            raise self._auth_failed(f"the server refused user {creds.username!r} with the password from "
                                    "the git Secret")
        self.offered.add("userpass")
        return pygit2.UserPass(creds.username, creds.password or "")

    def _auth_failed(self, problem: str) -> SourceError:
        return SourceError("AuthenticationFailed", f"Authentication to {self.target.display} failed: {problem}.")


RETAIN_SECONDS: Final = 60.0
"""How long a commit ``fetch`` returned survives compaction after its branch moved on (the default)."""
STALE_AFTER_SECONDS: Final = 7 * 24 * 3600.0
"""A mirror not fetched through for this long (a deleted release, a rotated Secret) is deleted."""
SWEEP_EVERY_SECONDS: Final = 3600.0
HANDED_OUT_MAX: Final = 64
"""At most this many recently returned commits per mirror are kept through compaction beyond the refs."""
COMPACT_RETRY_SECONDS: Final = 600.0
"""After a failed compaction, fetches go on without one for this long."""
COLLECT_EVERY_SECONDS = 60.0
_last_collect = [time.monotonic()]


def _collect_cycles() -> None:
    """Run a full garbage collection at most once a minute, after a remote contact.

    The remote and its callbacks end up in reference cycles that hold libgit2 memory Python's collector
    thresholds do not notice, so without this the operator grows by ~0.4 KiB per remote contact, forever.
    A full collection takes tens of milliseconds in a busy operator, too much for every webhook-triggered
    fetch; once a minute keeps memory bounded at a negligible cost. The freed pages then go back to the
    operating system (``bluegreen.git.heap``), so the process's RSS tracks what is alive.
    """
    now = time.monotonic()
    if now - _last_collect[0] >= COLLECT_EVERY_SECONDS:
        _last_collect[0] = now
        gc.collect()
        release_free_memory()


def _sync_mirror(
    repo: pygit2.Repository, remote: _Remote, ref: GitRef, credentials: Credentials | None
) -> _SyncResult:
    """List the remote's refs and fetch what the mirror lacks for ``ref``, on one connection."""
    result = _SyncResult()
    callbacks = _Callbacks(remote, credentials)
    link = None
    try:
        link = repo.remotes.create_anonymous(remote.fetch_url)
        result.ls_remote += 1
        with _network_errors(remote, credentials, callbacks):
            link.connect(callbacks=callbacks)
            heads = link.list_heads(connect=False)
        result.advertised = {
            h.name: str(h.oid) for h in heads if h.name and h.name.startswith(("refs/heads/", "refs/tags/"))
        }
        plan = _plan(repo, remote, ref, result.advertised)
        if plan is not None:
            result.fetch += 1
            with _network_errors(remote, credentials, callbacks):
                prune = FetchPrune.PRUNE if plan.prune else FetchPrune.NO_PRUNE
                link.fetch(list(plan.refspecs), callbacks=callbacks, prune=prune, depth=plan.depth)
            _note_fetched(repo, plan, result.advertised)
    except SourceError as exc:
        result.error = SourceError(exc.reason, exc.message)  # no traceback keeping frames (and link) alive
    finally:
        del link  # frees the remote, which closes the connection now rather than when garbage is collected
    return result


@dataclass(frozen=True)
class _FetchPlan:
    refspecs: tuple[str, ...]
    depth: int
    """0: complete history; 1: shallow; ``_UNSHALLOW``: complete a shallow mirror."""
    prune: bool
    refname: str | None = None
    """The one ref fetched, for branch, tag and semver refs."""


def _plan(repo: pygit2.Repository, remote: _Remote, ref: GitRef, advertised: Mapping[str, str]) -> _FetchPlan | None:
    """What to fetch so that ``ref`` resolves in the mirror as advertised; None when nothing is missing."""
    if ref.kind == "commit":
        if not repo.is_shallow and _local_tips(repo) == _tips(advertised):
            return None
        depth = _UNSHALLOW if repo.is_shallow else 0
        return _FetchPlan(FETCH_REFSPECS, depth, prune=True)
    refname, oid = _select(advertised, ref, remote)
    if oid in repo:
        return None
    shallow = remote.shallow_ok and (repo.is_shallow or not _local_tips(repo))
    return _FetchPlan((f"+{refname}:{refname}",), 1 if shallow else 0, prune=False, refname=refname)


def _note_fetched(repo: pygit2.Repository, plan: _FetchPlan, advertised: dict[str, str]) -> None:
    """Take the fetched ref's target as advertised (it may have moved since the listing)."""
    if plan.refname is None:
        return
    target = _local_tips(repo).get(plan.refname)  # not references.get(): it leaks its argument in pygit2 1.21
    if target is not None and target != advertised.get(plan.refname):
        advertised[plan.refname] = target
        advertised.pop(plan.refname + "^{}", None)


def _tips(advertised: Mapping[str, str]) -> dict[str, str]:
    return {name: oid for name, oid in advertised.items() if not name.endswith("^{}")}


def _local_tips(repo: pygit2.Repository) -> dict[str, str]:
    tips = {}
    for reference in repo.references.iterator():
        if reference.name.startswith(("refs/heads/", "refs/tags/")) and isinstance(reference.target, pygit2.Oid):
            tips[reference.name] = str(reference.target)
    return tips


@contextlib.contextmanager
def _network_errors(remote: _Remote, credentials: Credentials | None, callbacks: _Callbacks) -> Iterator[None]:
    """Turn libgit2's failures into ``SourceError``s that name the cause (scrubbed of secrets)."""
    try:
        yield
    except SourceError:
        raise
    except (pygit2.GitError, OSError, ValueError, TypeError) as exc:
        raise _network_error(remote, credentials, callbacks, exc) from None


def _network_error(
    remote: _Remote, credentials: Credentials | None, callbacks: _Callbacks, exc: Exception
) -> SourceError:
    """The reason for a failed network operation, from the callbacks' observations and libgit2's text."""
    detail = remote.scrub(str(exc).strip() or type(exc).__name__, credentials).rstrip(".")
    lowered = detail.lower()
    if callbacks.rejected_certificate:
        return _certificate_error(remote, credentials)
    networked = remote.scheme != "file"
    if networked and any(marker in lowered for marker in _NOT_FOUND_MARKERS):
        return SourceError(
            "RepositoryNotFound",
            f"The server says the repository {remote.display} does not exist ({detail}). Check the URL; "
            "for a private repository also check that the credentials may read it.",
        )
    if any(marker in lowered for marker in _UNREACHABLE_MARKERS):
        return SourceError(
            "RepositoryUnreachable",
            f"Cannot reach the repository {remote.display}: {detail}. "
            "Check the URL and that the server is up and reachable from the operator.",
        )
    if networked and any(marker in lowered for marker in _AUTH_MARKERS):
        hint = " (wrong passphrase, or a key format libssh2 cannot read)" if "private key" in lowered else ""
        return SourceError(
            "AuthenticationFailed",
            f"Authentication to {remote.display} failed: {detail}{hint}. Check the git Secret's credentials.",
        )
    return SourceError("FetchFailed", f"Fetching {remote.display} failed: {detail}. Check the URL and the git server.")


def _certificate_error(remote: _Remote, credentials: Credentials | None) -> SourceError:
    if remote.scheme == "ssh":
        where = f"{remote.host}:{remote.port or 22}"
        known = credentials.known_hosts if credentials is not None and credentials.known_hosts else b""
        if _host_listed(known, remote.host, remote.port):
            return SourceError(
                "HostKeyMismatch",
                f"The SSH host key of {where} does not match the known_hosts in the git Secret. If the "
                "server's key was changed, update known_hosts; if not, the connection may be intercepted.",
            )
        entry = f"[{remote.host}]:{remote.port}" if remote.port not in (None, 22) else remote.host
        return SourceError(
            "HostKeyUnknown",
            f"The known_hosts in the git Secret has no key for {where}: add the server's host key (lines "
            f"starting with {entry!r}, e.g. from `ssh-keyscan{_keyscan_port(remote)} {remote.host}`).",
        )
    trusted = "the caFile in the git Secret" if credentials is not None and credentials.ca_bundle else (
        "the system's trusted CAs"
    )
    return SourceError(
        "CertificateInvalid",
        f"The TLS certificate of {remote.host} ({remote.display}) is not trusted by {trusted}, or does not "
        "name that host. For a private CA, put its certificate in the git Secret under caFile.",
    )


# --- operations with a private CA run in a child process ------------------------------------------------

_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])


def _sync_isolated(
    mirror: Path, remote: _Remote, ref: GitRef, credentials: Credentials, timeout_seconds: float
) -> _SyncResult:
    """``_sync_mirror`` in a child process whose TLS trust store holds only ``credentials.ca_bundle``."""
    assert credentials.ca_bundle is not None
    request = {
        "mirror": str(mirror),
        "url": remote.fetch_url,
        "ref": [ref.kind, ref.name],
        "timeout_ms": _millis(timeout_seconds),
        "credentials": _credentials_to_json(credentials),
    }
    with _private_dir("bluegreen-ca-") as tmp:
        bundle, certs = tmp / "ca.pem", tmp / "certs"
        _write_private(bundle, credentials.ca_bundle)
        certs.mkdir(mode=0o700)
        env = {
            **os.environ,
            "SSL_CERT_FILE": str(bundle),  # read by pygit2 at import and by OpenSSL's default paths
            "SSL_CERT_DIR": str(certs),
            "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p),
        }
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bluegreen.git.source"], input=json.dumps(request).encode(),
                capture_output=True, env=env, timeout=3 * timeout_seconds + 10, check=False,
            )
        except subprocess.TimeoutExpired:
            return _SyncResult(ls_remote=1, error=SourceError(
                "RepositoryUnreachable", f"Cannot reach the repository {remote.display}: timed out."))
    return _decode_result(done, remote, credentials)


def _decode_result(done: subprocess.CompletedProcess[bytes], remote: _Remote, creds: Credentials) -> _SyncResult:
    try:
        answer = json.loads(done.stdout)
        error = answer.get("error")
        reason = error[0] if error else None
        if reason is not None and reason not in get_args(Reason):
            raise ValueError(reason)
        return _SyncResult(
            advertised=answer.get("advertised"),
            ls_remote=int(answer.get("ls_remote", 0)),
            fetch=int(answer.get("fetch", 0)),
            error=SourceError(cast(Reason, reason), str(error[1])) if error else None,
        )
    except (ValueError, TypeError, IndexError, AttributeError):
        tail = remote.scrub(done.stderr.decode("utf-8", "replace").strip()[-500:], creds)
        return _SyncResult(ls_remote=1, error=SourceError(
            "FetchFailed", f"Fetching {remote.display} failed: the helper process ended with "
            f"{done.returncode}: {tail or 'no output'}."))


def _worker_main() -> int:
    """Child side of ``_sync_isolated``: read the request on stdin, answer JSON on stdout."""
    result = _SyncResult()
    try:
        request = json.loads(sys.stdin.buffer.read())
        pygit2.settings.server_connect_timeout = pygit2.settings.server_timeout = int(request["timeout_ms"])
        remote = _parse_url(request["url"])
        credentials = _credentials_from_json(request["credentials"])
        result = _sync_mirror(pygit2.Repository(request["mirror"]), remote, GitRef(*request["ref"]), credentials)
    except SourceError as exc:
        result.error = exc
    except Exception as exc:  # report, never crash with a traceback that could quote a value
        result.error = SourceError("FetchFailed", f"The fetch helper failed: {type(exc).__name__}.")
    error = [result.error.reason, result.error.message] if result.error else None
    sys.stdout.write(json.dumps({
        "advertised": result.advertised, "ls_remote": result.ls_remote, "fetch": result.fetch, "error": error,
    }))
    return 0


def _credentials_to_json(credentials: Credentials) -> dict[str, str]:
    """The set fields, base64-encoded (for the helper's stdin; never for a file or the command line)."""
    encoded = {}
    for f in fields(credentials):
        value = getattr(credentials, f.name)
        if value is not None:
            encoded[f.name] = base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
    return encoded


def _credentials_from_json(encoded: Mapping[str, str]) -> Credentials:
    values: dict[str, Any] = {name: base64.b64decode(text) for name, text in encoded.items()}
    for name in set(values) - set(_SECRET_BYTES_KEYS.values()):
        values[name] = values[name].decode("utf-8")
    return Credentials(**values)


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# --- the source -----------------------------------------------------------------------------------------


class GitSource:
    """Fetches repositories into bare mirrors under ``cache_dir`` and reads files from them.

    Thread-safe: calls for one mirror are serialized by its lock, calls for different mirrors run in
    parallel (SSH calls needing different known_hosts take turns, see the module docstring).
    ``timeout_seconds`` bounds connecting to and each wait on a server; libgit2 keeps this setting
    process-wide, so the most recently constructed ``GitSource`` decides it.

    Mirrors are garbage-collected (``bluegreen.git.compaction``) after a fetch that leaves ``pack_limit`` packs;
    commits ``fetch`` returned in the last ``retain_seconds`` are kept even if no ref reaches them any more.
    ``on_compaction`` hears of every compaction, done or failed (a failed one is retried ten minutes later).
    Mirrors nobody fetched through for ``stale_after_seconds`` are deleted (checked hourly); ``on_sweep``
    hears of each.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        timeout_seconds: float = 30.0,
        pack_limit: int = PACK_LIMIT,
        retain_seconds: float = RETAIN_SECONDS,
        stale_after_seconds: float = STALE_AFTER_SECONDS,
        on_compaction: Callable[[Path, CompactionResult | Exception], None] | None = None,
        on_sweep: Callable[[Path], None] | None = None,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if pack_limit < 2:
            raise ValueError(f"pack_limit must be at least 2, got {pack_limit}")
        self.cache_dir = Path(cache_dir)
        self.timeout_seconds = timeout_seconds
        self.pack_limit = pack_limit
        self.retain_seconds = retain_seconds
        self.stale_after_seconds = stale_after_seconds
        self.on_sweep = on_sweep
        self._swept_at: float | None = None
        self.on_compaction = on_compaction
        pygit2.settings.server_connect_timeout = _millis(timeout_seconds)
        pygit2.settings.server_timeout = _millis(timeout_seconds)

    def mirror_path(self, url: str, credentials: Credentials | None = None) -> Path:
        """Directory of the bare mirror for ``url`` and ``credentials`` (it may not exist yet)."""
        return self._mirror_dir(_parse_url(url), credentials)

    def stats(self, url: str, credentials: Credentials | None = None) -> dict[str, int]:
        """Network operations attempted and compactions run for this mirror by this process:
        ``{"ls_remote": n, "fetch": n, "compact": n}``."""
        state = _state_for(self.mirror_path(url, credentials))
        with _STATES_GUARD:
            return dict(state.counts)

    def fetch(
        self, url: str, ref: GitRef, *, credentials: Credentials | None = None, not_before: float | None = None
    ) -> CommitInfo:
        """Resolve ``ref`` to a commit, refreshing the mirror from the remote unless it was since ``not_before``."""
        remote = _parse_url(url)
        _check_ref(ref)
        _check_transport(remote, credentials)
        mirror = self._mirror_dir(remote, credentials)
        state = _state_for(mirror)
        self._sweep_cache(keep=mirror)
        with state.lock:
            repo = self._open_or_create(mirror, remote)
            _touch(mirror)
            refreshed = False
            try:
                advertised = None if not_before is None else _reuse(state, repo, remote, ref, not_before)
                if advertised is None:
                    advertised = self._refresh(state, repo, mirror, remote, ref, credentials)
                    refreshed = True
                    repo.free()
                    repo = pygit2.Repository(str(mirror))  # see what the fetch (maybe a child process) wrote
                info = _commit_info(_resolve(repo, remote, ref, advertised), state.refreshed_at)
            finally:
                repo.free()  # a Repository lives in a reference cycle: release libgit2's handles now
            _hand_out(state, info.sha)
            if refreshed:
                self._maybe_compact(state, mirror)
            return info

    def read(
        self,
        url: str,
        commit_sha: str,
        path: str,
        *,
        credentials: Credentials | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Snapshot:
        """Read ``path`` at ``commit_sha`` from the mirror; no network access.

        Symlinks are not followed: a symlink, a directory or a submodule is ``NotAFile``; a file larger than
        ``max_bytes`` is ``ManifestTooLarge`` (and is not loaded).
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        remote = _parse_url(url)
        parts = _split_path(path)
        mirror = self._mirror_dir(remote, credentials)
        state = _state_for(mirror)
        with state.lock:
            repo, commit = _mirror_commit(mirror, remote, commit_sha)
            try:
                content = _read_blob(repo, commit, parts, remote, max_bytes)
                return Snapshot(_commit_info(commit, state.refreshed_at), "/".join(parts), content)
            finally:
                repo.free()

    def snapshot(
        self,
        url: str,
        ref: GitRef,
        path: str,
        *,
        credentials: Credentials | None = None,
        not_before: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Snapshot:
        """``fetch`` then ``read``: ``path`` as of the commit ``ref`` points to now."""
        _split_path(path)  # refuse a bad path before touching the network
        info = self.fetch(url, ref, credentials=credentials, not_before=not_before)
        snap = self.read(url, info.sha, path, credentials=credentials, max_bytes=max_bytes)
        return Snapshot(info, snap.path, snap.content)

    def signature(
        self, url: str, commit_sha: str, *, credentials: Credentials | None = None
    ) -> tuple[bytes, bytes] | None:
        """(signature, signed payload) of a commit in the mirror (git's ``gpgsig`` header: OpenPGP or SSH),
        or None when it is unsigned; no network access."""
        remote = _parse_url(url)
        mirror = self._mirror_dir(remote, credentials)
        with _state_for(mirror).lock:
            repo, commit = _mirror_commit(mirror, remote, commit_sha)
            try:
                signature, payload = commit.gpg_signature
            finally:
                repo.free()
            if not signature:
                return None
            return bytes(signature), bytes(payload)

    def _refresh(
        self,
        state: _MirrorState,
        repo: pygit2.Repository,
        mirror: Path,
        remote: _Remote,
        ref: GitRef,
        credentials: Credentials | None,
    ) -> dict[str, str]:
        """Contact the remote, record the outcome in ``state`` and return the advertised refs."""
        started = time.monotonic()
        if credentials is not None and credentials.ca_bundle is not None and remote.scheme == "https":
            result = _sync_isolated(mirror, remote, ref, credentials, self.timeout_seconds)
        else:
            with _transport_settings(remote, credentials):
                result = _sync_mirror(repo, remote, ref, credentials)
            _collect_cycles()
        _record(state, result, started)
        if result.error is not None:
            raise result.error
        assert result.advertised is not None
        return result.advertised

    def _sweep_cache(self, keep: Path) -> None:
        """At most once per ``SWEEP_EVERY_SECONDS`` (the first time on the first fetch): delete mirrors
        unused for ``stale_after_seconds`` and leftover staging directories (``stale_mirrors``).

        A mirror in use is skipped (its lock is only tried), so nothing is deleted under a running fetch;
        a release that comes back later simply fetches into a new mirror.
        """
        now = time.monotonic()
        with _STATES_GUARD:
            if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY_SECONDS:
                return
            self._swept_at = now
        try:
            stale = stale_mirrors(self.cache_dir, now=time.time(), stale_after=self.stale_after_seconds)
        except OSError:  # an unreadable cache directory: the fetch reports it if it matters; tried next hour
            return
        for path in stale:
            if path == keep:
                continue
            state = _state_for(path)
            if not state.lock.acquire(blocking=False):
                continue
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                state.lock.release()
            if self.on_sweep is not None:
                self.on_sweep(path)

    def _maybe_compact(self, state: _MirrorState, mirror: Path) -> None:
        """Garbage-collect the mirror once it holds ``pack_limit`` packs (libgit2 adds one per fetch).

        Called with the mirror's lock held. A failure is reported to ``on_compaction`` and retried after
        ``COMPACT_RETRY_SECONDS``; the mirror stays usable either way.
        """
        now = time.monotonic()
        if now < state.compact_not_before or not needs_compaction(mirror, self.pack_limit):
            return
        recent = [sha for sha, handed_at in state.handed_out.items() if now - handed_at <= self.retain_seconds]
        outcome: CompactionResult | Exception
        try:
            outcome = compact(mirror, extra_roots=recent)
        except (pygit2.GitError, OSError) as exc:
            state.compact_not_before = now + COMPACT_RETRY_SECONDS
            outcome = exc
        else:
            with _STATES_GUARD:
                state.counts["compact"] += 1
        if self.on_compaction is not None:
            self.on_compaction(mirror, outcome)

    def _mirror_dir(self, remote: _Remote, credentials: Credentials | None) -> Path:
        identity = remote.key if credentials is None else f"{remote.key}\0{credentials.fingerprint()}"
        return mirror_dir(self.cache_dir, identity)

    def _open_or_create(self, mirror: Path, remote: _Remote) -> pygit2.Repository:
        """Open the mirror, (re)creating it if it is missing or unreadable (it is only a cache)."""
        repo = _open_mirror(mirror)
        if repo is not None:
            return repo
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            if mirror.exists():
                shutil.rmtree(mirror)
            staging = staging_dir(mirror)
            try:
                fresh = pygit2.init_repository(str(staging), bare=True)
                fresh.remotes.create("origin", remote.display, FETCH_REFSPECS[0])
                fresh.remotes.add_fetch("origin", FETCH_REFSPECS[1])
                fresh.free()
                staging.rename(mirror)  # a half-made mirror never appears under the final name
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return pygit2.Repository(str(mirror))
        except (pygit2.GitError, OSError) as exc:
            raise SourceError(
                "FetchFailed",
                f"Cannot create the local mirror of {remote.display} in {self.cache_dir}: "
                f"{remote.scrub(str(exc))}. Check that the cache directory is writable.",
            ) from None


def _open_mirror(mirror: Path) -> pygit2.Repository | None:
    if not mirror.is_dir():
        return None
    try:
        return pygit2.Repository(str(mirror))
    except pygit2.GitError:
        return None


def _mirror_commit(mirror: Path, remote: _Remote, commit_sha: str) -> tuple[pygit2.Repository, pygit2.Commit]:
    """The mirror and the commit ``commit_sha`` in it, without network access."""
    sha = commit_sha.lower()
    if not COMMIT_RE.fullmatch(sha):
        raise SourceError("InvalidRef", f"Commit {commit_sha!r} is not a commit id: give 7 to 40 hex digits.")
    repo = _open_mirror(mirror)
    try:
        commit = None if repo is None else _lookup_commit(repo, sha)
    except pygit2.AmbiguousError:
        raise SourceError(
            "RefNotFound", f"Commit {commit_sha} is ambiguous in {remote.display}; give more hex digits."
        ) from None
    if repo is None or commit is None:
        raise SourceError(
            "RefNotFound",
            f"Commit {commit_sha} of {remote.display} is not in the local mirror; "
            "fetch a ref that contains it first.",
        )
    return repo, commit


# --- resolving refs ---------------------------------------------------------------------------------------


def _select(advertised: Mapping[str, str], ref: GitRef, remote: _Remote) -> tuple[str, str]:
    """(ref name, object id) the remote advertised for a branch, tag or semver ref."""
    if ref.kind == "semver":
        return _select_semver(advertised, ref.name, remote)
    refname = f"refs/heads/{ref.name}" if ref.kind == "branch" else f"refs/tags/{ref.name}"
    oid = advertised.get(refname)
    if oid is None:
        raise SourceError(
            "RefNotFound",
            f"The {ref.kind} {ref.name!r} does not exist in {remote.display}; "
            f"check spec.source.ref or push the {ref.kind}.",
        )
    return refname, oid


def _select_semver(advertised: Mapping[str, str], constraint: str, remote: _Remote) -> tuple[str, str]:
    """The highest tag inside the range ``constraint``."""
    tags = [name.removeprefix("refs/tags/") for name in _tips(advertised) if name.startswith("refs/tags/")]
    best = highest_matching(tags, constraint)
    if best is None:
        versions = sorted(((v, t) for t in tags if (v := Version.parse(t)) is not None), reverse=True)
        seen = ", ".join(t for _, t in versions[:5])
        hint = f"the highest version tags are {seen}" if seen else f"none of its {len(tags)} tags is a version"
        raise SourceError(
            "RefNotFound",
            f"No tag of {remote.display} matches the semver range {constraint!r}; {hint}.",
        )
    refname = f"refs/tags/{best[0]}"
    return refname, advertised[refname]


def _resolve(repo: pygit2.Repository, remote: _Remote, ref: GitRef, advertised: Mapping[str, str]) -> pygit2.Commit:
    """The commit ``ref`` points to according to the remote's advertisement, from the mirror."""
    if ref.kind == "commit":
        return _resolve_commit(repo, remote, ref.name.lower())
    refname, oid = _select(advertised, ref, remote)
    name = refname.removeprefix("refs/heads/").removeprefix("refs/tags/")
    what = f"tag {name!r} (the highest in {ref.name!r})" if ref.kind == "semver" else f"{ref.kind} {name!r}"
    obj = repo.get(oid)
    if obj is None:
        raise SourceError("FetchFailed", f"The {what} of {remote.display} points to {oid[:7]}, which the "
                          "fetch did not bring into the local mirror; try again.")
    try:
        return obj.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, KeyError, TypeError):
        raise SourceError("RefNotFound", f"The {what} in {remote.display} does not point to a commit.") from None


def _resolve_commit(repo: pygit2.Repository, remote: _Remote, sha: str) -> pygit2.Commit:
    """A commit by (abbreviated) id, accepted only if a branch or tag of the repository contains it."""
    try:
        commit = _lookup_commit(repo, sha)
    except pygit2.AmbiguousError:
        raise SourceError(
            "RefNotFound",
            f"Commit {sha} is ambiguous in {remote.display}; give more hex digits.",
        ) from None
    if commit is None or not _reachable(repo, commit.id):
        raise SourceError(
            "RefNotFound",
            f"Commit {sha} is not reachable from any branch or tag of {remote.display}; "
            "check spec.source.ref.commit, or push a branch or tag that contains it.",
        )
    return commit


def _lookup_commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit | None:
    """The commit whose id starts with ``sha``, or None (raises AmbiguousError if several match)."""
    try:
        obj = repo.get(sha)
    except pygit2.InvalidError:
        return None
    return obj if isinstance(obj, pygit2.Commit) else None


def _reachable(repo: pygit2.Repository, oid: pygit2.Oid) -> bool:
    """Whether any branch or tag contains ``oid`` (the mirror may still hold force-pushed-away commits)."""
    tips: list[pygit2.Oid] = []
    for reference in repo.references.iterator():
        if not reference.name.startswith(("refs/heads/", "refs/tags/")):
            continue
        try:
            tips.append(reference.peel(pygit2.Commit).id)
        except (pygit2.GitError, ValueError, KeyError):
            continue  # a tag of a tree or blob
    if oid in tips:
        return True
    return any(repo.descendant_of(tip, oid) for tip in tips)


# --- reading files ----------------------------------------------------------------------------------------


def _split_path(path: str) -> list[str]:
    """``path`` as components; refuses absolute paths, ``..`` and the empty path."""
    if not isinstance(path, str) or path.startswith("/") or "\x00" in path:
        raise SourceError(
            "InvalidPath", f"Path {path!r} must be relative to the repository root (no leading '/')."
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise SourceError("InvalidPath", f"Path {path!r} must not contain '..'.")
    if not parts:
        raise SourceError("InvalidPath", f"Path {path!r} must name a file in the repository.")
    return parts


def _read_blob(
    repo: pygit2.Repository, commit: pygit2.Commit, parts: list[str], remote: _Remote, max_bytes: int
) -> bytes:
    """Walk the tree one component at a time, so that a symlink anywhere on the way is refused."""
    path = "/".join(parts)
    where = f"at commit {str(commit.id)[:7]}"
    tree = commit.tree
    for depth, name in enumerate(parts):
        so_far = "/".join(parts[: depth + 1])
        entry = _entry(tree, name)
        if entry is None:
            raise SourceError(
                "PathNotFound",
                f"{path!r} does not exist {where} of {remote.display}; check spec.source.path.",
            )
        mode, obj = entry
        last = depth == len(parts) - 1
        if mode == FileMode.LINK:
            raise SourceError(
                "NotAFile",
                f"{so_far!r} is a symbolic link {where}; symlinks are not followed, "
                "point spec.source.path at the real file.",
            )
        if mode == FileMode.COMMIT:
            raise SourceError("NotAFile", f"{so_far!r} is a submodule {where}; it cannot be read.")
        if not last:
            if not isinstance(obj, pygit2.Tree):
                raise SourceError(
                    "PathNotFound",
                    f"{path!r} does not exist {where} of {remote.display}: {so_far!r} is a file.",
                )
            tree = obj
            continue
        if isinstance(obj, pygit2.Tree):
            raise SourceError(
                "NotAFile", f"{path!r} is a directory {where}; point spec.source.path at a file."
            )
        if isinstance(obj, pygit2.Blob):
            _check_size(repo, obj, path, where, max_bytes)
            return obj.data
        raise SourceError("NotAFile", f"{path!r} is not a regular file {where}.")
    raise AssertionError("unreachable: parts is never empty")


def _check_size(repo: pygit2.Repository, blob: pygit2.Blob, path: str, where: str, max_bytes: int) -> None:
    """Refuse a blob over ``max_bytes``, reading only its object header."""
    _kind, size = repo.odb.read_header(blob.id)
    if size > max_bytes:
        raise SourceError(
            "ManifestTooLarge",
            f"{path!r} is {size} bytes {where}, more than the limit of {max_bytes} bytes; "
            "point spec.source.path at the Deployment manifest.",
        )


def _entry(tree: pygit2.Tree, name: str) -> tuple[int, pygit2.Object | None] | None:
    """(file mode, object) of ``name`` in ``tree``, or None; the object is None for a submodule.

    Found by iterating: pygit2 1.21's ``name in tree`` and ``tree[name]`` never release ``name`` (one string
    leaked per call, forever, in a process that reads on every fetch).
    """
    for child in tree:
        if child.name == name:
            mode = int(child.filemode)
            return mode, None if mode == FileMode.COMMIT else child
    return None


def _commit_info(commit: pygit2.Commit, refreshed_at: float | None) -> CommitInfo:
    encoding = commit.message_encoding or "utf-8"
    message = _decode(commit.raw_message, encoding).lstrip("\r\n")
    summary = message.splitlines()[0].rstrip() if message else ""
    author = commit.author
    return CommitInfo(
        sha=str(commit.id),
        summary=summary[:SUMMARY_MAX_CHARS],
        author=f"{_decode(author.raw_name, encoding)} <{_decode(author.raw_email, encoding)}>",
        time=datetime.fromtimestamp(commit.commit_time, tz=UTC),
        refreshed_at=refreshed_at or 0.0,
    )


def _decode(raw: bytes, encoding: str) -> str:
    with contextlib.suppress(LookupError):
        return raw.decode(encoding, errors="replace")
    return raw.decode("utf-8", errors="replace")


if __name__ == "__main__":
    sys.exit(_worker_main())
