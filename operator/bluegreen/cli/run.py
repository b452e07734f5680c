"""``run``: start the operator (kopf), with its logging, liveness endpoint, optional push-webhook receiver and
optional Prometheus metrics endpoint."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

METRICS_ENV = "BLUEGREEN_METRICS_LISTEN"


def listen_address(text: str) -> tuple[str, int]:
    """``--webhook-listen HOST:PORT`` parsed, as an argparse type."""
    from bluegreen.webhook.server import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


DEFAULT_LEASE_NAME = "bluegreen-operator"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def lease_namespace(explicit: str | None, watched: list[str]) -> str:
    """Where the Lease lives: ``--leader-election-namespace``, the pod's namespace, the service account's, the one
    watched namespace, else ``default``."""
    if explicit:
        return explicit
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        pass
    return watched[0] if len(watched) == 1 else "default"


def add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="start the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    run.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-vv for kopf's debug)")
    run.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                     help="auto: console on a terminal, JSON lines otherwise")
    run.add_argument("--liveness", metavar="URL", default=None,
                     help="serve a health endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--webhook-listen", metavar="HOST:PORT", type=listen_address, default=None,
                     help="receive git push webhooks on this address (plain HTTP), e.g. 0.0.0.0:9443; off by default")
    run.add_argument("--webhook-secret-file", metavar="PATH", default=None,
                     help="file holding the webhooks' shared secret (a mounted Secret; re-read when it changes)")
    election = run.add_argument_group("leader election (two or more replicas: one acts, the others stand by)")
    election.add_argument("--leader-elect", action="store_true", default=_env_flag("BLUEGREEN_LEADER_ELECT"),
                          help="act only while holding the leader Lease (default: $BLUEGREEN_LEADER_ELECT, else off)")
    election.add_argument("--leader-election-namespace", metavar="NS", default=None,
                          help="namespace of the Lease (default: $POD_NAMESPACE, else the service account's, "
                               "else the only --namespace, else default)")
    election.add_argument("--leader-election-id", metavar="NAME", default=DEFAULT_LEASE_NAME,
                          help=f"name of the Lease (default {DEFAULT_LEASE_NAME})")
    election.add_argument("--leader-election-lease-duration", metavar="DURATION", default="15s",
                          help="how long a standby waits after the leader's last renewal before taking over "
                               "(default 15s)")
    election.add_argument("--leader-election-renew-deadline", metavar="DURATION", default="10s",
                          help="how long the leader keeps acting without a successful renewal (default 10s)")
    election.add_argument("--leader-election-retry-period", metavar="DURATION", default="2s",
                          help="how often the Lease is renewed or tried (default 2s)")
    run.add_argument("--metrics-listen", metavar="HOST:PORT", default=None,
                     help=f"serve Prometheus metrics at http://HOST:PORT/metrics (:PORT: every IPv4 interface; "
                          f"0: off); default: ${METRICS_ENV}, else off. The manifests and the chart use :8000")
    run.add_argument("--check-deny-networks", metavar="CIDRS", default=None,
                     help="comma-separated networks HTTP checks may not call (default: $BLUEGREEN_CHECK_DENY_NETWORKS, "
                          "else 169.254.0.0/16,fe80::/10, link-local cloud metadata); \"\" allows every address")


def run(args: argparse.Namespace) -> int:
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
    from bluegreen.metrics.server import ListenError, parse_metrics_listen

    given = ("--metrics-listen", args.metrics_listen) if args.metrics_listen is not None else \
        (METRICS_ENV, os.environ.get(METRICS_ENV, ""))
    try:
        metrics = parse_metrics_listen(given[1])
    except ValueError as exc:
        from bluegreen.logs import get_logger

        get_logger().error(f"cannot start: {given[0]}: {exc}")
        return 2
    leader = None
    if args.leader_elect:
        from bluegreen.core.leases import LeaseSettings
        from bluegreen.logs import get_logger

        try:
            leader = LeaseSettings.parse(lease_namespace(args.leader_election_namespace, list(args.namespace)),
                                         args.leader_election_id, args.leader_election_lease_duration,
                                         args.leader_election_renew_deadline, args.leader_election_retry_period)
        except ValueError as exc:
            get_logger().error(f"cannot start: {exc}", hint="see --leader-election-* in `bluegreen run --help`")
            return 2
    from bluegreen.runtime.handlers import run_operator

    try:
        lost = run_operator(list(args.namespace), liveness=args.liveness, webhook=webhook,
                            deny_networks=args.check_deny_networks, leader=leader, metrics=metrics)
    except ListenError as exc:
        from bluegreen.logs import get_logger

        get_logger().error(f"cannot start: --metrics-listen {exc}")
        return 2
    except ValueError as exc:  # a network of --check-deny-networks / BLUEGREEN_CHECK_DENY_NETWORKS that does not parse
        from bluegreen.logs import get_logger

        get_logger().error(f"cannot start: {exc}", hint="--check-deny-networks takes comma-separated CIDRs")
        return 2
    return 1 if lost else 0
