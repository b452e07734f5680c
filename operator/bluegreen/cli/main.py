"""The parser and the dispatch of the ``bluegreen`` / ``kubectl bluegreen`` command (docs/cli.md)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from bluegreen.cli.errors import DIFF_ERROR, FAILED, CliError
from bluegreen.cli.output import FORMATS
from bluegreen.cli.run import add_run_parser
from bluegreen.core.spec import parse_duration

DEFAULT_WAIT_SECONDS = 300.0
PLUGIN_PREFIX = "kubectl-"


def program_name(argv0: str | None = None) -> str:
    """How the command was invoked: ``kubectl bluegreen`` for the kubectl plugin (``kubectl-bluegreen``),
    ``bluegreen`` for ``python -m bluegreen.cli``, else the file name."""
    name = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")) or "bluegreen"
    if name.startswith(PLUGIN_PREFIX) and len(name) > len(PLUGIN_PREFIX):
        return "kubectl " + name[len(PLUGIN_PREFIX):].replace("_", "-")
    if name in ("__main__.py", "-c", "-m") or name.startswith("python"):
        return "bluegreen"
    return name


def wait_seconds(text: str) -> float:
    """``--wait=TIMEOUT``: seconds (``90``) or a duration (``90s``, ``2m``, ``1m30s``), more than zero."""
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"the timeout must be more than zero, not {text!r}")
    return seconds


def bind_bare_wait(argv: Sequence[str]) -> list[str]:
    """A bare ``--wait`` followed by something that is not a timeout (``--wait shop``) takes the default, so the
    next word stays what it is (argparse would take it as the option's value)."""
    out = list(argv)
    for index, word in enumerate(out):
        if word == "--":
            break
        if word == "--wait":
            following = out[index + 1] if index + 1 < len(out) else None
            try:
                valid = following is not None and wait_seconds(following) > 0
            except argparse.ArgumentTypeError:
                valid = False
            if not valid:
                out[index] = f"--wait={DEFAULT_WAIT_SECONDS:g}"
    return out


def _kube_flags(parser: argparse.ArgumentParser, *, namespace: bool = True) -> None:
    """kubectl's cluster flags; SUPPRESS keeps a value given before the verb when the verb's own is absent."""
    if namespace:
        parser.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                            help="the release's namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--kubeconfig", metavar="PATH", default=argparse.SUPPRESS,
                        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config or the in-cluster account)")
    parser.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context to use")


def _wait_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--wait", nargs="?", type=wait_seconds, const=DEFAULT_WAIT_SECONDS, default=None,
                        metavar="TIMEOUT", help=f"wait until {what}, then print the phase and message "
                                                f"(TIMEOUT: 90s, 5m...; default {DEFAULT_WAIT_SECONDS:g}s)")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    prog = prog or program_name()
    parser = argparse.ArgumentParser(prog=prog, description="Git-driven blue/green releases on Kubernetes.",
                                     epilog=f"Exit codes: 0 done, 1 refused or failed, 2 usage error; '{prog} diff' "
                                            "exits 0 without differences, 1 with differences, 2 on error.")
    _kube_flags(parser, namespace=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", help="show releases: colours, revisions, phase, conditions")
    status.add_argument("name", nargs="?")
    _kube_flags(status)
    status.add_argument("-A", "--all-namespaces", action="store_true", help="releases of every namespace")
    status.add_argument("-o", "--output", choices=FORMATS, default=None, help="print the release object(s)")

    history = commands.add_parser("history", help="show a release's history (the last 20 releases)")
    history.add_argument("name")
    _kube_flags(history)
    history.add_argument("-o", "--output", choices=FORMATS, default=None, help="print the history entries")

    for verb, text, flag in (
            ("promote", "switch traffic to the commit waiting for promotion", "the commit waiting; a prefix"),
            ("abort", "stop the release under way; traffic stays on the previous colour",
             "the commit under way (default: status.lastAttemptedRevision)"),
            ("retry", "release a failed, aborted or abandoned commit again",
             "the commit to retry (default: status.lastAttemptedRevision)")):
        command = commands.add_parser(verb, help=text)
        command.add_argument("name")
        command.add_argument("--commit", metavar="SHA", default=None, help=f"{flag} (4 to 40 hex digits)")
        _kube_flags(command)
        _wait_flag(command, "the operator handled the request (removed the annotation)")

    reconcile = commands.add_parser("reconcile", help="check git now (sets bluegreen.dev/reconcile-at)")
    reconcile.add_argument("name")
    _kube_flags(reconcile)
    _wait_flag(reconcile, "the operator checked git (status.lastHandledReconcileAt)")

    for verb, text in (("suspend", "freeze a release (spec.suspend: true)"),
                       ("resume", "unfreeze a release (spec.suspend: false)")):
        command = commands.add_parser(verb, help=text)
        command.add_argument("name")
        _kube_flags(command)

    diff = commands.add_parser("diff", help="what the next release would change, as a unified diff")
    diff.add_argument("name")
    diff.add_argument("--revision", metavar="SHA", default=None,
                      help="diff this commit's manifest instead of what spec.source.ref points to")
    diff.add_argument("--cache-dir", metavar="PATH", default=None,
                      help="where git mirrors are kept (default: $XDG_CACHE_HOME/bluegreen/cli-mirrors)")
    _kube_flags(diff)

    add_run_parser(commands)
    return parser


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    if command == "run":
        from bluegreen.cli.run import run

        return run
    if command in ("status", "history"):
        from bluegreen.cli import inspect

        return inspect.status if command == "status" else inspect.history
    if command == "diff":
        from bluegreen.cli.diff import diff

        return diff
    from bluegreen.cli import steer

    return {"reconcile": steer.reconcile, "suspend": steer.suspend, "resume": steer.suspend}.get(command, steer.steer)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(bind_bare_wait(sys.argv[1:] if argv is None else argv))
    if args.command == "run":
        if bool(args.webhook_listen) != bool(args.webhook_secret_file):
            parser.error("--webhook-listen and --webhook-secret-file go together (the receiver needs a secret)")
        if getattr(args, "kubeconfig", None) or getattr(args, "context", None):
            parser.error("run takes its cluster from $KUBECONFIG or the in-cluster service account, "
                         "not --kubeconfig/--context")
    if getattr(args, "all_namespaces", False) and getattr(args, "namespace", None) and args.command == "status":
        parser.error("-A/--all-namespaces and -n/--namespace exclude each other")
    handler = _handler(args.command)
    if args.command == "run":
        try:
            return handler(args)
        except KeyboardInterrupt:
            return 130
    failed = DIFF_ERROR if args.command == "diff" else FAILED
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return failed if exc.code == FAILED else exc.code
    except Exception as exc:
        print(f"error: {_explain(exc)}", file=sys.stderr)
        return failed


def _explain(exc: Exception) -> str:
    """An API server's refusal as its message and status; anything else as its type and text."""
    from bluegreen.kube.console import api_failure

    failure = api_failure(exc)
    if failure is not None:
        return f"{failure.message} (HTTP {failure.status} {failure.reason})"
    return f"{type(exc).__name__}: {exc}"
