"""Transport callbacks (credentials offered once, certificate verdicts, the bearer header) and libgit2's
failures turned into ``SourceError``s that name the cause, scrubbed of secrets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

import pygit2
from pygit2.enums import CredentialType

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.git.known_hosts import host_listed
from bluegreen.git.remote import Remote, keyscan_port

DEFAULT_SSH_USER: Final = "git"

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


class Callbacks(pygit2.RemoteCallbacks):
    """Credentials (each kind offered once per operation), certificate verdicts and the bearer header."""

    def __init__(self, remote: Remote, credentials: Credentials | None) -> None:
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


@contextlib.contextmanager
def network_errors(remote: Remote, credentials: Credentials | None, callbacks: Callbacks) -> Iterator[None]:
    """Turn libgit2's failures into ``SourceError``s that name the cause (scrubbed of secrets)."""
    try:
        yield
    except SourceError:
        raise
    except (pygit2.GitError, OSError, ValueError, TypeError) as exc:
        raise network_error(remote, credentials, callbacks, exc) from None


def network_error(
    remote: Remote, credentials: Credentials | None, callbacks: Callbacks, exc: Exception
) -> SourceError:
    """The reason for a failed network operation, from the callbacks' observations and libgit2's text."""
    detail = remote.scrub(str(exc).strip() or type(exc).__name__, credentials).rstrip(".")
    lowered = detail.lower()
    if callbacks.rejected_certificate:
        return certificate_error(remote, credentials)
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


def certificate_error(remote: Remote, credentials: Credentials | None) -> SourceError:
    if remote.scheme == "ssh":
        where = f"{remote.host}:{remote.port or 22}"
        known = credentials.known_hosts if credentials is not None and credentials.known_hosts else b""
        if host_listed(known, remote.host, remote.port):
            return SourceError(
                "HostKeyMismatch",
                f"The SSH host key of {where} does not match the known_hosts in the git Secret. If the "
                "server's key was changed, update known_hosts; if not, the connection may be intercepted.",
            )
        entry = f"[{remote.host}]:{remote.port}" if remote.port not in (None, 22) else remote.host
        return SourceError(
            "HostKeyUnknown",
            f"The known_hosts in the git Secret has no key for {where}: add the server's host key (lines "
            f"starting with {entry!r}, e.g. from `ssh-keyscan{keyscan_port(remote)} {remote.host}`).",
        )
    trusted = "the caFile in the git Secret" if credentials is not None and credentials.ca_bundle else (
        "the system's trusted CAs"
    )
    return SourceError(
        "CertificateInvalid",
        f"The TLS certificate of {remote.host} ({remote.display}) is not trusted by {trusted}, or does not "
        "name that host. For a private CA, put its certificate in the git Secret under caFile.",
    )
