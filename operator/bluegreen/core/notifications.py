"""Release notifications, derived from the release's status history (``bluegreen.core.history``). Pure.

``announce(release, before, after)`` compares the history of a status before and after one status write and
returns what the write announces, oldest entry first. An entry is matched across the two by its revision and
``startedAt`` (which ``history.record`` never changes); the move of its outcome decides:

=============================  =====================  ==================================================
before                         after                  announced
=============================  =====================  ==================================================
absent                         InProgress             Started
absent                         Succeeded              Started, Promoted (applied and switched in one pass)
absent                         RolledBack             RolledBack (a warm rollback: nothing was started)
absent                         Failed/Aborted/        Failed (e.g. a migration that failed before any
                               Abandoned              colour was touched)
InProgress                     Succeeded              Promoted
InProgress                     RolledBack             RolledBack (a cold rollback, switched)
InProgress                     Failed/Aborted/        Failed
                               Abandoned
Succeeded                      RolledBack             RolledBack (a post-promotion check failed, or an
                                                      abort after the switch: switched back)
any                            Superseded             nothing
=============================  =====================  ==================================================

Anything else (an unchanged entry, an entry trimmed from the bounded history, an unknown outcome) announces
nothing, so a status written twice, or first seen after a restart, announces nothing again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bluegreen.core.notify_spec import NotifyEvent
from bluegreen.core.spec import ReleaseRef
from bluegreen.core.timestamps import parse_time

SHORT_SHA = 12
"""Hex digits of the short commit id (as in the status messages and ``bluegreen history``)."""
FAILED_OUTCOMES = frozenset({"Failed", "Aborted", "Abandoned"})
STARTED, PROMOTED, ROLLED_BACK, FAILED = (NotifyEvent.STARTED, NotifyEvent.PROMOTED, NotifyEvent.ROLLED_BACK,
                                          NotifyEvent.FAILED)


@dataclass(frozen=True)
class Notification:
    """One announcement about one history entry of a release."""

    event: NotifyEvent
    release: ReleaseRef
    revision: str
    """The full commit id."""
    author: str
    message: str
    """The commit's summary line."""
    color: str | None
    """The colour that runs the commit (for a rollback after the switch: the colour switched away from)."""
    active_color: str | None
    """The colour the Service selects after the write."""
    outcome: str
    """The entry's outcome after the write (``InProgress`` for Started)."""
    reason: str
    """Why the entry started (Started: ``NewRelease``, ``ColdRollback``, ``Retry``; empty when it also finished in
    the same write) or ended so (e.g. ``Promote``, ``Rollback``, ``PrePromotionCheckFailed``)."""
    detail: str
    """What went wrong, for Failed and RolledBack: the ``Stalled`` condition's message when it names the entry's
    reason; else empty."""
    started_at: str | None
    finished_at: str | None

    @property
    def short_revision(self) -> str:
        return self.revision[:SHORT_SHA]

    @property
    def id(self) -> str:
        """The same for every attempt of this notification, unique to the release (its uid), entry and event:
        receivers can drop duplicates by it."""
        identity = "\0".join((self.release.uid or str(self.release), self.revision, self.started_at or "",
                              str(self.event)))
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    @property
    def duration_seconds(self) -> int | None:
        """From the start of the release to its switch or its end (None for Started, or when unknown)."""
        started, finished = parse_time(self.started_at), parse_time(self.finished_at)
        if self.event is STARTED or started is None or finished is None:
            return None
        return max(0, int((finished - started).total_seconds()))


def announce(release: ReleaseRef, before: Mapping[str, Any] | None,
             after: Mapping[str, Any]) -> list[Notification]:
    """What writing the status ``after`` over ``before`` (the status the pass started from) announces."""
    previous = _by_identity(_history(before))
    found: list[Notification] = []
    seen: dict[tuple[str, str], int] = {}
    for entry in reversed(_history(after)):
        identity = _identity(entry)
        occurrence = seen[identity] = seen.get(identity, -1) + 1
        matches = previous.get(identity, [])
        old = matches[occurrence] if occurrence < len(matches) else None
        for event in transition(old.get("outcome") if old is not None else None, entry.get("outcome")):
            found.append(_notification(event, release, entry, after))
    return found


def transition(before: object, after: object) -> tuple[NotifyEvent, ...]:
    """The events of an entry's outcome moving from ``before`` (None: the entry is new) to ``after``."""
    if before == after:
        return ()
    if before is None:
        if after == "InProgress":
            return (STARTED,)
        if after == "Succeeded":
            return STARTED, PROMOTED
        if after == "RolledBack":
            return (ROLLED_BACK,)
        return (FAILED,) if after in FAILED_OUTCOMES else ()
    if before == "InProgress":
        if after == "Succeeded":
            return (PROMOTED,)
        if after == "RolledBack":
            return (ROLLED_BACK,)
        return (FAILED,) if after in FAILED_OUTCOMES else ()
    if before == "Succeeded" and after == "RolledBack":
        return (ROLLED_BACK,)
    return ()


def _history(status: Mapping[str, Any] | None) -> Sequence[Mapping[str, Any]]:
    history = (status or {}).get("history")
    return [entry for entry in history if isinstance(entry, Mapping)] if isinstance(history, list) else []


def _identity(entry: Mapping[str, Any]) -> tuple[str, str]:
    return str(entry.get("revision") or ""), str(entry.get("startedAt") or "")


def _by_identity(history: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Entries by identity, oldest first (the history is newest first)."""
    found: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for entry in reversed(history):
        found.setdefault(_identity(entry), []).append(entry)
    return found


def _notification(event: NotifyEvent, release: ReleaseRef, entry: Mapping[str, Any],
                  status: Mapping[str, Any]) -> Notification:
    reason = str(entry.get("reason") or "")
    outcome = "InProgress" if event is STARTED else str(entry.get("outcome") or "")
    finished = entry.get("finishedAt") if event is not STARTED else None
    active = status.get("activeColor")
    return Notification(
        event=event, release=release, revision=str(entry.get("revision") or ""),
        author=str(entry.get("author") or ""), message=str(entry.get("message") or ""),
        color=str(entry["color"]) if entry.get("color") else None,
        active_color=str(active) if active else None, outcome=outcome,
        reason=reason if event is not STARTED or entry.get("outcome") == "InProgress" else "",
        detail=_detail(event, reason, status), started_at=_text(entry.get("startedAt")), finished_at=_text(finished))


def _detail(event: NotifyEvent, reason: str, status: Mapping[str, Any]) -> str:
    if event not in (FAILED, ROLLED_BACK) or not reason:
        return ""
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Stalled" \
                and condition.get("status") == "True" and condition.get("reason") == reason:
            return str(condition.get("message") or "")
    return ""


def _text(value: object) -> str | None:
    return str(value) if value else None
