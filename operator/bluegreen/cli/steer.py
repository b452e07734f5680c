"""``promote``, ``abort``, ``retry``, ``reconcile``, ``suspend``, ``resume``: each writes one annotation (or
``spec.suspend``) on the release; with ``--wait`` the command returns once the operator handled it."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bluegreen.cli.access import Access
from bluegreen.cli.errors import CliError
from bluegreen.cli.targets import Target, abort_target, commit_argument, promote_target, retry_target
from bluegreen.core.spec import ANNOTATION_RECONCILE_AT

POLL_SECONDS = 0.2
TARGETS: dict[str, Callable[[dict[str, Any], str | None], Target]] = {
    "promote": promote_target, "abort": abort_target, "retry": retry_target,
}


def annotations_of(release: dict[str, Any]) -> dict[str, str]:
    return dict((release.get("metadata") or {}).get("annotations") or {})


def outcome_line(release: dict[str, Any]) -> str:
    """The release's phase and message after the operator acted, e.g. ``shop: Healthy: blue serves ...``."""
    status = release.get("status") or {}
    name = (release.get("metadata") or {}).get("name", "?")
    active = status.get("activeRevision")
    serving = f" ({status.get('activeColor')} serves commit {active[:12]})" if active else ""
    return f"{name}: {status.get('phase') or 'unknown'}{serving}: {status.get('message') or ''}".rstrip(": ")


def wait_for(access: Access, name: str, done: Callable[[dict[str, Any]], bool], timeout: float, what: str,
             *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
             ) -> dict[str, Any]:
    """Read the release until ``done`` holds for it; a CliError naming ``what`` after ``timeout`` seconds."""
    deadline = clock() + timeout
    while True:
        release = access.release(name)
        if done(release):
            return release
        if clock() >= deadline:
            raise CliError(f"timed out after {timeout:g}s waiting for the operator to handle {what} (is it running "
                           f"and watching namespace {access.namespace!r}?)")
        sleep(POLL_SECONDS)


def steer(args: argparse.Namespace) -> int:
    """promote / abort / retry: refuse up front when the status shows nothing to do, else annotate."""
    access = Access(args)
    release = access.release(args.name)
    target = TARGETS[args.command](release, commit_argument(args.commit))
    access.cluster.annotate_release(access.namespace, args.name, {target.annotation: target.commit})
    print(f"bluegreenrelease/{args.name} annotated {target.annotation}={target.commit}: asks the operator to "
          f"{target.asks}")
    if args.wait is not None:
        handled = wait_for(access, args.name, lambda r: annotations_of(r).get(target.annotation) != target.commit,
                           args.wait, f"{target.annotation}={target.commit[:12]}")
        print(f"handled: {outcome_line(handled)}")
    return 0


def reconcile_handled(release: dict[str, Any], stamp: str) -> bool:
    """The git check asked for with ``stamp`` has run: ``status.lastHandledReconcileAt`` names it, or names a
    newer request that replaced it in the annotation meanwhile (requests coalesce)."""
    handled = (release.get("status") or {}).get("lastHandledReconcileAt")
    current = annotations_of(release).get(ANNOTATION_RECONCILE_AT)
    return handled is not None and (handled == stamp or (current != stamp and handled == current))


def reconcile(args: argparse.Namespace) -> int:
    access = Access(args)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    access.cluster.annotate_release(access.namespace, args.name, {ANNOTATION_RECONCILE_AT: stamp})
    print(f"bluegreenrelease/{args.name} annotated: git is checked now")
    if args.wait is not None:
        handled = wait_for(access, args.name, lambda r: reconcile_handled(r, stamp), args.wait,
                           f"{ANNOTATION_RECONCILE_AT}={stamp}")
        print(f"git checked: {outcome_line(handled)}")
    return 0


def suspend(args: argparse.Namespace) -> int:
    access = Access(args)
    freeze = args.command == "suspend"
    access.cluster.patch_release_spec(access.namespace, args.name, {"suspend": freeze})
    print(f"bluegreenrelease/{args.name} {'suspended' if freeze else 'resumed'}")
    return 0
