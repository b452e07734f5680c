"""What happened to a release between two looks at its status: releases that ended, switches, check verdicts.
Pure (no Prometheus here).

The operator's status keeps the last 20 releases (``status.history``, see ``bluegreen.core.history``) and the
current candidate's checks (``status.checks``). Comparing what ended in one look with what had ended in the
one before says what just happened, whichever pass, restart or watch event delivered it, and a status seen
twice counts once. The first look at a release (at start-up, or when it is created) only takes note:
what ended before this process was watching is not counted again.

A history entry ends with an outcome; one that ended with a selector switch (``reason`` ``Promote`` or
``Rollback``: a release promoted, a ``git revert`` switched back to) is also a *switch*, the moment its
commit reached traffic. An entry can reach two outcomes: ``Succeeded`` at the switch, then ``RolledBack``
when a post-promotion check fails or an abort follows; each is counted when it happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

OUTCOMES: Final = ("Succeeded", "RolledBack", "Failed", "Aborted", "Abandoned", "Superseded")
"""Every outcome an entry of ``status.history`` ends with (``InProgress`` is not an end)."""
SWITCH_REASONS: Final = frozenset({"Promote", "Rollback"})
"""The ``reason`` of an entry that ended with a selector switch to its commit (``core.history.record``)."""
VERDICTS: Final = ("Passed", "Failed")
"""The verdicts of a check that is over (``Running`` is not)."""

EntryKey = tuple[str, str, str]
"""(revision, startedAt, outcome) of a history entry."""
CheckKey = tuple[str, str, str, str, str, str]
"""(hook, name, commit, colour, startedAt, verdict) of a ``status.checks`` entry."""


@dataclass(frozen=True)
class Switch:
    """A history entry that ended with the Service switched to ``color``, running ``commit``."""

    color: str
    commit: str
    outcome: str


@dataclass(frozen=True)
class CheckVerdict:
    hook: str
    check: str
    verdict: str


@dataclass(frozen=True)
class Changes:
    """What happened since the previous look."""

    outcomes: tuple[str, ...] = ()
    switches: tuple[Switch, ...] = ()
    verdicts: tuple[CheckVerdict, ...] = ()


@dataclass(frozen=True)
class Look:
    """What had ended at one look at a release's status."""

    version: str = ""
    """The release's resourceVersion then."""
    ended: frozenset[EntryKey] = field(default_factory=frozenset)
    decided: frozenset[CheckKey] = field(default_factory=frozenset)


def ended_entries(history: object) -> dict[EntryKey, Mapping[str, Any]]:
    """The entries of ``status.history`` that have ended, by key."""
    found: dict[EntryKey, Mapping[str, Any]] = {}
    for entry in _mappings(history):
        outcome = str(entry.get("outcome") or "")
        if outcome in OUTCOMES:
            found[(str(entry.get("revision") or ""), str(entry.get("startedAt") or ""), outcome)] = entry
    return found


def decided_checks(checks: object) -> dict[CheckKey, Mapping[str, Any]]:
    """The entries of ``status.checks`` with a verdict, by key."""
    found: dict[CheckKey, Mapping[str, Any]] = {}
    for entry in _mappings(checks):
        verdict = str(entry.get("verdict") or "")
        if verdict in VERDICTS:
            hook, name, commit, color, started = (str(entry.get(k) or "") for k in
                                                  ("hook", "name", "commit", "color", "startedAt"))
            found[(hook, name, commit, color, started, verdict)] = entry
    return found


def newer(version: str, than: str) -> bool:
    """Is resourceVersion ``version`` at least as new as ``than``? (Not comparable, e.g. empty: yes.)"""
    try:
        return int(version) >= int(than)
    except ValueError:
        return True


def follow(before: Look | None, status: Mapping[str, Any], version: str) -> tuple[Look, Changes] | None:
    """The look at ``status`` (of resourceVersion ``version``) and what changed since ``before``; None when this
    status is older than the one ``before`` saw (a watch event that arrives after a newer status patch)."""
    if before is not None and not newer(version, before.version):
        return None
    ended = ended_entries(status.get("history"))
    decided = decided_checks(status.get("checks"))
    # What left the bounded history (or the candidate's checks) never comes back, so only what this status
    # shows is kept: memory stays bounded by the status itself.
    look = Look(version, frozenset(ended), frozenset(decided))
    if before is None:
        return look, Changes()
    new_entries = [entry for key, entry in ended.items() if key not in before.ended]
    new_checks = [(key, entry) for key, entry in decided.items() if key not in before.decided]
    changes = Changes(
        outcomes=tuple(str(entry["outcome"]) for entry in new_entries),
        switches=tuple(Switch(str(entry.get("color") or ""), str(entry.get("revision") or ""), str(entry["outcome"]))
                       for entry in new_entries if entry.get("reason") in SWITCH_REASONS),
        verdicts=tuple(CheckVerdict(key[0], key[1], key[5]) for key, _ in new_checks),
    )
    return look, changes


def info_labels(status: Mapping[str, Any]) -> tuple[str, str, str]:
    """(active colour, revision, phase) of ``bluegreen_release_info``; empty strings for what is not known."""
    return (str(status.get("activeColor") or ""), str(status.get("activeRevision") or ""),
            str(status.get("phase") or ""))


def conditions(status: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """(type, status) of each condition of the release."""
    return frozenset((str(c.get("type")), str(c.get("status"))) for c in _mappings(status.get("conditions"))
                     if c.get("type"))


def _mappings(items: object) -> Iterable[Mapping[str, Any]]:
    if not isinstance(items, list):
        return ()
    return (item for item in items if isinstance(item, Mapping))
