"""``PrometheusRecorder``: the ``Recorder`` port of ``bluegreen.core.recorder`` as Prometheus series.

Release series come from the status the passes write, as the release watch and the status patches deliver
it (``release_observed``): the info series and the conditions are replaced by what the status says, the
outcome and check-verdict counters and the cut-over histograms follow what ended since the previous look
(``metrics.releases``), measured between the moments ``metrics.cutover`` keeps. The colour series come from
the Deployments' watch. A deleted release loses its series (its colours' go with their Deployments).

Thread-safe (one lock around the bookkeeping; the series are thread-safe themselves); a failure inside is
logged and swallowed, never raised into the operator.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, ParamSpec

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from bluegreen.core.plans import ColorState
from bluegreen.core.recorder import ERROR, SUCCESS, Recorder
from bluegreen.core.spec import Color
from bluegreen.logs import get_logger
from bluegreen.metrics.cutover import CutoverClock
from bluegreen.metrics.releases import OUTCOMES, Changes, Look, conditions, follow, info_labels
from bluegreen.metrics.series import Series

P = ParamSpec("P")


def _never_raises(method: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception as exc:  # metrics must never break a pass, a fetch or a webhook
            get_logger("bluegreen.metrics").warning("metrics: recording failed", action="Metrics",
                                                    method=method.__name__,
                                                    error=f"{type(exc).__name__}: {exc}"[:300])
    return guarded


class _Release:
    """The series one release shows now and what of its status was counted."""

    def __init__(self, look: Look) -> None:
        self.look = look
        self.info: tuple[str, str, str] | None = None
        self.conditions: frozenset[tuple[str, str]] = frozenset()
        self.verdicts: set[tuple[str, str, str]] = set()
        """(hook, check, verdict) label values of its check-verdict counters."""


class PrometheusRecorder(Recorder):
    """Records into ``registry`` (a new one by default, with the process, platform and GC collectors).

    Counters and histograms export no ``*_created`` series (``disable_created_metrics``, process-wide): they
    would double the series for a timestamp Prometheus does not need."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client 0.26
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.series = Series(registry)
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._releases: dict[tuple[str, str], _Release] = {}
        self._clock = CutoverClock()
        self.series.build_info.labels(_version()).set(1)
        for result in (SUCCESS, ERROR):  # so that rate() sees the first error
            self.series.reconcile_passes.labels(result)

    # ---- releases ---------------------------------------------------------------------------------
    @_never_raises
    def release_observed(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        status = body.get("status") or {}
        service = str((body.get("spec") or {}).get("service") or "")
        with self._lock:
            known = self._releases.get((namespace, name))
            followed = follow(known.look if known else None, status, str(meta.get("resourceVersion", "")))
            if followed is None:
                return  # older than what was seen
            look, changes = followed
            if known is None:
                known = self._releases[(namespace, name)] = _Release(look)
                for outcome in OUTCOMES:  # every outcome from 0, so that increase() sees the first one
                    self.series.release_outcomes.labels(namespace, name, outcome)
            known.look = look
            self._show(namespace, name, known, status)
            self._count(namespace, name, service, known, changes)

    def _show(self, namespace: str, name: str, release: _Release, status: Mapping[str, Any]) -> None:
        info = info_labels(status)
        if info != release.info:
            if release.info is not None:
                self.series.release_info.remove(namespace, name, *release.info)
            self.series.release_info.labels(namespace, name, *info).set(1)
            release.info = info
        now = conditions(status)
        for gone in release.conditions - now:
            self.series.release_condition.remove(namespace, name, *gone)
        for kind, state in now - release.conditions:
            self.series.release_condition.labels(namespace, name, kind, state).set(1)
        release.conditions = now

    def _count(self, namespace: str, name: str, service: str, release: _Release, changes: Changes) -> None:
        for outcome in changes.outcomes:
            self.series.release_outcomes.labels(namespace, name, outcome).inc()
        now = self.monotonic()
        for switch in changes.switches:
            latencies = self._clock.cutover(namespace, name, service, switch.color, switch.commit, now)
            if latencies.ready_to_switch is not None:
                self.series.available_to_switch.labels(namespace, switch.outcome).observe(latencies.ready_to_switch)
            if latencies.commit_to_switch is not None:
                self.series.commit_to_switch.labels(namespace, switch.outcome).observe(latencies.commit_to_switch)
        for verdict in changes.verdicts:
            labels = (verdict.hook, verdict.check, verdict.verdict)
            self.series.check_verdicts.labels(namespace, name, *labels).inc()
            release.verdicts.add(labels)

    @_never_raises
    def release_deleted(self, namespace: str, name: str) -> None:
        with self._lock:
            release = self._releases.pop((namespace, name), None)
            self._clock.forget_release(namespace, name)
            if release is None:
                return
            if release.info is not None:
                self.series.release_info.remove(namespace, name, *release.info)
            for condition in release.conditions:
                self.series.release_condition.remove(namespace, name, *condition)
            for outcome in OUTCOMES:
                self.series.release_outcomes.remove(namespace, name, outcome)
            for labels in release.verdicts:
                self.series.check_verdicts.remove(namespace, name, *labels)

    # ---- colours and switches ---------------------------------------------------------------------
    @_never_raises
    def color_observed(self, namespace: str, release: str, state: ColorState) -> None:
        color = str(state.color)
        self.series.color_spec_replicas.labels(namespace, release, color).set(state.replicas)
        self.series.color_ready_replicas.labels(namespace, release, color).set(state.ready_replicas)
        self.series.color_available_replicas.labels(namespace, release, color).set(state.available_replicas)
        with self._lock:
            self._clock.color(namespace, release, color, state.fully_available, self.monotonic())

    @_never_raises
    def color_deleted(self, namespace: str, release: str, color: Color) -> None:
        for gauge in (self.series.color_spec_replicas, self.series.color_ready_replicas,
                      self.series.color_available_replicas):
            gauge.remove(namespace, release, str(color))
        with self._lock:
            self._clock.forget_color(namespace, release, str(color))

    @_never_raises
    def service_switched(self, namespace: str, service: str, color: Color) -> None:
        with self._lock:
            self._clock.switched(namespace, service, str(color), self.monotonic())

    @_never_raises
    def commit_seen(self, namespace: str, release: str, commit: str) -> None:
        with self._lock:
            self._clock.commit(namespace, release, commit, self.monotonic())

    # ---- the operator's own work ------------------------------------------------------------------
    @_never_raises
    def reconcile_pass(self, result: str, seconds: float) -> None:
        self.series.reconcile_passes.labels(result).inc()
        self.series.reconcile_duration.observe(seconds)

    @_never_raises
    def git_contact(self, repository: str, result: str, seconds: float) -> None:
        self.series.git_contacts.labels(repository, result).inc()
        self.series.git_contact_duration.labels(repository, result).observe(seconds)

    @_never_raises
    def git_fetch(self, repository: str, result: str, seconds: float) -> None:
        self.series.git_fetches.labels(repository, result).inc()
        self.series.git_fetch_duration.labels(repository, result).observe(seconds)

    @_never_raises
    def webhook_request(self, provider: str, code: int) -> None:
        self.series.webhook_requests.labels(provider, str(code)).inc()


def _version() -> str:
    try:
        return metadata.version("bluegreen-operator")
    except metadata.PackageNotFoundError:
        return "unknown"
