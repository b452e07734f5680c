"""Status conditions (kstatus style: Ready, Progressing, Stalled, SourceReady) from a plan. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bluegreen.core.errors import Outcome
from bluegreen.core.planner import Action, Phase, Plan
from bluegreen.core.timestamps import format_time

# Source failures that a retry may cure; everything else needs a change in git or in the spec.
TRANSIENT_SOURCE_REASONS = frozenset({"RepositoryUnreachable", "FetchFailed", "VerifierUnavailable"})
SETTLED_REASONS = frozenset({"Released", "PreviousColorWarm"})


def is_transient(source: Outcome) -> bool:
    """A failed look at git that a retry may cure (the last good manifest is kept meanwhile)."""
    return not source.ok and source.reason in TRANSIENT_SOURCE_REASONS


def build_conditions(step: Plan, source: Outcome, generation: int, previous: Sequence[Mapping[str, Any]],
                     now: datetime, *, verified: Outcome | None = None) -> list[dict[str, Any]]:
    """The conditions for this pass (SourceVerified only when signatures are checked); lastTransitionTime moves
    only when a condition's status changes."""
    settled = step.action in (Action.NONE, Action.WAIT) and step.reason in SETTLED_REASONS
    suspended = step.phase is Phase.SUSPENDED
    if not source.ok and not suspended:
        ready = ("False", source.reason, f"{source.message} ({_serving(step)})")
    elif settled:
        ready = ("True", step.reason, step.message)
    else:
        ready = ("False", step.reason, step.message)
    stalled_by_source = not source.ok and not is_transient(source) and not suspended
    if step.stalled:
        stalled = ("True", step.reason, step.message)
    elif stalled_by_source:
        stalled = ("True", source.reason, source.message)
    else:
        stalled = ("False", "NotStalled", "no error needs attention")
    progressing = ("True", step.reason, step.message) if step.phase is Phase.PROGRESSING and not step.stalled \
        else ("False", step.reason, step.message)
    source_ready = ("True" if source.ok else "False", source.reason, source.message)
    table = [("Ready", ready), ("Progressing", progressing), ("Stalled", stalled), ("SourceReady", source_ready)]
    if verified is not None:
        table.append(("SourceVerified", ("True" if verified.ok else "False", verified.reason, verified.message)))

    old = {c.get("type"): c for c in previous}
    stamp = format_time(now)
    conditions = []
    for kind, (status, reason, message) in table:
        before = old.get(kind)
        since = before["lastTransitionTime"] if before and before.get("status") == status and \
            before.get("lastTransitionTime") else stamp
        conditions.append({"type": kind, "status": status, "reason": reason, "message": message,
                           "lastTransitionTime": since, "observedGeneration": generation})
    return conditions


def _serving(step: Plan) -> str:
    return f"{step.active} keeps serving" if step.active else "nothing was released yet"
