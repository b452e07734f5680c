"""Status conditions (kstatus style: Ready, Progressing, Stalled, SourceReady) from a plan. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bluegreen.core.planner import Action, Phase, Plan

# Source failures that a retry may cure; everything else needs a change in git or in the spec.
TRANSIENT_SOURCE_REASONS = frozenset({"RepositoryUnreachable", "FetchFailed", "VerifierUnavailable"})
SETTLED_REASONS = frozenset({"Released", "PreviousColorWarm"})


@dataclass(frozen=True)
class SourceStatus:
    """Outcome of the latest look at git: a commit and its manifest, or why there is none."""

    ok: bool
    reason: str
    message: str
    commit: str | None = None

    @property
    def transient(self) -> bool:
        return not self.ok and self.reason in TRANSIENT_SOURCE_REASONS


def build_conditions(step: Plan, source: SourceStatus, generation: int, previous: Sequence[Mapping[str, Any]],
                     now: datetime, *, verified: SourceStatus | None = None) -> list[dict[str, Any]]:
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
    stalled_by_source = not source.ok and not source.transient and not suspended
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
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
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
