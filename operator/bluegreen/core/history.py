"""The bounded release history kept in status: one entry per release attempt, newest first. Pure.

An entry starts ``InProgress`` when a colour is applied, a scaled-down colour is scaled up for the commit, or
a failed commit is retried, and ends ``Succeeded`` (switched to), ``RolledBack`` (switched to a colour brought
up for an earlier commit: a revert, warm or cold; or switched back after a failed post-promotion check or an
abort after the switch), ``Failed`` (a pre-promotion check failed), ``Aborted`` (aborted before the switch),
``Abandoned`` (missed its progress deadline) or ``Superseded`` (a newer release started first). An entry's
``reason`` says why it ended so. A warm rollback starts and ends in the one switch. A failed expand migration
brings nothing up, so no step writes: the step that reports it (``MigrationFailed``) makes one ``Failed`` entry
per failed run (it starts when that run's Job was created). At most ``MAX_ENTRIES`` are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bluegreen.core.migrations import MIGRATION_FAILED
from bluegreen.core.planner import Action, MarkReason, Plan
from bluegreen.core.timestamps import format_time

MAX_ENTRIES = 20
IN_PROGRESS = "InProgress"
COLD_ROLLBACK = "ColdRollback"
STARTING_SCALES = frozenset({COLD_ROLLBACK, "Retry"})
"""Scale-ups that begin a release: a scaled-down colour brought back (a cold revert, or an abandoned template
tried again by a new commit)."""


def record(history: Sequence[Mapping[str, Any]], step: Plan, *, commit: str, summary: str, author: str,
           now: datetime) -> list[dict[str, Any]]:
    """History after performing ``step`` for ``commit``; unchanged for steps that are not release milestones."""
    entries = [dict(e) for e in history]
    stamp = format_time(now)
    starts = step.action in (Action.APPLY, Action.RETRY) or (
        step.action is Action.SCALE and step.reason in STARTING_SCALES)
    if starts:
        _finish_open(entries, "Superseded", stamp)
        entries.insert(0, {"revision": commit, "message": summary, "author": author, "color": str(step.color),
                           "startedAt": stamp, "outcome": IN_PROGRESS, "reason": step.reason})
    elif step.action is Action.SWITCH and step.reason in ("Promote", "Rollback"):
        entry = _open_entry(entries, commit)
        cold = entry is not None and entry.get("reason") == COLD_ROLLBACK
        outcome = "RolledBack" if step.reason == "Rollback" or cold else "Succeeded"
        if entry is None:  # a warm rollback: nothing was started, the selector just moved back
            _finish_open(entries, "Superseded", stamp)
            entries.insert(0, {"revision": commit, "message": summary, "author": author, "color": str(step.color),
                               "startedAt": stamp, "finishedAt": stamp, "outcome": outcome, "reason": step.reason})
        else:
            entry.update(finishedAt=stamp, outcome=outcome, color=str(step.color), reason=step.reason)
    elif step.action in (Action.ABANDON, Action.FAIL):
        entry = _open_entry(entries, commit)
        if entry is not None:
            outcome = {Action.ABANDON: "Abandoned", Action.FAIL: "Failed"}[step.action]
            entry.update(finishedAt=stamp, outcome="Aborted" if step.mark == MarkReason.ABORTED else outcome,
                         reason=step.reason)
    elif step.reason == MIGRATION_FAILED and step.migration is not None:
        _expand_failed(entries, step, commit=commit, summary=summary, author=author, stamp=stamp)
    elif step.action is Action.ROLLBACK:
        assert step.color is not None  # the colour switched back to
        entry = next((e for e in entries if e.get("revision") == commit), None)
        if entry is None:
            entry = {"revision": commit, "message": summary, "author": author, "color": str(step.color.other),
                     "startedAt": stamp}
            entries.insert(0, entry)
        entry.update(finishedAt=stamp, outcome="RolledBack", reason=step.reason)
    return entries[:MAX_ENTRIES]


def _expand_failed(entries: list[dict[str, Any]], step: Plan, *, commit: str, summary: str, author: str,
                   stamp: str) -> None:
    """One ``Failed`` entry per failed expand run: none more while the same failure is reported again."""
    assert step.migration is not None
    started = format_time(step.migration.started_at) if step.migration.started_at else stamp
    if entries and (entries[0].get("revision"), entries[0].get("outcome"), entries[0].get("reason"),
                    entries[0].get("startedAt")) == (commit, "Failed", MIGRATION_FAILED, started):
        return
    entry = _open_entry(entries, commit)
    if entry is None:
        _finish_open(entries, "Superseded", stamp)
        entry = {"revision": commit, "message": summary, "author": author, "color": str(step.migration.color)}
        entries.insert(0, entry)
    entry.update(startedAt=started, finishedAt=stamp, outcome="Failed", reason=MIGRATION_FAILED)


def _open_entry(entries: list[dict[str, Any]], commit: str) -> dict[str, Any] | None:
    for entry in entries:
        if entry.get("outcome") == IN_PROGRESS and entry.get("revision") == commit:
            return entry
    return None


def _finish_open(entries: list[dict[str, Any]], outcome: str, stamp: str) -> None:
    for entry in entries:
        if entry.get("outcome") == IN_PROGRESS:
            entry.update(finishedAt=stamp, outcome=outcome)
