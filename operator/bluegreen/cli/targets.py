"""Which commit ``promote``, ``abort`` and ``retry`` name, read from the release's status, or why the command is
refused up front (pure). The operator checks again when it handles the annotation, for ``kubectl annotate``
users too; these checks only spare a round trip and say clearly what is wrong."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bluegreen.cli.errors import CliError
from bluegreen.core.spec import ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_RETRY

COMMIT_ARGUMENT = re.compile(r"^[0-9a-f]{4,40}$")
MIGRATION_FAILURES = {"MigrationFailed": "expand", "ContractFailed": "contract"}
"""Ready/Stalled reasons of a failed migration of the current commit, and its phase: a retry runs it again."""
FAILURE_REASONS = frozenset({"PrePromotionCheckFailed", "PostPromotionCheckFailed", "Aborted",
                             "ProgressDeadlineExceeded", *MIGRATION_FAILURES})
"""Ready/Stalled reasons that say the current commit is marked failed, aborted or abandoned, or that one of its
migrations failed."""
MARKED_OUTCOMES = frozenset({"Failed", "Aborted", "Abandoned"})
"""History outcomes of a commit that ``retry`` clears."""


@dataclass(frozen=True)
class Target:
    """The annotation to write, the full commit it names, and what it asks of the operator."""

    annotation: str
    commit: str
    asks: str


def commit_argument(text: str | None) -> str | None:
    """``--commit``/``--revision``: 4 to 40 hex digits (a prefix), lowercased; None when not given."""
    if text is None:
        return None
    value = text.strip().lower()
    if not COMMIT_ARGUMENT.fullmatch(value):
        raise CliError(f"{text!r} is not a commit: give 4 to 40 hex digits (a prefix of the sha is enough)")
    return value


def _status(release: dict[str, Any]) -> dict[str, Any]:
    return dict(release.get("status") or {})


def _name(release: dict[str, Any]) -> str:
    meta = release.get("metadata") or {}
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"


def _state(status: dict[str, Any]) -> str:
    phase = status.get("phase") or "unknown"
    return f"phase {phase}" + (f": {status['message']}" if status.get("message") else "")


def awaiting_revision(release: dict[str, Any]) -> str | None:
    """The commit waiting for promotion (``status.awaitingPromotion.revision``), if any."""
    awaiting = _status(release).get("awaitingPromotion") or {}
    revision = awaiting.get("revision")
    return str(revision) if revision else None


def expand(prefix: str, known: Iterable[str | None]) -> str | None:
    """The one known commit starting with ``prefix`` (None if none does); several are ambiguous."""
    matches = sorted({sha for sha in known if sha and sha.lower().startswith(prefix)})
    if len(matches) > 1:
        raise CliError(f"commit {prefix} is ambiguous: {', '.join(m[:12] for m in matches)}; give more hex digits")
    return matches[0] if matches else None


def promote_target(release: dict[str, Any], commit: str | None) -> Target:
    """The commit waiting for promotion; refused when none waits or ``commit`` names another one."""
    status = _status(release)
    waiting = awaiting_revision(release)
    if waiting is None:
        raise CliError(f"nothing waits for promotion in {_name(release)} ({_state(status)})")
    if commit is not None and not waiting.lower().startswith(commit):
        color = (status.get("awaitingPromotion") or {}).get("color") or "the idle colour"
        raise CliError(f"commit {commit} does not wait for promotion in {_name(release)}: commit {waiting[:12]} "
                       f"does, on {color}; promote that one or leave out --commit")
    return Target(ANNOTATION_PROMOTE, waiting, f"switch traffic to commit {waiting[:12]}")


def abort_target(release: dict[str, Any], commit: str | None) -> Target:
    """The commit under way (``lastAttemptedRevision``); refused when the release is Healthy with nothing
    waiting, or ``commit`` names another commit."""
    status = _status(release)
    waiting = awaiting_revision(release)
    under_way = status.get("lastAttemptedRevision") or waiting
    if not under_way or (status.get("phase") == "Healthy" and waiting is None):
        serving = status.get("activeRevision")
        serves = f", commit {serving[:12]} serves" if serving else ""
        raise CliError(f"nothing to abort in {_name(release)}: no release is under way ({_state(status)}{serves})")
    chosen = under_way if commit is None else expand(commit, (under_way, waiting))
    if chosen is None:
        raise CliError(f"commit {commit} is not the release under way in {_name(release)}: commit "
                       f"{under_way[:12]} is; abort that one or leave out --commit")
    return Target(ANNOTATION_ABORT, chosen,
                  f"stop the release of commit {chosen[:12]}: traffic stays on (or goes back to) the previous colour")


def failure_mark(release: dict[str, Any], commit: str) -> str | None:
    """What marks ``commit`` failed, aborted or abandoned in the status (a condition reason or a history
    outcome), or None when nothing visible does."""
    status = _status(release)
    if commit == status.get("lastAttemptedRevision"):
        for item in status.get("conditions") or []:
            if item.get("type") in ("Ready", "Stalled") and item.get("reason") in FAILURE_REASONS:
                return str(item["reason"])
    for entry in status.get("history") or []:
        if entry.get("revision") == commit:
            outcome = entry.get("outcome")
            return str(outcome) if outcome in MARKED_OUTCOMES else None
    return None


def retry_target(release: dict[str, Any], commit: str | None) -> Target:
    """The current commit (``lastAttemptedRevision``) or ``commit``; refused only when the status shows plainly
    that there is nothing to retry: that commit serves and is Ready. When unsure, the annotation is written."""
    status = _status(release)
    current = status.get("lastAttemptedRevision")
    if commit is None:
        if not current:
            raise CliError(f"nothing to retry in {_name(release)}: no commit was read from git yet ({_state(status)})")
        chosen: str = current
    else:
        known = [current, awaiting_revision(release), *(e.get("revision") for e in status.get("history") or [])]
        found = expand(commit, known)
        if found is None and len(commit) < 40:
            raise CliError(f"commit {commit} is not known to {_name(release)} (neither the current commit nor in "
                           "its history); give the full 40-digit sha to retry it anyway")
        chosen = found or commit
    mark = failure_mark(release, chosen)
    if mark in MIGRATION_FAILURES:
        return Target(ANNOTATION_RETRY, chosen, f"run the failed {MIGRATION_FAILURES[mark]} migration of commit "
                                                f"{chosen[:12]} again")
    if mark is not None:
        return Target(ANNOTATION_RETRY, chosen, f"clear the {mark} mark of commit {chosen[:12]} and release it again")
    ready = any(item.get("type") == "Ready" and item.get("status") == "True" for item in status.get("conditions") or [])
    if ready and status.get("activeRevision") == chosen:
        raise CliError(f"nothing to retry in {_name(release)}: commit {chosen[:12]} serves and is Ready")
    return Target(ANNOTATION_RETRY, chosen, f"release commit {chosen[:12]} again if it is marked failed, aborted or "
                                            "abandoned (no such mark is visible in the status)")
