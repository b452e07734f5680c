"""``bluegreen``: run the operator, and inspect or steer releases from a terminal.

    bluegreen run [-n NS ...| -A] [-v] [--log-format auto|json|console] [--liveness URL]
                  [--webhook-listen HOST:PORT --webhook-secret-file PATH]
    bluegreen status [NAME] [-n NS | -A]      releases, their colours, revisions and conditions
    bluegreen history NAME [-n NS]            the release history of one release
    bluegreen reconcile NAME [-n NS]          check git now (sets bluegreen.dev/reconcile-at)
    bluegreen suspend|resume NAME [-n NS]     freeze or unfreeze a release (spec.suspend)

Cluster access comes from $KUBECONFIG (or ~/.kube/config), or the in-cluster service account.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bluegreen.core.spec import ANNOTATION_RECONCILE_AT

DEFAULT_NAMESPACE = "default"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run" and bool(args.webhook_listen) != bool(args.webhook_secret_file):
        parser.error("--webhook-listen and --webhook-secret-file go together (the receiver needs a secret)")
    handler = {"run": _run, "status": _status, "history": _history, "reconcile": _reconcile,
               "suspend": _suspend, "resume": _suspend}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bluegreen", description="Git-driven blue/green releases on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    run.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-vv for kopf's debug)")
    run.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                     help="auto: console on a terminal, JSON lines otherwise")
    run.add_argument("--liveness", metavar="URL", default=None,
                     help="serve a health endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--webhook-listen", metavar="HOST:PORT", type=_listen_address, default=None,
                     help="receive git push webhooks on this address (plain HTTP), e.g. 0.0.0.0:9443; off by default")
    run.add_argument("--webhook-secret-file", metavar="PATH", default=None,
                     help="file holding the webhooks' shared secret (a mounted Secret; re-read when it changes)")

    status = commands.add_parser("status", help="show releases")
    status.add_argument("name", nargs="?")
    where = status.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", default=None)
    where.add_argument("-A", "--all-namespaces", action="store_true")

    for name, text in (("history", "show a release's history"), ("reconcile", "check git now"),
                       ("suspend", "freeze a release"), ("resume", "unfreeze a release")):
        command = commands.add_parser(name, help=text)
        command.add_argument("name")
        command.add_argument("-n", "--namespace", default=None)
    return parser


def _listen_address(text: str) -> tuple[str, int]:
    from bluegreen.webhook.server import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from bluegreen.logs import configure

    level = logging.DEBUG if args.verbose >= 2 else logging.INFO
    configure(level=level, fmt=args.log_format)
    if args.verbose < 2:
        logging.getLogger("kopf").setLevel(logging.INFO if args.verbose else logging.WARNING)
    webhook = None
    if args.webhook_listen:
        from bluegreen.logs import get_logger
        from bluegreen.webhook.secret import SecretFile, WebhookSecretError
        from bluegreen.webhook.server import WebhookConfig, check_listen

        try:
            SecretFile(args.webhook_secret_file).load()
        except WebhookSecretError as exc:
            get_logger().error("cannot start: " + str(exc), hint="--webhook-secret-file must name a non-empty file")
            return 2
        host, port = args.webhook_listen
        try:
            check_listen(host, port)
        except OSError as exc:
            get_logger().error(f"cannot start: --webhook-listen {host}:{port}: {exc.strerror or exc}")
            return 2
        webhook = WebhookConfig(host, port, Path(args.webhook_secret_file))
    from bluegreen.runtime.handlers import run_operator

    run_operator(list(args.namespace), liveness=args.liveness, webhook=webhook)
    return 0


def _cluster() -> Any:
    from bluegreen.kube.client import load_api_client
    from bluegreen.kube.cluster import KubeCluster

    return KubeCluster(load_api_client())


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    from bluegreen.kube.client import current_namespace

    return current_namespace() or DEFAULT_NAMESPACE


def _condition(release: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in (release.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _status(args: argparse.Namespace) -> int:
    cluster = _cluster()
    if args.name:
        releases = [cluster.get_release(_namespace(args), args.name)]
    else:
        releases = cluster.list_releases(None if args.all_namespaces else _namespace(args))
    rows = [("NAMESPACE", "NAME", "ACTIVE", "REVISION", "PHASE", "READY", "MESSAGE")]
    for release in releases:
        status = release.get("status") or {}
        rows.append((release["metadata"]["namespace"], release["metadata"]["name"], status.get("activeColor") or "-",
                     (status.get("activeRevision") or "-")[:12], status.get("phase") or "-",
                     _condition(release, "Ready").get("status", "Unknown"), status.get("message") or ""))
    _print_table(rows)
    if args.name and releases:
        print()
        _print_table(condition_rows(releases[0]))
    return 0


def condition_rows(release: dict[str, Any]) -> list[tuple[str, ...]]:
    """The release's conditions as table rows (Ready, Reconciling, Stalled, SourceReady...; docs/conditions.md)."""
    rows: list[tuple[str, ...]] = [("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE")]
    for condition in (release.get("status") or {}).get("conditions") or []:
        rows.append((condition.get("type", ""), condition.get("status", "Unknown"), condition.get("reason", ""),
                     condition.get("lastTransitionTime", ""), condition.get("message", "")))
    return rows


def _history(args: argparse.Namespace) -> int:
    release = _cluster().get_release(_namespace(args), args.name)
    rows = [("REVISION", "COLOR", "OUTCOME", "STARTED", "FINISHED", "AUTHOR", "MESSAGE")]
    for entry in (release.get("status") or {}).get("history") or []:
        rows.append((entry.get("revision", "")[:12], entry.get("color", ""), entry.get("outcome", ""),
                     entry.get("startedAt", ""), entry.get("finishedAt", "-"), entry.get("author", ""),
                     entry.get("message", "")))
    _print_table(rows)
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _cluster().annotate_release(_namespace(args), args.name, {ANNOTATION_RECONCILE_AT: stamp})
    print(f"bluegreenrelease/{args.name} annotated: git is checked now")
    return 0


def _suspend(args: argparse.Namespace) -> int:
    suspend = args.command == "suspend"
    _cluster().patch_release_spec(_namespace(args), args.name, {"suspend": suspend})
    print(f"bluegreenrelease/{args.name} {'suspended' if suspend else 'resumed'}")
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
