"""Read one file at one git ref, through a local bare mirror per repository and credential set.

``GitSource`` is the facade of ``bluegreen.git`` (the only package importing pygit2), built from its modules:
``remote`` (URL forms and what is refused up front), ``settings`` and ``known_hosts`` (libgit2's process-wide
SSH homedir), ``callbacks`` (credentials on the wire, error reasons), ``sync`` (ls-remote and fetch on one
connection), ``isolated`` (the private-CA child process), ``mirrors`` (per-mirror state), ``lookup`` (refs and
blobs in a mirror), ``cache`` and ``compaction`` (mirror directories, garbage collection, the sweep).

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
  ``GitSource.snapshot`` (``spec.source.path``) also reads a directory: its ``.yaml``/``.yml`` files directly
  inside it, by the same rules (``lookup.read_path``: subdirectories and other files are not read).
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
  operations with a caFile run in a short-lived child process (``python -m bluegreen.git.isolated``) whose
  store holds only that bundle; the operator's own store stays the system's.

Process-wide settings. libgit2's homedir is one per process. ``HOMEDIR`` guards it and never makes anyone
wait: SSH operations that need the same known_hosts share it, an operation needing other known_hosts runs
in the child process (``isolated``) with its own homedir instead, so an SSH server that hangs (until
``timeout_seconds``) delays no fetch of another repository. HTTPS, git:// and local operations do not
depend on it. Connect and read timeouts (``timeout_seconds``) are process-wide too, and the same for every
fetch: the most recently constructed ``GitSource`` sets them.

Secrets never reach logs, messages, ``repr``, the mirror's config or files left on disk: keys stay in
memory, known_hosts and CA bundles go to 0600 files in 0700 temporary directories removed after the
operation, and libgit2's error texts are scrubbed of every secret value before they become messages.

Every failure is a ``SourceError`` whose ``reason`` is a CamelCase word for a status condition and whose
``message`` tells the user what to fix (see docs/git-auth.md for the list).
"""

import time
from collections.abc import Callable
from pathlib import Path

import pygit2

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.recorder import SUCCESS, Recorder
from bluegreen.core.spec import GitRef
from bluegreen.git.cache import RETAIN_SECONDS, STALE_AFTER_SECONDS, MirrorCache
from bluegreen.git.compaction import PACK_LIMIT, CompactionResult
from bluegreen.git.isolated import sync_isolated
from bluegreen.git.lookup import (
    DEFAULT_MAX_BYTES,
    commit_info,
    mirror_commit,
    read_blob,
    read_path,
    resolve,
    split_path,
)
from bluegreen.git.mirrors import STATES_GUARD, MirrorState, hand_out, record, reuse, state_for, touch
from bluegreen.git.remote import Remote, check_ref, check_transport, parse_url
from bluegreen.git.settings import millis, transport_settings
from bluegreen.git.sync import SyncResult, collect_cycles, sync_mirror

__all__ = ["DEFAULT_MAX_BYTES", "GitSource"]


class GitSource(MirrorCache):
    """Fetches repositories into bare mirrors under ``cache_dir`` and reads files from them.

    Thread-safe: calls for one mirror are serialized by its lock, calls for different mirrors run in
    parallel (an SSH call needing other known_hosts than those in use runs in a child process, see the
    module docstring).
    ``timeout_seconds`` bounds connecting to and each wait on a server; libgit2 keeps this setting
    process-wide, so the most recently constructed ``GitSource`` decides it.

    Mirrors are garbage-collected (``bluegreen.git.compaction``) after a fetch that leaves ``pack_limit`` packs;
    commits ``fetch`` returned in the last ``retain_seconds`` are kept even if no ref reaches them any more.
    ``on_compaction`` hears of every compaction, done or failed (a failed one is retried ten minutes later).
    Mirrors nobody fetched through for ``stale_after_seconds`` are deleted (checked hourly); ``on_sweep``
    hears of each. ``recorder`` hears of every remote contact and fetch (``Remote.key`` names the repository:
    no user name, password or query).
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
        recorder: Recorder | None = None,
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
        self.recorder = recorder if recorder is not None else Recorder()
        pygit2.settings.server_connect_timeout = millis(timeout_seconds)
        pygit2.settings.server_timeout = millis(timeout_seconds)

    def mirror_path(self, url: str, credentials: Credentials | None = None) -> Path:
        """Directory of the bare mirror for ``url`` and ``credentials`` (it may not exist yet)."""
        return self._mirror_dir(parse_url(url), credentials)

    def stats(self, url: str, credentials: Credentials | None = None) -> dict[str, int]:
        """Network operations attempted and compactions run for this mirror by this process:
        ``{"ls_remote": n, "fetch": n, "compact": n}``."""
        state = state_for(self.mirror_path(url, credentials))
        with STATES_GUARD:
            return dict(state.counts)

    def fetch(
        self, url: str, ref: GitRef, *, credentials: Credentials | None = None, not_before: float | None = None
    ) -> CommitInfo:
        """Resolve ``ref`` to a commit, refreshing the mirror from the remote unless it was since ``not_before``."""
        remote = parse_url(url)
        check_ref(ref)
        check_transport(remote, credentials)
        mirror = self._mirror_dir(remote, credentials)
        state = state_for(mirror)
        self._sweep_cache(keep=mirror)
        with state.lock:
            repo = self._open_or_create(mirror, remote)
            touch(mirror)
            refreshed = False
            try:
                advertised = None if not_before is None else reuse(state, repo, remote, ref, not_before)
                if advertised is None:
                    advertised = self._refresh(state, repo, mirror, remote, ref, credentials)
                    refreshed = True
                    repo.free()
                    repo = pygit2.Repository(str(mirror))  # see what the fetch (maybe a child process) wrote
                info = commit_info(resolve(repo, remote, ref, advertised), state.refreshed_at)
            finally:
                repo.free()  # a Repository lives in a reference cycle: release libgit2's handles now
            hand_out(state, info.sha)
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
        return self._read(url, commit_sha, path, credentials, max_bytes, directory=False)

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
        """``fetch`` then read ``path`` as of the commit ``ref`` points to now: a file, or a directory's
        ``.yaml``/``.yml`` files (``Snapshot.files``; each held to ``max_bytes``)."""
        split_path(path)  # refuse a bad path before touching the network
        info = self.fetch(url, ref, credentials=credentials, not_before=not_before)
        snap = self._read(url, info.sha, path, credentials, max_bytes, directory=True)
        return Snapshot(info, snap.path, snap.content, snap.files)

    def _read(self, url: str, commit_sha: str, path: str, credentials: Credentials | None, max_bytes: int, *,
              directory: bool) -> Snapshot:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        remote = parse_url(url)
        parts = split_path(path)
        mirror = self._mirror_dir(remote, credentials)
        state = state_for(mirror)
        with state.lock:
            repo, commit = mirror_commit(mirror, remote, commit_sha)
            try:
                info = commit_info(commit, state.refreshed_at)
                if not directory:
                    return Snapshot(info, "/".join(parts), read_blob(repo, commit, parts, remote, max_bytes))
                found = read_path(repo, commit, parts, remote, max_bytes)
                if isinstance(found, bytes):
                    return Snapshot(info, "/".join(parts), found)
                return Snapshot(info, "/".join(parts), b"", found)
            finally:
                repo.free()

    def signature(
        self, url: str, commit_sha: str, *, credentials: Credentials | None = None
    ) -> tuple[bytes, bytes] | None:
        """(signature, signed payload) of a commit in the mirror (git's ``gpgsig`` header: OpenPGP or SSH),
        or None when it is unsigned; no network access."""
        remote = parse_url(url)
        mirror = self._mirror_dir(remote, credentials)
        with state_for(mirror).lock:
            repo, commit = mirror_commit(mirror, remote, commit_sha)
            try:
                signature, payload = commit.gpg_signature
            finally:
                repo.free()
            if not signature:
                return None
            return bytes(signature), bytes(payload)

    def _refresh(
        self,
        state: MirrorState,
        repo: pygit2.Repository,
        mirror: Path,
        remote: Remote,
        ref: GitRef,
        credentials: Credentials | None,
    ) -> dict[str, str]:
        """Contact the remote, record the outcome in ``state`` and return the advertised refs."""
        started = time.monotonic()
        result = None
        if credentials is None or credentials.ca_bundle is None or remote.scheme != "https":
            with transport_settings(remote, credentials) as held:
                if held:
                    result = sync_mirror(repo, remote, ref, credentials)
            collect_cycles()
        if result is None:  # a private CA, or SSH while other known_hosts hold the process-wide homedir
            assert credentials is not None
            result = sync_isolated(mirror, remote, ref, credentials, self.timeout_seconds)
        record(state, result, started)
        self._report(remote, result, time.monotonic() - started)
        if result.error is not None:
            raise result.error
        assert result.advertised is not None
        return result.advertised

    def _report(self, remote: Remote, result: SyncResult, seconds: float) -> None:
        """Tell the recorder of a contact (and its fetch): the result is ``success`` or the failure's reason;
        a failed fetch leaves the listing, and so the contact, successful."""
        repository = remote.key.partition("?")[0]
        failure = result.error.reason if result.error is not None else None
        if result.fetch:
            self.recorder.git_fetch(repository, failure or SUCCESS, result.fetch_seconds)
        self.recorder.git_contact(repository, SUCCESS if result.fetch else failure or SUCCESS, seconds)
