"""What the reconciler remembers about one release between passes: a cache, re-read after a restart."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from bluegreen.core.commits import CommitInfo
from bluegreen.core.desired import DesiredTemplate
from bluegreen.core.errors import Outcome
from bluegreen.core.spec import GitRef


@dataclass
class Memory:
    """What the reconciler remembers about one release between passes."""

    source_key: tuple[str, GitRef, str] | None = None
    fetched_at: float | None = None  # monotonic
    source: Outcome = field(default_factory=lambda: Outcome(False, "NotFetched", "git not read yet"))
    commit: CommitInfo | None = None
    template: DesiredTemplate | None = None
    reconcile_token: str | None = None
    suspended: bool = False
    check_requested_at: float | None = None  # monotonic time of a push webhook asking for a check
    verified: Outcome | None = None  # outcome of signature verification (spec.source.verify set)
    verdicts: dict[tuple[str, str], Outcome] = field(default_factory=dict)  # (commit, keys) -> outcome
    last_status: dict[str, Any] | None = None
    last_notice: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
