"""The source step of a pass: read git when due, verify the commit's signature, parse the manifest.

Releases of one repository share a mirror: a refresh made for another release within the interval is
reused, so N releases polling one repository cost one remote check per interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.conditions import is_transient
from bluegreen.core.credentials import Credentials
from bluegreen.core.desired import ManifestError, parse_manifest
from bluegreen.core.errors import Outcome, SourceError, VerifyError
from bluegreen.core.protocols import Cluster, Source, Verifier
from bluegreen.core.spec import ReleaseRef, ReleaseSpec
from bluegreen.runtime.memory import Memory


class SourceStep:
    """Fetches, verifies and parses what a release's ``spec.source`` names, into its ``Memory``."""

    def __init__(self, cluster: Cluster, source: Source, verifier: Verifier, monotonic: Callable[[], float]) -> None:
        self.cluster = cluster
        self.source = source
        self.verifier = verifier
        self.monotonic = monotonic

    def run(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, token: str | None) -> None:
        """Read git if due: on a new spec, a new ``reconcile-at`` token, a push, a resume, or the interval."""
        # A forced check asked for while suspended is kept for the resume; resuming checks git at once.
        forced = (token is not None and token != memory.reconcile_token) or memory.suspended
        memory.suspended = spec.suspend
        if spec.suspend:
            return
        memory.reconcile_token = token
        not_before = self.fetch_due(spec, memory, forced)
        if not_before is not None:
            self.refresh(release, spec, memory, not_before)

    def fetch_due(self, spec: ReleaseSpec, memory: Memory, forced: bool) -> float | None:
        """None when git need not be read now; else the oldest mirror refresh (monotonic) that will do."""
        now = self.monotonic()
        key = (spec.source.url, spec.source.ref, spec.source.path)
        requested = memory.check_requested_at
        if forced or memory.fetched_at is None or memory.source_key != key:
            return now
        if requested is not None and memory.fetched_at < requested:
            return requested
        if now - memory.fetched_at >= spec.source.interval_seconds:
            return now - spec.source.interval_seconds
        return None

    def refresh(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, not_before: float) -> None:
        """Fetch the file, verify the commit (with ``verify``) and parse the manifest; record the outcome."""
        memory.source_key = (spec.source.url, spec.source.ref, spec.source.path)
        memory.fetched_at = self.monotonic()
        src = spec.source
        try:
            credentials = self._credentials(release, spec)
            snapshot = self.source.snapshot(src.url, src.ref, src.path, credentials=credentials,
                                            not_before=not_before)
        except SourceError as exc:
            memory.source = exc.outcome(memory.source.commit)
            if not is_transient(memory.source):  # the manifest is gone: hold; unreachable: keep the last good one
                memory.template = None
            return
        memory.fetched_at = min(memory.fetched_at, _refreshed_at(snapshot, memory.fetched_at))
        if spec.source.verify is not None:
            memory.verified = self._verify(release, spec, snapshot.commit, credentials, memory)
            if not memory.verified.ok:
                memory.commit = snapshot.commit
                memory.template = None
                memory.source = Outcome(False, memory.verified.reason, memory.verified.message, snapshot.commit.sha)
                return
        else:
            memory.verified = None
        memory.commit = snapshot.commit
        try:
            memory.template = parse_manifest(snapshot.content, namespace=release.namespace, path=src.path)
        except ManifestError as exc:
            memory.template = None
            memory.source = Outcome(False, exc.reason, f"commit {snapshot.commit.short_sha}: {exc.message}",
                                    snapshot.commit.sha)
            return
        memory.source = Outcome(True, "Fetched",
                                f"commit {snapshot.commit.short_sha} ({snapshot.commit.summary!r}) on "
                                f"{src.ref.describe()} of {src.path}", snapshot.commit.sha)

    def _credentials(self, release: ReleaseRef, spec: ReleaseSpec) -> Credentials | None:
        """Git credentials from the Secret named in spec.source.secretRef, read on every fetch (rotation)."""
        name = spec.source.secret_ref
        if name is None:
            return None
        data = self.cluster.read_secret(release.namespace, name)
        if data is None:
            raise SourceError("SecretNotFound", f"Secret {name!r} (spec.source.secretRef) does not exist in "
                                                f"namespace {release.namespace!r}; create it")
        return Credentials.from_secret_data(data)

    def _verify(self, release: ReleaseRef, spec: ReleaseSpec, commit: CommitInfo, credentials: Credentials | None,
                memory: Memory) -> Outcome:
        """Is the commit signed by a key in the trusted-keys Secret? (cached per commit and key set)"""
        assert spec.source.verify is not None
        name = spec.source.verify.secret_ref
        data = self.cluster.read_secret(release.namespace, name)
        if data is None:
            return Outcome(False, "SecretNotFound", f"Secret {name!r} (spec.source.verify.secretRef) does "
                                                    f"not exist in namespace {release.namespace!r}")
        cache_key = (commit.sha, keys_fingerprint(data))
        if cache_key not in memory.verdicts:
            signature = self.source.signature(spec.source.url, commit.sha, credentials=credentials)
            try:
                verdict = self.verifier.verify(commit.sha, signature, data, secret_name=name)
            except VerifyError as exc:  # unusable keys, gpg/ssh-keygen missing or hung: retried, never cached
                return exc.outcome(commit.sha)
            memory.verdicts = {cache_key: verdict}
        return memory.verdicts[cache_key]


def _refreshed_at(snapshot: Snapshot, default: float) -> float:
    """When the mirror behind ``snapshot`` last contacted the remote (aligns polls of a shared repository)."""
    for holder in (snapshot, snapshot.commit):
        value = getattr(holder, "refreshed_at", None)
        if isinstance(value, int | float) and value > 0:  # 0: this process never contacted that remote
            return float(value)
    return default


def keys_fingerprint(data: Mapping[str, bytes]) -> str:
    """Identity of a trusted-keys Secret's content (a rotated key set is verified again)."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key] + b"\0")
    return digest.hexdigest()
