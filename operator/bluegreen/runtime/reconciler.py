"""One reconcile pass for one release, as named steps in order (the way Flux's reconcilers read):

1. ``step_source``: adopt the latest result of the release's git check (``SourceStep``; git itself is read by
   the fetch scheduler, ``runtime.fetcher``, on its own threads: a pass never waits for git);
2. ``step_release``: observe -> plan -> act, repeated while a step writes (at most ``MAX_STEPS_PER_PASS``),
   each step announced (Event, log line, history) and summarized (``summarize_status``). The release gates
   (``runtime.gate_step``) add the candidate's check results to what is observed, start the checks a step
   asks for (``RunChecks``: the runner works on its own threads and wakes the release on a verdict) and
   answer the promote/abort/retry annotations. The migrations (``runtime.migration_step``) add the release's
   expand/contract runs to what is observed and create the Job a ``RunMigration`` step asks for.

Written against the Protocols of ``bluegreen.core.protocols`` (the cluster, the git source, the signature
verifier), so it runs against the real adapters in the operator and against fakes in tests. Blocking on the
cluster only; the controller runs it in a worker thread. Without a ``fetcher`` it makes an inline one (git is
then read inside the pass, for tests and tools). What it keeps in memory (``Memory``: the last fetched commit and
manifest, the last status written) is a cache: after a restart everything is re-read from git and the cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bluegreen.core.checks import CheckRunner
from bluegreen.core.conditions import build_conditions
from bluegreen.core.desired import owner_reference, render_deployment
from bluegreen.core.errors import ClusterError, Outcome
from bluegreen.core.history import record
from bluegreen.core.planner import (
    Action,
    Desired,
    MarkReason,
    Observed,
    Phase,
    Plan,
    Requests,
    Settings,
    plan,
)
from bluegreen.core.protocols import Cluster, Source, Verifier
from bluegreen.core.spec import (
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_COMMIT,
    ANNOTATION_EXPAND_JOB,
    ANNOTATION_FAILED_COMMIT,
    ANNOTATION_FAILED_MESSAGE,
    ANNOTATION_FAILED_REASON,
    ANNOTATION_RECONCILE_AT,
    ANNOTATION_ROLLOUT_STARTED_AT,
    Color,
    ReleaseRef,
    ReleaseSpec,
    SpecError,
    parse_spec,
)
from bluegreen.core.timestamps import format_time, parse_time
from bluegreen.hooks.hook_jobs import HookJobs
from bluegreen.hooks.http_checks import HttpCheckRunner
from bluegreen.hooks.runner import CheckRunners
from bluegreen.logs import get_logger
from bluegreen.runtime.companion_step import CompanionStep
from bluegreen.runtime.fetcher import FetchScheduler
from bluegreen.runtime.gate_step import GateStep, awaiting_status, checks_status, requests_of
from bluegreen.runtime.memory import Memory
from bluegreen.runtime.migration_step import MigrationStep, migrations_status
from bluegreen.runtime.source_step import SourceStep

MAX_STEPS_PER_PASS = 8
MARK_MESSAGE_LIMIT = 1000
"""Characters of a failure message kept in the ``bluegreen.dev/failed-message`` annotation."""
BLOCKED_RETRY_SECONDS = 30.0
"""A release blocked by the cluster (a foreign Deployment in the way) looks again this often: removing the
obstacle need not produce an event the operator watches."""


@dataclass
class Pass:
    """One pass over one release: what it was given and what it has written so far."""

    release: ReleaseRef
    spec: ReleaseSpec
    memory: Memory
    generation: int
    status: Mapping[str, Any]
    """The release's status as of the last patch of this pass."""
    history: list[dict[str, Any]]
    log: Any
    shown: Mapping[str, Any]
    """The release's status as the object handed to the pass shows it."""
    requests: Requests = field(default_factory=Requests)
    """The promote/abort/retry requests on the release not handled yet."""
    unpatched: dict[str, Any] | None = None
    """The status summary of the pass's latest step, not patched yet: one patch per pass (``flush_status``)."""


class Reconciler:
    """Reconciles BlueGreenReleases one pass at a time (thread-safe across different releases)."""

    on_status: Callable[[ReleaseRef, ReleaseSpec, Mapping[str, Any], Mapping[str, Any]], None] | None = None
    """Called after each status patch of a pass with the status it started from and the one written (the
    notifier, ``bluegreen.notify``: it only queues)."""

    def __init__(self, cluster: Cluster, source: Source, verifier: Verifier, *,
                 clock: Callable[[], datetime] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 fetcher: FetchScheduler | None = None, checks: CheckRunner | None = None,
                 hook_jobs: HookJobs | None = None) -> None:
        self.cluster = cluster
        self.gates = GateStep(cluster, checks if checks is not None else CheckRunners(
            http=HttpCheckRunner(lambda namespace, name, port: cluster.service_address(namespace, name, port))))
        self.migrations = MigrationStep(cluster, hook_jobs)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self.fetcher = fetcher or FetchScheduler(source, cluster, verifier, monotonic=monotonic, inline=True,
                                                 random=lambda: 0.0)  # inline: no jitter, checks exactly on time
        self.sources = SourceStep(self.fetcher, monotonic)
        self.companions = CompanionStep(cluster)
        self._memory: dict[tuple[str, str], Memory] = {}
        self._guard = threading.Lock()

    def forget(self, namespace: str, name: str) -> None:
        """The release is gone: drop its memory, its git subscription and its checks."""
        with self._guard:
            self._memory.pop((namespace, name), None)
        self.fetcher.unsubscribe(namespace, name)
        self.gates.checks.cancel(ReleaseRef(namespace, name))

    def memory(self, namespace: str, name: str) -> Memory:
        with self._guard:
            return self._memory.setdefault((namespace, name), Memory())

    def request_check(self, namespace: str, name: str, at: float) -> None:
        """Ask for a git check no older than ``at`` (monotonic) now (push webhooks); the release is queued
        when it is done."""
        self.fetcher.request_check(namespace, name, at)

    # ---- the pass -------------------------------------------------------------------------------
    def reconcile(self, body: Mapping[str, Any], spec: ReleaseSpec | SpecError | None = None) -> float | None:
        """Run one pass for the release ``body`` whose ``spec`` the caller parsed (None: parse it here); return
        seconds until the next pass is due (None: on events only)."""
        meta = body["metadata"]
        release = ReleaseRef(meta["namespace"], meta["name"], meta.get("uid", ""))
        if spec is None:
            spec = parse_spec(body.get("spec") or {})
        memory = self.memory(release.namespace, release.name)
        with memory.lock:
            return self._reconcile(release, body, spec, memory)

    def _reconcile(self, release: ReleaseRef, body: Mapping[str, Any], spec: ReleaseSpec | SpecError,
                   memory: Memory) -> float | None:
        meta = body["metadata"]
        status: Mapping[str, Any] = body.get("status") or {}
        generation = int(meta.get("generation", 0))
        log = get_logger().bind(release=release.name, namespace=release.namespace)
        if isinstance(spec, SpecError):
            self._report_blocked(release, memory, status, generation, spec.reason, spec.message, log)
            return None
        waiting = self.step_source(release, spec, memory, (meta.get("annotations") or {}).get(ANNOTATION_RECONCILE_AT))
        if waiting is not None:
            return waiting
        log = log.bind(commit=memory.commit.sha[:12] if memory.commit else None)
        run = Pass(release, spec, memory, generation, status, list(status.get("history") or []), log, status,
                   requests_of(meta.get("annotations") or {}, memory))
        return self.step_release(run)

    def step_source(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, token: str | None) -> float | None:
        """Step 1: adopt the latest git result (commit, manifest, signature verdict) into the release's memory.
        None: go on; seconds: nothing is known of git yet, stop this pass (see ``SourceStep.run``)."""
        return self.sources.run(release, spec, memory, token)

    def step_release(self, run: Pass) -> float | None:
        """Step 2: observe -> plan -> act until a step writes nothing; return when the next pass is due."""
        spec = run.spec
        settings = Settings(spec.scale_down_delay_seconds, spec.progress_deadline_seconds, spec.suspend,
                            manual=spec.promotion_mode == "Manual",
                            pre_checks=tuple(c.name for c in spec.pre_promotion),
                            post_checks=tuple(c.name for c in spec.post_promotion),
                            expand=spec.migrations.expand is not None, contract=spec.migrations.contract is not None)
        step: Plan | None = None
        for _ in range(MAX_STEPS_PER_PASS):
            now = self.clock()
            moved = False
            try:
                observed = self._observe(run, settings)
                step = plan(_desired(run.memory), observed, settings, now)
                if step.writes:
                    self._act(run, step, observed, now)
                run.requests = self.gates.answer(run.release, run.memory, run.requests, step, run.log)
                if step.action is Action.RUN_CHECKS:
                    moved = self.gates.run_checks(run.release, run.spec, run.memory, step, observed)
                elif step.action is Action.RUN_MIGRATION:
                    moved = self.migrations.run(run.release, run.spec, run.memory, step, observed, run.log)
            except ClusterError as exc:
                self.flush_status(run)  # what the steps before it did (their history entries) is kept
                self._report_blocked(run.release, run.memory, run.status, run.generation, exc.reason, exc.message,
                                     run.log)
                return BLOCKED_RETRY_SECONDS
            self._announce(run, step, now)
            self.summarize_status(run, step, observed, now)
            if not step.writes and not moved:
                break
        assert step is not None
        self.flush_status(run)
        return self._next_pass(spec, step, run.memory)

    # ---- observe and act ------------------------------------------------------------------------
    def _observe(self, run: Pass, settings: Settings) -> Observed:
        """The release's colours, Services and hook Jobs as the cluster has them now."""
        release, spec = run.release, run.spec
        preview = self.cluster.service_state(release.namespace, spec.preview_service) \
            if spec.preview_service else None
        recorded = run.status.get("activeColor")
        observed = Observed(
            blue=self.cluster.color_state(release, Color.BLUE),
            green=self.cluster.color_state(release, Color.GREEN),
            service=self.cluster.service_state(release.namespace, spec.service),
            preview=preview,
            recorded_active=Color(recorded) if recorded in ("blue", "green") else None,
            scale_down_at=parse_time(run.status.get("idleScaleDownAt")),
            requests=run.requests,
        )
        desired = _desired(run.memory)
        observed = self.gates.observe(run.release, run.spec, run.memory, run.status, observed, desired)
        return self.migrations.observe(run.release, run.spec, run.memory, observed, desired, settings)

    def _act(self, run: Pass, step: Plan, observed: Observed, now: datetime) -> None:
        """Perform the one write ``step`` names, with the colour's copies (``runtime.companion_step``)."""
        release, spec, memory = run.release, run.spec, run.memory
        assert step.color is not None
        stamp = format_time(now)
        state = observed.color(step.color)
        owner = owner_reference(release.name, release.uid) if spec.owns_deployments and release.uid else None
        if step.action is Action.APPLY:
            assert memory.template is not None and memory.commit is not None and step.replicas is not None
            body = render_deployment(memory.template, release=release.name, namespace=release.namespace,
                                     color=step.color, commit=memory.commit.sha, replicas=step.replicas, owner=owner)
            body["metadata"]["annotations"][ANNOTATION_ROLLOUT_STARTED_AT] = stamp
            if step.expanded:
                body["metadata"]["annotations"][ANNOTATION_EXPAND_JOB] = step.expanded
            prepared = self.companions.before_deployment(release, step.color, memory.template, memory.commit.sha,
                                                         owner, state)
            self.cluster.apply_deployment(body)
            cleanup = {**(UNMARK if state.failed_commit else {}), **prepared.cleared}
            if cleanup:
                self.cluster.scale(release, step.color, step.replicas, cleanup)
            self.companions.after_deployment(release, prepared)
        elif step.action in (Action.SCALE, Action.RETRY):
            assert step.replicas is not None
            starting = step.color != observed.service.color
            annotations: dict[str, str | None] = \
                {ANNOTATION_ROLLOUT_STARTED_AT: stamp, **UNMARK} if starting else {}
            if step.reason in ("Retry", "ColdRollback") and memory.commit is not None:
                annotations[ANNOTATION_COMMIT] = memory.commit.sha  # the colour now runs this commit
            if step.expanded:
                annotations[ANNOTATION_EXPAND_JOB] = step.expanded  # the expand this bring-up follows
            if memory.template is not None and memory.commit is not None:  # a scaled-down colour gets its HPA back
                annotations.update(self.companions.start_autoscaler(release, step.color, memory.template,
                                                                    memory.commit.sha, owner, state))
            self.cluster.scale(release, step.color, step.replicas, annotations)
            if step.action is Action.RETRY and memory.commit is not None:
                self.gates.rerun(release, spec, memory.commit.sha, step.color)  # its checks run again from the start
                memory.checks = {}
        elif step.action is Action.SCALE_DOWN:
            stopped = self.companions.stop_autoscaler(release, state)  # no HPA may scale a scaled-down colour up
            self.cluster.scale(release, step.color, 0, {ANNOTATION_ROLLOUT_STARTED_AT: None, **stopped})
        elif step.action in (Action.ABANDON, Action.FAIL):
            assert memory.commit is not None
            stopped = self.companions.stop_autoscaler(release, state)
            self.cluster.scale(release, step.color, 0, {**_mark(memory.commit.sha, step), **stopped})
            self.gates.checks.cancel(release)
        elif step.action is Action.ROLLBACK:
            assert memory.commit is not None
            failed = step.color.other
            # The mark first: should the switch not follow (a crash), the next pass switches back again.
            self.cluster.scale(release, failed, observed.color(failed).replicas, _mark(memory.commit.sha, step))
            self.cluster.switch_selector(release.namespace, spec.service, step.color)
            self.gates.checks.cancel(release)
        elif step.action is Action.SWITCH:
            self.cluster.switch_selector(release.namespace, spec.service, step.color)
        elif step.action is Action.SWITCH_PREVIEW:
            assert spec.preview_service is not None
            self.cluster.switch_selector(release.namespace, spec.preview_service, step.color)

    # ---- status, events, timing -----------------------------------------------------------------
    def _announce(self, run: Pass, step: Plan, now: datetime) -> None:
        """A write: a log line, an Event and the history entry. No write: a notice if a problem appeared, or
        once when a commit begins to wait for a promote."""
        commit = run.memory.commit
        if commit is not None:  # writes, and the one non-write milestone: a failed expand
            run.history = record(run.history, step, commit=commit.sha, summary=commit.summary, author=commit.author,
                                 now=now)
        if not step.writes:
            self._notice(run, step)
            waiting = (run.memory.commit.sha, str(step.color)) if step.awaiting and run.memory.commit else None
            if waiting is not None and waiting != run.memory.awaiting:
                run.log.info(step.message, action=str(step.action), reason=step.reason, color=str(step.color))
                self.cluster.post_event(run.release, "Normal", step.reason, step.message)
            run.memory.awaiting = waiting
            return
        say = run.log.warning if step.stalled else run.log.info
        say(step.message, action=str(step.action), reason=step.reason, color=str(step.color))
        self.cluster.post_event(run.release, "Warning" if step.stalled else "Normal", step.reason, step.message)
        if step.stalled:  # this Warning is the notice: the wait that follows does not repeat it
            run.memory.last_notice = (step.reason, step.message)

    def summarize_status(self, run: Pass, step: Plan, observed: Observed, now: datetime) -> None:
        """The status summary of where the release stands after ``step``: the next step of the pass plans from
        it; it is patched once, at the end of the pass (``flush_status``)."""
        status = self._status(run, step, observed, now)
        run.unpatched = status
        run.status = {**run.status, **status}

    def flush_status(self, run: Pass) -> None:
        """Patch the pass's status summary unless the release already has it (as last patched, or as the
        release object shows it: after a restart an unchanged status is not written again)."""
        status, run.unpatched = run.unpatched, None
        if status is None or status == run.memory.last_status or _shown(status, run.shown):
            if status is not None:
                run.memory.last_status = status
            return
        self.cluster.patch_status(run.release, status)
        run.memory.last_status = status
        if self.on_status is not None:
            self.on_status(run.release, run.spec, run.shown, status)

    def _status(self, run: Pass, step: Plan, observed: Observed, now: datetime) -> dict[str, Any]:
        memory, previous = run.memory, run.status
        active = step.active
        active_revision = previous.get("activeRevision")
        desired = _desired(memory)
        if active is not None:
            state = observed.color(active)
            if desired is not None and state.template_hash == desired.template_hash:
                active_revision = desired.commit  # the commit whose manifest serves (a revert names itself)
            elif previous.get("activeColor") != str(active):
                active_revision = state.commit
        preview = observed.preview.color if observed.preview is not None else None
        if step.action is Action.SWITCH_PREVIEW:
            preview = step.color
        return {
            "activeColor": str(active) if active else None,
            "activeRevision": active_revision,
            "lastAttemptedRevision": memory.source.commit or (memory.commit.sha if memory.commit else None),
            "observedGeneration": run.generation,
            "phase": str(step.phase),
            "message": step.message,
            "previewColor": str(preview) if preview else None,
            "idleScaleDownAt": format_time(step.scale_down_at) if step.scale_down_at else None,
            "conditions": build_conditions(step, memory.source, run.generation, previous.get("conditions") or [],
                                           now, verified=memory.verified),
            "history": run.history,
            "checks": checks_status(memory, step),
            "migrations": migrations_status(run.spec, observed),
            "awaitingPromotion": awaiting_status(step, memory, previous, now),
            **_handled(memory),
        }

    def _notice(self, run: Pass, step: Plan) -> None:
        """An Event and a log line when a problem (bad source, stall) appears or changes; silence otherwise."""
        memory = run.memory
        if not memory.source.ok and memory.source.reason != "NotFetched" and step.phase != Phase.SUSPENDED:
            notice = (memory.source.reason, memory.source.message)
        elif step.stalled:
            notice = (step.reason, step.message)
        else:
            if memory.last_notice is not None:
                run.log.info("recovered", reason=step.reason, action=str(step.action))
            memory.last_notice = None
            return
        if notice != memory.last_notice:
            memory.last_notice = notice
            run.log.warning(notice[1], reason=notice[0], action=str(step.action))
            self.cluster.post_event(run.release, "Warning", *notice)

    def _report_blocked(self, release: ReleaseRef, memory: Memory, previous: Mapping[str, Any], generation: int,
                        reason: str, message: str, log: Any) -> None:
        """The release cannot be planned (bad spec, foreign Deployment): say so, touch nothing else."""
        now = self.clock()
        step = Plan(Action.NONE, reason, message, Phase.DEGRADED, stalled=True,
                    active=Color(previous["activeColor"]) if previous.get("activeColor") in ("blue", "green") else None)
        source = memory.source if reason != "InvalidSpec" else Outcome(False, reason, message)
        status = {
            "observedGeneration": generation, "phase": str(step.phase), "message": message,
            "conditions": build_conditions(step, source, generation, previous.get("conditions") or [], now),
            **_handled(memory),
        }
        if (reason, message) != memory.last_notice:
            memory.last_notice = (reason, message)
            log.warning(message, reason=reason, action="None")
            self.cluster.post_event(release, "Warning", reason, message)
        if status != memory.last_status and not _shown(status, previous):
            self.cluster.patch_status(release, status)
        memory.last_status = status

    def _next_pass(self, spec: ReleaseSpec, step: Plan, memory: Memory) -> float | None:
        """Seconds until the step's own deadline, or a resync pass after the git interval, whichever comes
        first. (A new commit does not wait for it: the fetch scheduler queues the release at once.)"""
        if spec.suspend:
            return None
        resync = spec.source.interval_seconds
        if step.requeue_after is None:
            return resync
        return min(resync, max(0.0, step.requeue_after))


def _shown(status: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Does the release's status ``current`` already say all of ``status``? (A None value is an absent field: a
    merge patch removes it.)"""
    return all(current.get(key) == value for key, value in status.items())


UNMARK: dict[str, str | None] = {ANNOTATION_FAILED_COMMIT: None, ANNOTATION_FAILED_REASON: None,
                                 ANNOTATION_FAILED_MESSAGE: None, ANNOTATION_ABANDONED_COMMIT: None}
"""Annotations that clear a colour's failure mark (the older abandoned-commit one included)."""


def _mark(commit: str, step: Plan) -> dict[str, str | None]:
    """The failure mark of ``commit`` for ``step`` (ABANDON, FAIL, ROLLBACK)."""
    return {**UNMARK, ANNOTATION_FAILED_COMMIT: commit,
            ANNOTATION_FAILED_REASON: str(step.mark or MarkReason.PROGRESS_DEADLINE_EXCEEDED),
            ANNOTATION_FAILED_MESSAGE: step.message[:MARK_MESSAGE_LIMIT]}


def _handled(memory: Memory) -> dict[str, str]:
    """``lastHandledReconcileAt``: the last ``bluegreen.dev/reconcile-at`` value whose git check has run (Flux's
    convention), so tools can wait for a forced check to be handled; absent until one was."""
    return {"lastHandledReconcileAt": memory.reconcile_token} if memory.reconcile_token is not None else {}


def _desired(memory: Memory) -> Desired | None:
    """What git asks for, once a commit and its manifest are known."""
    if memory.template is None or memory.commit is None:
        return None
    return Desired(memory.commit.sha, memory.template.template_hash, memory.template.replicas,
                   memory.template.autoscale)
