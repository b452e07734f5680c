"""Every series the operator exports, defined once on a registry (``docs/metrics.md`` documents each).

Names follow Prometheus' conventions: the ``bluegreen_`` prefix, ``_total`` for counters, ``_seconds`` for
durations, base units. Label values are bounded: namespaces, releases, colours, phases, outcomes, reasons and
providers come from small sets or from the cluster's own objects; the only commit SHA is the ``revision``
of ``bluegreen_release_info``, whose previous value is removed when it changes; repositories are named by
the git layer's key, which never carries a user name, password or token.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RELEASE: Final = ("namespace", "release")
COLOR: Final = (*RELEASE, "color")

SWITCH_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""From the idle colour available to the switch: tens of milliseconds, up to hours with a manual promotion."""
COMMIT_BUCKETS: Final = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""From the commit first fetched to the switch: a warm rollback in well under a second, a rollout in minutes."""
PASS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GIT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Series:
    """The operator's metrics on ``registry`` (one registry per recorder, so tests never share series)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.build_info = Gauge("bluegreen_build_info", "Always 1: the operator's version.", ["version"],
                                registry=registry)
        # ---- releases, from the status the passes write ------------------------------------------
        self.release_info = Gauge(
            "bluegreen_release_info",
            "Always 1, one series per release: the colour that serves, the commit it runs and the phase.",
            [*RELEASE, "active_color", "revision", "phase"], registry=registry)
        self.release_condition = Gauge(
            "bluegreen_release_condition",
            "Always 1, one series per condition of a release (Ready, Reconciling, Stalled, SourceReady...) "
            "with its current status (True, False, Unknown).",
            [*RELEASE, "condition", "status"], registry=registry)
        self.release_outcomes = Counter(
            "bluegreen_release_outcomes_total",
            "Releases that ended, by outcome: Succeeded, RolledBack, Failed, Aborted, Abandoned, Superseded.",
            [*RELEASE, "outcome"], registry=registry)
        self.check_verdicts = Counter(
            "bluegreen_check_verdicts_total",
            "Release checks (HTTP or Job) that reached a verdict, by hook, check name and verdict (Passed, Failed).",
            [*RELEASE, "hook", "check", "verdict"], registry=registry)
        self.available_to_switch = Histogram(
            "bluegreen_available_to_switch_seconds",
            "From the idle colour fully available for the commit (for a warm rollback: from the commit fetched) "
            "to the Service switched to it, by outcome (Succeeded, RolledBack).",
            ["namespace", "outcome"], buckets=SWITCH_BUCKETS, registry=registry)
        self.commit_to_switch = Histogram(
            "bluegreen_commit_to_switch_seconds",
            "From a commit first fetched to the Service switched to the colour running it, by outcome.",
            ["namespace", "outcome"], buckets=COMMIT_BUCKETS, registry=registry)
        # ---- colours, from the Deployments' watch -------------------------------------------------
        self.color_spec_replicas = Gauge(
            "bluegreen_color_spec_replicas", "Replicas a colour's Deployment asks for (spec.replicas).",
            COLOR, registry=registry)
        self.color_ready_replicas = Gauge(
            "bluegreen_color_ready_replicas", "Ready replicas of a colour's Deployment (status.readyReplicas).",
            COLOR, registry=registry)
        self.color_available_replicas = Gauge(
            "bluegreen_color_available_replicas",
            "Available replicas of a colour's Deployment (status.availableReplicas).", COLOR, registry=registry)
        # ---- the operator's own work ---------------------------------------------------------------
        self.reconcile_passes = Counter(
            "bluegreen_reconcile_passes_total", "Reconcile passes, by result (success, error: the pass raised).",
            ["result"], registry=registry)
        self.reconcile_duration = Histogram(
            "bluegreen_reconcile_duration_seconds", "How long a reconcile pass took.",
            buckets=PASS_BUCKETS, registry=registry)
        self.git_contacts = Counter(
            "bluegreen_git_remote_contacts_total",
            "Contacts with a git remote (its refs listed, ls-remote), by repository and result (success or "
            "the failure's reason).", ["repository", "result"], registry=registry)
        self.git_contact_duration = Histogram(
            "bluegreen_git_remote_contact_duration_seconds",
            "How long a contact with a git remote took (listing its refs, plus the fetch when there was one).",
            ["repository", "result"], buckets=GIT_BUCKETS, registry=registry)
        self.git_fetches = Counter(
            "bluegreen_git_fetches_total",
            "Fetches of git objects (only when the watched ref moved), by repository and result.",
            ["repository", "result"], registry=registry)
        self.git_fetch_duration = Histogram(
            "bluegreen_git_fetch_duration_seconds", "How long fetching the objects took.",
            ["repository", "result"], buckets=GIT_BUCKETS, registry=registry)
        self.webhook_requests = Counter(
            "bluegreen_webhook_requests_total",
            "Requests to the push-webhook receiver, by provider (github, gitlab, gitea, generic; "
            "unknown for any other path) and HTTP status code.",
            ["provider", "code"], registry=registry)
