"""What the reconciler remembers about one release between passes: a cache, re-read after a restart."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bluegreen.core.commits import CommitInfo
from bluegreen.core.desired import DesiredTemplate
from bluegreen.core.errors import Outcome
from bluegreen.core.hook_jobs import JobManifest

NOT_FETCHED = "NotFetched"


@dataclass
class Memory:
    """What the reconciler remembers about one release between passes."""

    source: Outcome = field(default_factory=lambda: Outcome(False, NOT_FETCHED, "git not read yet"))
    """The latest look at git adopted from the fetch scheduler (``NotFetched`` until the first one)."""
    commit: CommitInfo | None = None
    template: DesiredTemplate | None = None
    job_manifests: Mapping[str, JobManifest] = field(default_factory=dict)
    """The hook Job manifests of ``commit`` by path, parsed (empty when the release names none)."""
    verified: Outcome | None = None  # outcome of signature verification (spec.source.verify set)
    checked_at: float | None = None  # monotonic: when the check behind ``source`` started
    waiting_since: float | None = None  # monotonic: when a pass first found no git result at all
    passed_at: float | None = None  # monotonic: when the source step last ran
    reconcile_token: str | None = None
    suspended: bool = False
    last_status: dict[str, Any] | None = None
    last_notice: tuple[str, str] | None = None
    handled: dict[str, str] = field(default_factory=dict)
    """promote/abort/retry annotations handled (annotation -> value), ignored until the release is seen without
    them (the removal's watch event may arrive after the next pass began)."""
    candidate: tuple[str, str] | None = None
    """(commit, colour) whose checks matter now; another one cancels the runs of the one before."""
    checks: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """The candidate's latest check results as ``status.checks`` entries, by (hook, name)."""
    awaiting: tuple[str, str] | None = None
    """(commit, colour) last announced as waiting for a promote."""
    lock: threading.Lock = field(default_factory=threading.Lock)
