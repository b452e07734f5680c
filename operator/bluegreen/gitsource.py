"""Read one file at one git ref, through a local bare mirror per repository URL.

The only module of the project that imports pygit2. ``GitSource.fetch`` brings the mirror up to date
(force-updating and pruning branches and tags, so moved, force-pushed and deleted refs are followed) and
resolves a ``GitRef`` to a commit; ``GitSource.read`` reads a file at a commit from the mirror without
touching the network. Every failure is a ``SourceError`` whose ``reason`` is a CamelCase word suitable for
a status condition and whose ``message`` tells the user what to fix. URLs in messages never carry
credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pygit2
from pygit2.enums import FetchPrune, FileMode

from bluegreen.api import COMMIT_RE, GitRef, ref_name_problem

__all__ = ["CommitInfo", "GitRef", "GitSource", "Reason", "Snapshot", "SourceError"]

Reason = Literal[
    "RepositoryUnreachable",
    "RefNotFound",
    "InvalidRef",
    "PathNotFound",
    "InvalidPath",
    "NotAFile",
    "InvalidURL",
    "FetchFailed",
]

SUMMARY_MAX_CHARS: Final = 200
FETCH_REFSPECS: Final = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_NETWORK_SCHEMES: Final = frozenset({"https", "http", "ssh", "git"})
_USERINFO_RE: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SCP_LIKE_RE: Final = re.compile(r"^[\w.-]+@[\w.-]+:")
_UNREACHABLE_MARKERS: Final = (
    "failed to resolve path",
    "could not find repository",
    "failed to connect",
    "failed to resolve address",
    "connection refused",
    "connection reset",
    "timed out",
    "no route to host",
    "network is unreachable",
    "unexpected http status code: 404",
)

_MIRROR_LOCKS: dict[str, threading.Lock] = {}
_MIRROR_LOCKS_GUARD = threading.Lock()


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


class SourceError(Exception):
    """Reading from git failed; ``reason`` is CamelCase for conditions, ``message`` is for people."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.reason: Reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Remote:
    """A validated repository URL in the forms needed to fetch, to show and to key the mirror."""

    fetch_url: str
    """What libgit2 gets (may contain credentials)."""
    display: str
    """Safe to show: userinfo removed."""
    key: str
    """Normalized, without userinfo: one mirror per key."""
    secrets: tuple[str, ...]
    """Strings to remove from any error text."""

    def scrub(self, text: str) -> str:
        """``text`` with this URL's credentials (and any ``scheme://user@``) removed."""
        text = text.replace(self.fetch_url, self.display)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _USERINFO_RE.sub(r"\1", text)


class GitSource:
    """Fetches repositories into bare mirrors under ``cache_dir`` and reads files from them.

    Thread-safe: calls for the same URL are serialized by a per-mirror lock, calls for different URLs
    run in parallel. ``timeout_seconds`` bounds connecting to and waiting on a network server; libgit2
    keeps this setting process-wide, so the most recently constructed ``GitSource`` decides it.
    """

    def __init__(self, cache_dir: Path, *, timeout_seconds: float = 30.0) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.cache_dir = Path(cache_dir)
        self.timeout_seconds = timeout_seconds
        millis = max(1, round(timeout_seconds * 1000))
        pygit2.settings.server_connect_timeout = millis
        pygit2.settings.server_timeout = millis

    def mirror_path(self, url: str) -> Path:
        """Directory of the bare mirror for ``url`` (it may not exist yet)."""
        return self._mirror_dir(_parse_url(url))

    def fetch(self, url: str, ref: GitRef) -> CommitInfo:
        """Update the mirror of ``url`` from the network and resolve ``ref`` to a commit."""
        remote = _parse_url(url)
        _check_ref(ref)
        mirror = self._mirror_dir(remote)
        with _lock_for(mirror):
            repo = self._open_or_create(mirror, remote)
            try:
                repo.remotes.create_anonymous(remote.fetch_url).fetch(
                    list(FETCH_REFSPECS), prune=FetchPrune.PRUNE
                )
            except (pygit2.GitError, OSError) as exc:
                raise _fetch_error(remote, exc) from None
            return _commit_info(_resolve(repo, remote, ref))

    def read(self, url: str, commit_sha: str, path: str) -> Snapshot:
        """Read ``path`` at ``commit_sha`` from the mirror of ``url``; no network access.

        Symlinks are not followed: a symlink, a directory or a submodule is ``NotAFile``.
        """
        remote = _parse_url(url)
        parts = _split_path(path)
        sha = commit_sha.lower()
        if not COMMIT_RE.fullmatch(sha):
            raise SourceError(
                "InvalidRef", f"Commit {commit_sha!r} is not a commit id: give 7 to 40 hex digits."
            )
        mirror = self._mirror_dir(remote)
        with _lock_for(mirror):
            repo = _open_mirror(mirror)
            try:
                commit = None if repo is None else _lookup_commit(repo, sha)
            except pygit2.AmbiguousError:
                raise SourceError(
                    "RefNotFound",
                    f"Commit {commit_sha} is ambiguous in {remote.display}; give more hex digits.",
                ) from None
            if commit is None:
                raise SourceError(
                    "RefNotFound",
                    f"Commit {commit_sha} of {remote.display} is not in the local mirror; "
                    "fetch a ref that contains it first.",
                )
            content = _read_blob(commit, parts, remote)
            return Snapshot(commit=_commit_info(commit), path="/".join(parts), content=content)

    def snapshot(self, url: str, ref: GitRef, path: str) -> Snapshot:
        """``fetch`` then ``read``: ``path`` as of the commit ``ref`` points to now."""
        _split_path(path)  # refuse a bad path before touching the network
        info = self.fetch(url, ref)
        return self.read(url, info.sha, path)

    def _mirror_dir(self, remote: _Remote) -> Path:
        digest = hashlib.sha256(remote.key.encode("utf-8")).hexdigest()[:16]
        return self.cache_dir / digest

    def _open_or_create(self, mirror: Path, remote: _Remote) -> pygit2.Repository:
        """Open the mirror, (re)creating it if it is missing or unreadable (it is only a cache)."""
        repo = _open_mirror(mirror)
        if repo is not None:
            return repo
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            if mirror.exists():
                shutil.rmtree(mirror)
            staging = self.cache_dir / f".{mirror.name}.{uuid.uuid4().hex}.tmp"
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


def _lock_for(mirror: Path) -> threading.Lock:
    key = os.fspath(mirror.absolute())
    with _MIRROR_LOCKS_GUARD:
        return _MIRROR_LOCKS.setdefault(key, threading.Lock())


def _open_mirror(mirror: Path) -> pygit2.Repository | None:
    if not mirror.is_dir():
        return None
    try:
        return pygit2.Repository(str(mirror))
    except pygit2.GitError:
        return None


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
        _ = parts.port  # raises ValueError for a malformed port
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
    return _Remote(fetch_url=fetch_url, display=display, key=key, secrets=ordered)


def _local_remote(path: str, *, shown: str | None = None) -> _Remote:
    """A repository on the local file system (``/abs/path`` or ``file:///abs/path``)."""
    normalized = os.path.normpath(path)
    url = "file://" + quote(normalized)
    # libgit2 treats a plain path that does not exist as an unknown protocol; a file:// URL gives a
    # clear "failed to resolve path" instead, so always hand it the URL form.
    return _Remote(fetch_url=url, display=shown or normalized, key=url, secrets=())


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
    else:
        raise SourceError("InvalidRef", f"Unknown ref kind {ref.kind!r}: use branch, tag or commit.")


def _fetch_error(remote: _Remote, exc: Exception) -> SourceError:
    detail = remote.scrub(str(exc).strip() or type(exc).__name__)
    lowered = detail.lower()
    if any(marker in lowered for marker in _UNREACHABLE_MARKERS):
        return SourceError(
            "RepositoryUnreachable",
            f"Cannot reach the repository {remote.display}: {detail}. "
            "Check the URL and that the server is up and reachable from the operator.",
        )
    hint = "Check the credentials." if "auth" in lowered or "credential" in lowered else ""
    return SourceError(
        "FetchFailed",
        f"Fetching {remote.display} failed: {detail}. {hint or 'Check the URL and the git server.'}",
    )


def _resolve(repo: pygit2.Repository, remote: _Remote, ref: GitRef) -> pygit2.Commit:
    """The commit ``ref`` points to in the freshly fetched mirror."""
    if ref.kind == "commit":
        return _resolve_commit(repo, remote, ref.name.lower())
    refname = f"refs/heads/{ref.name}" if ref.kind == "branch" else f"refs/tags/{ref.name}"
    reference = repo.references.get(refname)
    if reference is None:
        raise SourceError(
            "RefNotFound",
            f"The {ref.kind} {ref.name!r} does not exist in {remote.display}; "
            f"check spec.source.ref or push the {ref.kind}.",
        )
    try:
        return reference.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, KeyError):
        raise SourceError(
            "RefNotFound",
            f"The {ref.kind} {ref.name!r} in {remote.display} does not point to a commit.",
        ) from None


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


def _read_blob(commit: pygit2.Commit, parts: list[str], remote: _Remote) -> bytes:
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
            return obj.data
        raise SourceError("NotAFile", f"{path!r} is not a regular file {where}.")
    raise AssertionError("unreachable: parts is never empty")


def _entry(tree: pygit2.Tree, name: str) -> tuple[int, pygit2.Object | None] | None:
    """(file mode, object) of ``name`` in ``tree``, or None; the object is None for a submodule."""
    if name not in tree:
        return None
    child = tree[name]
    mode = int(child.filemode)
    return mode, None if mode == FileMode.COMMIT else child


def _commit_info(commit: pygit2.Commit) -> CommitInfo:
    encoding = commit.message_encoding or "utf-8"
    message = _decode(commit.raw_message, encoding).lstrip("\r\n")
    summary = message.splitlines()[0].rstrip() if message else ""
    author = commit.author
    return CommitInfo(
        sha=str(commit.id),
        summary=summary[:SUMMARY_MAX_CHARS],
        author=f"{_decode(author.raw_name, encoding)} <{_decode(author.raw_email, encoding)}>",
        time=datetime.fromtimestamp(commit.commit_time, tz=UTC),
    )


def _decode(raw: bytes, encoding: str) -> str:
    with contextlib.suppress(LookupError):
        return raw.decode(encoding, errors="replace")
    return raw.decode("utf-8", errors="replace")
