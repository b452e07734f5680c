"""Status conditions from a plan and the latest look at git, the kstatus way. Pure.

``Ready`` (normal-true): the colour the Service selects runs the manifest of the latest good commit and git
was read cleanly; ``kubectl wait --for=condition=Ready`` returns once the new colour serves.
``Reconciling`` (abnormal-true): a release, a rollback or a scale-down is under way (``Plan.reconciling``:
a step that writes, waiting for a colour to become available, checks running, a wait for a promote), or git
is being retried / not read yet.
``Stalled`` (abnormal-true): nothing more happens without a change: an invalid spec, a broken or untrusted
commit, an abandoned, failed (a check) or aborted commit, a missing Service, a Deployment that is not ours.
``SourceReady``: the latest look at git; ``SourceVerified``: the commit's signature (``spec.source.verify``).
Each carries ``observedGeneration``; ``lastTransitionTime`` moves only when its status changes.
docs/conditions.md maps them to kstatus (Flux, kpt) and Argo CD health.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bluegreen.core.errors import Outcome
from bluegreen.core.planner import Phase, Plan
from bluegreen.core.timestamps import format_time

# Source failures that a retry may cure; everything else needs a change in git or in the spec.
TRANSIENT_SOURCE_REASONS = frozenset({"RepositoryUnreachable", "FetchFailed", "VerifierUnavailable"})
NOT_FETCHED = "NotFetched"
"""The reason of the source outcome before git was first read."""
NOT_STALLED = ("False", "NotStalled", "no error needs attention")

Row = tuple[str, str, str]  # (status, reason, message)


def is_transient(source: Outcome) -> bool:
    """A failed look at git that a retry may cure (the last good manifest is kept meanwhile)."""
    return not source.ok and source.reason in TRANSIENT_SOURCE_REASONS


def source_pending(source: Outcome) -> bool:
    """Git is being retried (a transient failure) or was not read yet: the operator is still working on it."""
    return is_transient(source) or (not source.ok and source.reason == NOT_FETCHED)


def source_stalls(source: Outcome) -> bool:
    """A failure of git, the manifest or the signature that only a change (a commit, the spec) can cure."""
    return not source.ok and not source_pending(source)


def condition_rows(step: Plan, source: Outcome, verified: Outcome | None = None) -> list[tuple[str, Row]]:
    """(type, (status, reason, message)) of every condition for ``step`` and the latest ``source`` outcome."""
    suspended = step.phase is Phase.SUSPENDED
    source_failed = not source.ok and not suspended
    if source_failed:
        ready: Row = ("False", source.reason, f"{source.message} ({_serving(step)})")
    else:
        ready = ("True" if step.serving else "False", step.reason, step.message)
    if step.stalled:
        stalled: Row = ("True", step.reason, step.message)
    elif source_failed and source_stalls(source):
        stalled = ("True", source.reason, source.message)
    else:
        stalled = NOT_STALLED
    if step.reconciling:
        reconciling: Row = ("True", step.reason, step.message)
    elif source_failed and source_pending(source) and not step.stalled:
        reconciling = ("True", source.reason, f"{source.message}; retrying ({_serving(step)})")
    else:
        reconciling = ("False", step.reason, step.message)
    rows = [("Ready", ready), ("Reconciling", reconciling), ("Stalled", stalled),
            ("SourceReady", ("True" if source.ok else "False", source.reason, source.message))]
    if verified is not None:
        rows.append(("SourceVerified", ("True" if verified.ok else "False", verified.reason, verified.message)))
    return rows


def build_conditions(step: Plan, source: Outcome, generation: int, previous: Sequence[Mapping[str, Any]],
                     now: datetime, *, verified: Outcome | None = None) -> list[dict[str, Any]]:
    """The conditions for this pass (SourceVerified only when signatures are checked), each stamped with
    ``generation``; ``lastTransitionTime`` is kept from ``previous`` unless the condition's status changed."""
    return stamp_conditions(condition_rows(step, source, verified), generation, previous, now)


def stamp_conditions(rows: Sequence[tuple[str, Row]], generation: int, previous: Sequence[Mapping[str, Any]],
                     now: datetime) -> list[dict[str, Any]]:
    """Conditions from ``rows``: ``lastTransitionTime`` from ``previous`` while the status stays, else ``now``."""
    old = {c.get("type"): c for c in previous}
    stamp = format_time(now)
    conditions = []
    for kind, (status, reason, message) in rows:
        before = old.get(kind)
        since = before.get("lastTransitionTime") if before and before.get("status") == status else None
        conditions.append({"type": kind, "status": status, "reason": reason, "message": message,
                           "lastTransitionTime": since or stamp, "observedGeneration": generation})
    return conditions


def _serving(step: Plan) -> str:
    return f"{step.active} keeps serving" if step.active else "nothing was released yet"
