"""What one run of a feed does, on a fetch thread (never in a pass): read the credentials Secret, fetch each
ref once, read each release's file or directory, verify the commit's signature (gpg/ssh-keygen), parse the
manifests (``core.bundle``: the Deployment, its ConfigMaps, HPA and PDB), and
read and parse the hook Job manifests the release names (``Subscription.job_paths``) at the same commit.

A result says what this check found: the commit and its manifest, or why there is nothing to release (a
manifest that does not parse, an unsigned or untrusted commit: the commit is named, the manifest withheld),
or a failure before any commit was reached (``commit`` None). A missing or invalid Job manifest withholds the
commit's manifest too (``InvalidJobManifest``, the path named): such a commit is not released. The manifest
and the Job manifests of a commit are parsed once (the previous result is reused for the same commit). What
the release keeps through such a failure is the pass's business (``source_step.adopt``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol

from bluegreen.core.bundle import parse_source
from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.desired import ManifestError
from bluegreen.core.errors import Outcome, SourceError, VerifyError
from bluegreen.core.hook_jobs import JobManifest, JobManifestError, parse_job_manifest
from bluegreen.core.protocols import Source, Verifier
from bluegreen.runtime.feeds import RunOutcome, SourceResult, Subscription, Work


class Secrets(Protocol):
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...


class FeedWork:
    """Runs one ``Work`` against the git source; thread-safe (it keeps nothing between runs)."""

    def __init__(self, source: Source, secrets: Secrets, verifier: Verifier) -> None:
        self.source = source
        self.secrets = secrets
        self.verifier = verifier

    def __call__(self, work: Work) -> RunOutcome:
        run = _Run(self, work)
        results = {sub.release: run.result(sub) for sub in work.subscriptions}
        return RunOutcome(results, run.refreshed_at)


class _Run:
    """The state of one run: the credentials read once, each (url, ref, path) fetched once."""

    def __init__(self, owner: FeedWork, work: Work) -> None:
        self.owner = owner
        self.work = work
        self.refreshed_at: float | None = None
        self._credentials: Credentials | SourceError | None = None
        self._credentials_read = False
        self._snapshots: dict[tuple[str, object, str], Snapshot | SourceError] = {}
        self._trusted: dict[tuple[str, str], dict[str, bytes] | None] = {}

    def result(self, sub: Subscription) -> SourceResult:
        previous = self.work.previous.get(sub.release)
        credentials = self.credentials(sub)
        got = credentials if isinstance(credentials, SourceError) else self.snapshot(sub, credentials)
        if isinstance(got, SourceError):
            return SourceResult(got.outcome(), checked_at=self.work.started)
        commit = got.commit
        verified = None
        if sub.verify_secret is not None:
            assert not isinstance(credentials, SourceError)
            verified = self.verify(sub, commit, credentials)
            if not verified.ok:
                return SourceResult(Outcome(False, verified.reason, verified.message, commit.sha), commit, None,
                                    verified, self.work.started)
        job_manifests: Mapping[str, JobManifest] | None = None
        if previous is not None and previous.template is not None and previous.commit is not None \
                and previous.commit.sha == commit.sha:
            template = previous.template  # a commit's file never changes: parsed once
            if set(previous.job_manifests) == set(sub.job_paths):
                job_manifests = previous.job_manifests
        else:
            try:
                template = parse_source(got, namespace=sub.release[0])
            except ManifestError as exc:
                return SourceResult(Outcome(False, exc.reason, f"commit {commit.short_sha}: {exc.message}", commit.sha),
                                    commit, None, verified, self.work.started)
        if job_manifests is None:
            assert not isinstance(credentials, SourceError)
            try:
                job_manifests = self.job_manifests(sub, commit, credentials)
            except JobManifestError as exc:
                return SourceResult(Outcome(False, exc.reason, f"commit {commit.short_sha}: {exc.message}", commit.sha),
                                    commit, None, verified, self.work.started)
        message = f"commit {commit.short_sha} ({commit.summary!r}) on {sub.ref.describe()} of {sub.path}"
        return SourceResult(Outcome(True, "Fetched", message, commit.sha), commit, template, verified,
                            self.work.started, job_manifests)

    def job_manifests(self, sub: Subscription, commit: CommitInfo,
                      credentials: Credentials | None) -> dict[str, JobManifest]:
        """The Job manifests ``sub`` names, read at ``commit`` (from the mirror the manifest came from)."""
        manifests: dict[str, JobManifest] = {}
        for path in sub.job_paths:
            try:
                snap = self.owner.source.read(sub.url, commit.sha, path, credentials=credentials)
            except SourceError as exc:  # the hint of a git error is about spec.source.path: not this file's
                raise JobManifestError(f"the Job manifest {path!r} cannot be read: "
                                       f"{exc.message.split('; ')[0].rstrip('.')}.") from None
            manifests[path] = parse_job_manifest(snap.content, namespace=sub.release[0], path=path)
        return manifests

    def credentials(self, sub: Subscription) -> Credentials | SourceError | None:
        """Git credentials from the Secret named in spec.source.secretRef, read on every run (rotation)."""
        if not self._credentials_read:
            self._credentials_read = True
            self._credentials = self._read_credentials(sub)
        return self._credentials

    def _read_credentials(self, sub: Subscription) -> Credentials | SourceError | None:
        namespace, name = sub.release[0], sub.secret
        if name is None:
            return None
        try:
            data = self.owner.secrets.read_secret(namespace, name)
        except Exception as exc:  # the API server is unreachable or refuses: retried on the next check
            return SourceError("FetchFailed", f"Cannot read the git Secret {name!r} (spec.source.secretRef): "
                                              f"{type(exc).__name__}; retried on the next check")
        if data is None:
            return SourceError("SecretNotFound", f"Secret {name!r} (spec.source.secretRef) does not exist in "
                                                 f"namespace {namespace!r}; create it")
        try:
            return Credentials.from_secret_data(data)
        except SourceError as exc:
            return exc

    def snapshot(self, sub: Subscription, credentials: Credentials | None) -> Snapshot | SourceError:
        key = (sub.url, sub.ref, sub.path)
        if key not in self._snapshots:
            try:
                snap = self.owner.source.snapshot(sub.url, sub.ref, sub.path, credentials=credentials,
                                                  not_before=self.work.not_before)
            except SourceError as exc:
                self._snapshots[key] = exc
            else:
                self._snapshots[key] = snap
                refreshed = _refreshed_at(snap)
                if refreshed is not None:
                    self.refreshed_at = max(refreshed, self.refreshed_at or refreshed)
        return self._snapshots[key]

    def verify(self, sub: Subscription, commit: CommitInfo, credentials: Credentials | None) -> Outcome:
        """Is the commit signed by a key in the trusted-keys Secret? (cached per commit and key set)"""
        assert sub.verify_secret is not None
        namespace, name = sub.release[0], sub.verify_secret
        if (namespace, name) not in self._trusted:
            try:
                self._trusted[(namespace, name)] = self.owner.secrets.read_secret(namespace, name)
            except Exception as exc:  # retried on the next check, never cached
                return Outcome(False, "VerifierUnavailable", f"Cannot read the trusted keys Secret {name!r} "
                                                             f"(spec.source.verify.secretRef): {type(exc).__name__}",
                               commit.sha)
        data = self._trusted[(namespace, name)]
        if data is None:
            return Outcome(False, "SecretNotFound", f"Secret {name!r} (spec.source.verify.secretRef) does "
                                                    f"not exist in namespace {namespace!r}", commit.sha)
        cache_key = (commit.sha, keys_fingerprint(data))
        verdicts = self.work.verdicts
        if cache_key not in verdicts:
            try:
                signature = self.owner.source.signature(sub.url, commit.sha, credentials=credentials)
                verdict = self.owner.verifier.verify(commit.sha, signature, data, secret_name=name)
            except (VerifyError, SourceError) as exc:  # unusable keys, gpg/ssh-keygen missing or hung: not cached
                return exc.outcome(commit.sha)
            verdicts[cache_key] = verdict
        return verdicts[cache_key]


def _refreshed_at(snapshot: Snapshot) -> float | None:
    """When the mirror behind ``snapshot`` last contacted the remote (None: this process never did)."""
    value = getattr(snapshot, "refreshed_at", None)
    if isinstance(value, int | float) and value > 0:
        return float(value)
    return None


def keys_fingerprint(data: Mapping[str, bytes]) -> str:
    """Identity of a trusted-keys Secret's content (a rotated key set is verified again)."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key] + b"\0")
    return digest.hexdigest()
