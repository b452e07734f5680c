"""Repository URLs as the transports need them (fetch, display and mirror-key forms), and what is refused
before any network access: unsupported URLs, invalid refs, SSH without known_hosts, credentials over http."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.core.gitref import is_commit_id, ref_name_problem, semver_problem
from bluegreen.core.repourl import NETWORK_SCHEMES, is_scp_like, strip_userinfo
from bluegreen.core.spec import GitRef


@dataclass(frozen=True)
class Remote:
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
        for secret in self.secrets + (credentials.secret_strings() if credentials else ()):
            text = text.replace(secret, "***")
        return strip_userinfo(text)


def parse_url(url: str) -> Remote:
    """Validate ``url`` and derive its fetch, display and key forms."""
    if not isinstance(url, str) or not url or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise SourceError("InvalidURL", f"Repository URL {url!r} is empty or contains control characters.")
    if url.startswith("/"):
        return local_remote(url)
    hint = " For SSH write ssh://user@host/path instead of user@host:path." if is_scp_like(url) else ""
    shown = strip_userinfo(url)
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
        return local_remote(unquote(parts.path), shown=url)
    if scheme not in NETWORK_SCHEMES or not parts.hostname:
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
    return Remote(fetch_url, display, key, ordered, scheme, parts.hostname, port, user)


def local_remote(path: str, *, shown: str | None = None) -> Remote:
    """A repository on the local file system (``/abs/path`` or ``file:///abs/path``)."""
    normalized = os.path.normpath(path)
    url = "file://" + quote(normalized)
    # libgit2 treats a plain path that does not exist as an unknown protocol; a file:// URL gives a
    # clear "failed to resolve path" instead, so always hand it the URL form.
    return Remote(fetch_url=url, display=shown or normalized, key=url, secrets=(), scheme="file")


def check_transport(remote: Remote, credentials: Credentials | None) -> None:
    """Refuse, before any network access, what must not be attempted with these credentials."""
    if remote.scheme == "ssh" and (credentials is None or credentials.known_hosts is None):
        raise SourceError(
            "KnownHostsMissing",
            f"Cannot verify the SSH host key of {remote.display}: SSH host keys are always checked, and the "
            "git Secret has no known_hosts. Add the server's host keys to the Secret under known_hosts "
            f"(e.g. the output of `ssh-keyscan{keyscan_port(remote)} {remote.host}`, checked against "
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


def keyscan_port(remote: Remote) -> str:
    return f" -p {remote.port}" if remote.port not in (None, 22) else ""


def check_ref(ref: GitRef) -> None:
    """Refuse an invalid ref (``bluegreen.core.gitref``'s rules) before any network access."""
    if ref.kind == "commit":
        if not is_commit_id(ref.name.lower()):
            raise SourceError(
                "InvalidRef", f"Commit {ref.name!r} is not a commit id: give 7 to 40 hex digits."
            )
    elif ref.kind in ("branch", "tag"):
        problem = ref_name_problem(ref.name)
        if problem:
            raise SourceError("InvalidRef", f"The {ref.kind} name {ref.name!r} is invalid: it {problem}.")
    elif ref.kind == "semver":
        problem = semver_problem(ref.name)
        if problem:
            raise SourceError("InvalidRef", f"The semver range {ref.name!r} is invalid: {problem}.")
    else:
        raise SourceError("InvalidRef", f"Unknown ref kind {ref.kind!r}: use branch, tag, semver or commit.")
