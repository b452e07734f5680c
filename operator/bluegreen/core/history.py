"""The bounded release history kept in status: one entry per release attempt, newest first. Pure.

An entry starts ``InProgress`` when a colour is applied or a scaled-down colour is scaled up for the commit,
and ends ``Succeeded`` (switched to), ``RolledBack`` (switched to a colour brought up for an earlier commit:
a revert), ``Abandoned`` (missed its progress deadline) or ``Superseded`` (a newer release started first).
A warm rollback starts and ends in the one switch. At most ``MAX_ENTRIES`` are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bluegreen.core.planner import Action, Plan
from bluegreen.core.timestamps import format_time

MAX_ENTRIES = 20
IN_PROGRESS = "InProgress"
STARTING_SCALES = frozenset({"ColdRollback", "Retry"})
"""Scale-ups that begin a release: a scaled-down colour brought back (a cold revert, or an abandoned template
tried again by a new commit)."""


def record(history: Sequence[Mapping[str, Any]], step: Plan, *, commit: str, summary: str, author: str,
           now: datetime) -> list[dict[str, Any]]:
    """History after performing ``step`` for ``commit``; unchanged for steps that are not release milestones."""
    entries = [dict(e) for e in history]
    stamp = format_time(now)
    starts = step.action is Action.APPLY or (step.action is Action.SCALE and step.reason in STARTING_SCALES)
    if starts:
        _finish_open(entries, "Superseded", stamp)
        entries.insert(0, {"revision": commit, "message": summary, "author": author, "color": str(step.color),
                           "startedAt": stamp, "outcome": IN_PROGRESS})
    elif step.action is Action.SWITCH and step.reason in ("Promote", "Rollback"):
        outcome = "RolledBack" if step.reason == "Rollback" else "Succeeded"
        entry = _open_entry(entries, commit)
        if entry is None:  # a warm rollback: nothing was started, the selector just moved back
            _finish_open(entries, "Superseded", stamp)
            entries.insert(0, {"revision": commit, "message": summary, "author": author, "color": str(step.color),
                               "startedAt": stamp, "finishedAt": stamp, "outcome": outcome})
        else:
            entry.update(finishedAt=stamp, outcome=outcome, color=str(step.color))
    elif step.action is Action.ABANDON:
        entry = _open_entry(entries, commit)
        if entry is not None:
            entry.update(finishedAt=stamp, outcome="Abandoned")
    return entries[:MAX_ENTRIES]


def _open_entry(entries: list[dict[str, Any]], commit: str) -> dict[str, Any] | None:
    for entry in entries:
        if entry.get("outcome") == IN_PROGRESS and entry.get("revision") == commit:
            return entry
    return None


def _finish_open(entries: list[dict[str, Any]], outcome: str, stamp: str) -> None:
    for entry in entries:
        if entry.get("outcome") == IN_PROGRESS:
            entry.update(finishedAt=stamp, outcome=outcome)

