"""The port through which the operator reports what it does, for metrics. Pure.

``Recorder`` is both the interface and the default: every method does nothing, so the reconciler, the fetch
scheduler, the git source and the webhook receiver run without any metrics library (tests, the CLI's own
commands). ``bluegreen.metrics.PrometheusRecorder`` overrides the methods with Prometheus series.

The calls come from the event loop (watch events, webhooks), the pass threads (selector switches, passes)
and the fetch threads (commits seen, remote contacts): an implementation must be thread-safe, quick (no
I/O) and must never raise into its caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bluegreen.core.plans import ColorState
from bluegreen.core.spec import Color

SUCCESS: Final = "success"
"""The ``result`` of a reconcile pass, a remote contact or a fetch that went well (a failure names its reason)."""
ERROR: Final = "error"
"""The ``result`` of a reconcile pass that raised."""


class Recorder:
    """What the operator reports; all no-ops here (the default wherever no recorder is given)."""

    def release_observed(self, body: Mapping[str, Any]) -> None:
        """A BlueGreenRelease as listed, watched or returned by a status patch (its status as passes wrote it)."""

    def release_deleted(self, namespace: str, name: str) -> None:
        """The release is gone: its series go too."""

    def color_observed(self, namespace: str, release: str, state: ColorState) -> None:
        """A colour Deployment of ``release`` as listed or watched."""

    def color_deleted(self, namespace: str, release: str, color: Color) -> None:
        """A colour Deployment of ``release`` was deleted."""

    def service_switched(self, namespace: str, service: str, color: Color) -> None:
        """The operator just pointed ``service``'s selector at ``color`` (the patch was accepted)."""

    def commit_seen(self, namespace: str, release: str, commit: str) -> None:
        """A git check found ``commit`` for ``release`` (called on every check; the first one counts)."""

    def reconcile_pass(self, result: str, seconds: float) -> None:
        """A reconcile pass ended: ``SUCCESS`` or ``ERROR`` (it raised), after ``seconds``."""

    def git_contact(self, repository: str, result: str, seconds: float) -> None:
        """The remote of ``repository`` (a key without credentials) was contacted (its refs listed, and a fetch
        if one was needed) in ``seconds``: ``SUCCESS`` or the failure's reason (``RepositoryUnreachable``...)."""

    def git_fetch(self, repository: str, result: str, seconds: float) -> None:
        """Objects were fetched from ``repository`` in ``seconds`` (part of a contact): ``SUCCESS`` or a reason."""

    def webhook_request(self, provider: str, code: int) -> None:
        """The push-webhook receiver answered a request for ``provider`` with HTTP status ``code``."""
