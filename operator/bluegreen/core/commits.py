"""What a git source hands the reconciler: a commit and one file's bytes at it, or a directory's files. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
    """One file's bytes at one commit, or the files of one directory."""

    commit: CommitInfo
    path: str
    """Normalized, relative to the repository root (``a/b.yaml``, or ``a/b`` for a directory)."""
    content: bytes
    """The file's bytes (empty for a directory)."""
    files: tuple[tuple[str, bytes], ...] | None = None
    """For a directory: its manifest files (``.yaml``/``.yml`` directly inside it), (repository path, bytes) by
    name; None when ``path`` is a file."""

    @property
    def refreshed_at(self) -> float:
        """``commit.refreshed_at``: when the mirror last contacted the remote."""
        return self.commit.refreshed_at
