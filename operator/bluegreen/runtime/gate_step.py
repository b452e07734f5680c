"""The release-gate part of a reconcile pass: the candidate's check results into ``Observed``, the checks a
plan asks for started, and the promote/abort/retry requests answered (their annotations removed).

The *candidate* is the desired commit on the colour that runs its template (``planner.candidate_color``);
when it changes (a newer commit, a colour brought up again) the runs of the one before are cancelled. Its
latest results are kept in the release's memory as ``status.checks`` entries, seeded after a restart from
the status the previous operator wrote, so what failed stays visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from bluegreen.core.checks import CheckResult, CheckRun, CheckRunner, CheckSpec, Hook, Verdict
from bluegreen.core.planner import Action, Desired, Observed, Plan, Requests, candidate_color
from bluegreen.core.protocols import Cluster
from bluegreen.core.spec import ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_RETRY, Color, ReleaseRef, ReleaseSpec
from bluegreen.core.timestamps import format_time
from bluegreen.runtime.memory import Memory

REQUEST_ANNOTATIONS = {"promote": ANNOTATION_PROMOTE, "abort": ANNOTATION_ABORT, "retry": ANNOTATION_RETRY}
MESSAGE_LIMIT = 1024
"""Characters of a check's message kept in ``status.checks``."""


class GateStep:
    """Checks and requests for the passes of a ``Reconciler`` (thread-safe as the runner is)."""

    def __init__(self, cluster: Cluster, checks: CheckRunner) -> None:
        self.cluster = cluster
        self.checks = checks

    def observe(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, status: Mapping[str, Any],
                observed: Observed, desired: Desired | None) -> Observed:
        """``observed`` with the candidate's pre- and post-promotion results (from the runner, no API request)."""
        color = candidate_color(desired, observed)
        if desired is None or color is None or not (spec.pre_promotion or spec.post_promotion):
            return observed
        candidate = (desired.commit, str(color))
        if memory.candidate != candidate:
            if memory.candidate is not None:
                self.checks.cancel(release)
            memory.candidate = candidate
            memory.checks = _stored_checks(status, candidate)
        results: dict[Hook, Mapping[str, CheckResult]] = {}
        for hook in Hook:
            checks = checks_of(spec, hook)
            run = CheckRun(release, hook, desired.commit, color, spec.preview_service)
            results[hook] = self.checks.results(run, checks) if checks else {}
            _remember(memory, run, results[hook])
        return replace(observed, pre_results=results[Hook.PRE_PROMOTION], post_results=results[Hook.POST_PROMOTION])

    def run_checks(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, step: Plan,
                   observed: Observed) -> bool:
        """Start the checks the plan asks for (idempotent); True when a verdict is already known that the plan
        did not see (then plan again at once)."""
        assert step.hook is not None and step.color is not None and memory.commit is not None
        run = CheckRun(release, step.hook, memory.commit.sha, step.color, spec.preview_service)
        found = self.checks.ensure(run, checks_of(spec, step.hook), memory.job_manifests)
        _remember(memory, run, found)
        seen = observed.results(step.hook)
        return any(r.verdict is not Verdict.RUNNING and (seen.get(n) is None or seen[n].verdict is not r.verdict)
                   for n, r in found.items())

    def rerun(self, release: ReleaseRef, spec: ReleaseSpec, commit: str, color: Color) -> None:
        """A retry: every check of ``commit`` on ``color`` runs again from the start (its Jobs too)."""
        self.checks.cancel(release)
        for hook in Hook:
            checks = checks_of(spec, hook)
            if checks:
                self.checks.rerun(CheckRun(release, hook, commit, color, spec.preview_service), checks)

    def answer(self, release: ReleaseRef, memory: Memory, requests: Requests, step: Plan, log: Any) -> Requests:
        """Remove the annotations of the requests the step handled (a refused one gets a Warning Event and a
        log line); return the requests left for the next step of the pass."""
        if not step.answers:
            return requests
        removed: dict[str, str | None] = {}
        for answer in step.answers:
            key = REQUEST_ANNOTATIONS[answer.kind]
            memory.handled[key] = answer.commit
            removed[key] = None
            if answer.accepted:
                log.info(answer.message, action=answer.kind.capitalize(), reason="RequestDone")
            else:
                reason = f"{answer.kind.capitalize()}Refused"
                log.warning(answer.message, action=answer.kind.capitalize(), reason=reason)
                self.cluster.post_event(release, "Warning", reason, answer.message)
        self.cluster.annotate_release(release.namespace, release.name, removed)
        return replace(requests, **{answer.kind: None for answer in step.answers})


def requests_of(annotations: Mapping[str, str], memory: Memory) -> Requests:
    """The release's promote/abort/retry annotations not handled yet (a handled one is forgotten once the
    release is seen without it: its removal's watch event may come after the next pass began)."""
    for key in [k for k, v in memory.handled.items() if annotations.get(k) != v]:
        del memory.handled[key]
    found = {kind: str(annotations[key]).strip() for kind, key in REQUEST_ANNOTATIONS.items()
             if annotations.get(key) and memory.handled.get(key) != annotations[key]}
    return Requests(**found)


def checks_of(spec: ReleaseSpec, hook: Hook) -> tuple[CheckSpec, ...]:
    return spec.pre_promotion if hook is Hook.PRE_PROMOTION else spec.post_promotion


def checks_status(memory: Memory, step: Plan) -> list[dict[str, Any]]:
    """``status.checks``: the candidate's results, pre-promotion first (none right after a retry)."""
    if step.action is Action.RETRY:
        return []
    return sorted(memory.checks.values(), key=lambda c: (c["hook"] != str(Hook.PRE_PROMOTION), c["name"]))


def awaiting_status(step: Plan, memory: Memory, previous: Mapping[str, Any], now: datetime) -> dict[str, str] | None:
    """``status.awaitingPromotion`` while the candidate waits for a promote (``since`` kept from before)."""
    if not step.awaiting or memory.commit is None or step.color is None:
        return None
    before = previous.get("awaitingPromotion") or {}
    same = (before.get("revision"), before.get("color")) == (memory.commit.sha, str(step.color))
    return {"revision": memory.commit.sha, "color": str(step.color),
            "since": before["since"] if same and before.get("since") else format_time(now)}


def _remember(memory: Memory, run: CheckRun, results: Mapping[str, CheckResult]) -> None:
    for name, result in results.items():
        memory.checks[(str(run.hook), name)] = {
            "name": name, "hook": str(run.hook), "commit": run.commit, "color": str(run.color),
            "verdict": str(result.verdict), "reason": result.reason, "message": result.message[:MESSAGE_LIMIT],
            "startedAt": format_time(result.started_at) if result.started_at else None,
            "finishedAt": format_time(result.finished_at) if result.finished_at else None}


def _stored_checks(status: Mapping[str, Any], candidate: tuple[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``status.checks`` entries of ``candidate`` (commit, colour): what a previous run of the operator saw."""
    return {(str(c.get("hook")), str(c.get("name"))): dict(c) for c in status.get("checks") or []
            if isinstance(c, Mapping) and (c.get("commit"), c.get("color")) == candidate}


