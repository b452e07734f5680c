"""``status`` and ``history``: what releases run and how they got there (tables, or ``-o json|yaml``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bluegreen.cli.access import Access
from bluegreen.cli.errors import CliError
from bluegreen.cli.output import dump, print_table


def condition(release: dict[str, Any], kind: str) -> dict[str, Any]:
    """The condition of type ``kind`` in the release's status, or {}."""
    for item in (release.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def condition_rows(release: dict[str, Any]) -> list[tuple[str, ...]]:
    """The release's conditions as table rows (Ready, Reconciling, Stalled, SourceReady...; docs/conditions.md)."""
    rows: list[tuple[str, ...]] = [("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE")]
    for item in (release.get("status") or {}).get("conditions") or []:
        rows.append((item.get("type", ""), item.get("status", "Unknown"), item.get("reason", ""),
                     item.get("lastTransitionTime", ""), item.get("message", "")))
    return rows


def release_rows(releases: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per release: where it is, which colour serves which commit, its phase and readiness."""
    rows: list[tuple[str, ...]] = [("NAMESPACE", "NAME", "ACTIVE", "REVISION", "PHASE", "READY", "MESSAGE")]
    for release in releases:
        status = release.get("status") or {}
        rows.append((release["metadata"]["namespace"], release["metadata"]["name"], status.get("activeColor") or "-",
                     (status.get("activeRevision") or "-")[:12], status.get("phase") or "-",
                     condition(release, "Ready").get("status", "Unknown"), status.get("message") or ""))
    return rows


def awaiting_line(release: dict[str, Any]) -> str | None:
    """``status.awaitingPromotion`` as a sentence, when the release waits for ``promote``."""
    awaiting = (release.get("status") or {}).get("awaitingPromotion") or {}
    if not awaiting.get("revision"):
        return None
    return (f"awaiting promotion: commit {awaiting['revision'][:12]} on {awaiting.get('color') or '?'} "
            f"since {awaiting.get('since') or '?'}")


def migration_rows(release: dict[str, Any]) -> list[tuple[str, ...]] | None:
    """``status.migrations`` (the current commit's expand/contract Jobs) as table rows; None when there are none.
    The messages (a failure's log lines) are in the conditions and in ``-o yaml``."""
    entries = (release.get("status") or {}).get("migrations") or []
    if not entries:
        return None
    rows: list[tuple[str, ...]] = [("MIGRATION", "COMMIT", "COLOR", "JOB", "VERDICT", "REASON", "STARTED", "FINISHED")]
    for entry in entries:
        rows.append((entry.get("phase", ""), (entry.get("commit") or "")[:12], entry.get("color", ""),
                     entry.get("job", ""), entry.get("verdict", ""), entry.get("reason", ""),
                     entry.get("startedAt") or "-", entry.get("finishedAt") or "-"))
    return rows


def history_rows(release: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("REVISION", "COLOR", "OUTCOME", "STARTED", "FINISHED", "AUTHOR", "MESSAGE")]
    for entry in (release.get("status") or {}).get("history") or []:
        rows.append((entry.get("revision", "")[:12], entry.get("color", ""), entry.get("outcome", ""),
                     entry.get("startedAt", ""), entry.get("finishedAt", "-"), entry.get("author", ""),
                     entry.get("message", "")))
    return rows


def status(args: argparse.Namespace) -> int:
    access = Access(args)
    if args.name:
        releases = [access.release(args.name)]
    else:
        releases = _list(access, None if args.all_namespaces else access.namespace)
    if args.output:
        if args.name:
            sys.stdout.write(dump(releases[0], args.output))
        else:
            sys.stdout.write(dump({"apiVersion": "v1", "kind": "List", "items": releases}, args.output))
        return 0
    if not releases:
        where = "any namespace" if args.all_namespaces else f"namespace {access.namespace!r}"
        print(f"No bluegreenreleases found in {where}.", file=sys.stderr)
        return 0
    print_table(release_rows(releases))
    if args.name:
        waiting = awaiting_line(releases[0])
        if waiting:
            print(waiting)
        print()
        print_table(condition_rows(releases[0]))
        migrations = migration_rows(releases[0])
        if migrations is not None:
            print()
            print_table(migrations)
    return 0


def _list(access: Access, namespace: str | None) -> list[dict[str, Any]]:
    from bluegreen.kube.console import api_failure

    try:
        releases: list[dict[str, Any]] = access.cluster.list_releases(namespace)
    except Exception as exc:
        failure = api_failure(exc)
        if failure is not None and failure.status == 404:
            raise CliError("this cluster does not know BlueGreenReleases: install the CRD (kubectl apply -f crds/)") \
                from None
        raise
    return releases


def history(args: argparse.Namespace) -> int:
    release = Access(args).release(args.name)
    if args.output:
        sys.stdout.write(dump(list((release.get("status") or {}).get("history") or []), args.output))
        return 0
    print_table(history_rows(release))
    return 0
