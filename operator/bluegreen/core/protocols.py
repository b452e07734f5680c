"""The ports the reconciler is written against: the cluster, the git source and the signature verifier.

The adapters implement them (``bluegreen.kube.cluster.KubeCluster``, ``bluegreen.git.source.GitSource``,
``bluegreen.verify.verifier.CommitVerifier``); tests use fakes. Only core types cross them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bluegreen.core.commits import Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import Outcome
from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import Color, GitRef, ReleaseRef


class Cluster(Protocol):
    """Reads of what the planner needs, the writes of its actions, status and Events. Raises ``ClusterError``."""

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def color_state(self, release: ReleaseRef, color: Color) -> ColorState: ...
    def service_state(self, namespace: str, name: str) -> ServiceState: ...
    def service_address(self, namespace: str, name: str, port: int | None) -> tuple[str, int] | None:
        """A Service's (ClusterIP, port) (``port`` None: its first port); None if unknown."""
        ...
    def color_pods(self, release: ReleaseRef, color: Color) -> int:
        """How many pods of a colour exist (terminating ones included, finished ones not): one LIST request, made
        only when a contract migration waits for the last of them."""
        ...
    def apply_deployment(self, body: Mapping[str, Any]) -> None: ...
    def scale(self, release: ReleaseRef, color: Color, replicas: int,
              annotations: Mapping[str, str | None]) -> None: ...
    def switch_selector(self, namespace: str, service: str, color: Color) -> None: ...
    def patch_status(self, release: ReleaseRef, status: Mapping[str, Any]) -> None: ...
    def annotate_release(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
        """Set (None: remove) annotations of a release: the handled promote/abort/retry requests."""
        ...
    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None: ...


class Source(Protocol):
    """One file at the commit a ref points to, another file of a commit already fetched, and a commit's
    signature. Raises ``SourceError``."""

    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot: ...
    def read(self, url: str, commit_sha: str, path: str, *,
             credentials: Credentials | None = None) -> Snapshot: ...
    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None: ...


class Verifier(Protocol):
    """Is a commit signed by one of the trusted keys in a Secret's data?"""

    def verify(self, commit_sha: str, signature: tuple[bytes, bytes] | None, trusted_keys: Mapping[str, bytes], *,
               secret_name: str) -> Outcome:
        """The verdict (``commit`` set). Raises ``VerifyError`` when the keys are unusable or the verifier
        cannot run: such a result is about the setup, not the commit, and is not cached."""
        ...
