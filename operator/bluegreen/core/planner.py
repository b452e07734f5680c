"""The release planner: desired template + observed cluster + now -> the one next action. Pure.

The state of a release is re-derived on every pass from what the cluster shows: which colour the Service
selects (``bluegreen.dev/color``), which template hash each colour's Deployment runs, how many replicas it
has and whether all of them are updated, ready and available. Two facts that the cluster cannot show are
remembered elsewhere: when the previous colour may be scaled down (``status.idleScaleDownAt`` of the
release) and when the idle colour's rollout began (an annotation on that Deployment).

Rules, in order (the first that applies decides):

1. ``suspend`` freezes everything.
2. No Service, nothing to do but wait for it.
3. The active colour already runs the desired template: while the previous colour is warm, run the
   post-promotion checks (a failure, or an abort, switches back: ``gates.after_switch``); keep its replica
   count equal to the manifest's, point the preview Service at the idle colour, keep the previous colour warm
   until its scale-down time (and its checks passed), then scale it to 0 (the Deployment stays). With nothing
   warm any more and no pod of it left, run the commit's contract migration (``migrations.contract_step``).
4. The other colour runs the desired template (a release under way, or a ``git revert`` to what the previous
   colour still runs): scale it up if it was scaled down, wait until every replica is updated, ready and
   available, run the pre-promotion checks and (Manual mode) wait for a promote (``gates.before_switch``),
   then switch the selector to it. A warm previous colour is switched to at once, past every gate (fast
   rollback). A colour not available by the progress deadline is abandoned: scaled to 0 and marked with
   the commit (as a failed check or an abort marks it), so that commit is not tried again; the next commit,
   or a retry request, tries again. Scaling it up (a cold rollback, a retry) runs the commit's expand
   migration first (``migrations.expand_first`` / ``marked_retry``); a warm rollback runs none.
5. No colour runs the desired template: apply it to the idle colour (blue for the first release), once the
   commit's expand migration passed. This also supersedes a release under way, whose idle colour is simply
   overwritten.

A hand-edited selector is healed by rules 3/4: the colour running the desired template is where traffic
belongs (when the release's status already names that colour as active, the switch back is ``SelectorDrift``,
not a new release). While the desired template is unknown (git or the manifest is broken), traffic stays where the
release's status says it should be and nothing new is applied.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bluegreen.core import gates, migrations
from bluegreen.core.plans import (
    AWAITING_PROMOTION,
    WAITING_FOR_AVAILABILITY,
    Action,
    Answer,
    ColorState,
    Desired,
    MarkReason,
    MigrationResult,
    MigrationRun,
    Observed,
    Phase,
    Plan,
    Requests,
    ServiceState,
    Settings,
)
from bluegreen.core.spec import Color
from bluegreen.core.timestamps import format_time

__all__ = ["AWAITING_PROMOTION", "WAITING_FOR_AVAILABILITY", "Action", "Answer", "ColorState", "Desired",
           "MarkReason", "MigrationResult", "MigrationRun", "Observed", "Phase", "Plan", "Requests", "ServiceState",
           "Settings", "candidate_color", "plan"]


def plan(desired: Desired | None, observed: Observed, settings: Settings, now: datetime) -> Plan:
    """The one next step for a release (see the module docstring for the rules), with the answers to the
    promote/abort/retry requests it handled or refuses (none while suspended, without a Service or a manifest:
    the requests wait)."""
    step = _plan(desired, observed, settings, now)
    if desired is None or settings.suspend or not observed.service.exists:
        return step
    return gates.answer_rest(step, desired, observed, settings)


def _plan(desired: Desired | None, observed: Observed, settings: Settings, now: datetime) -> Plan:
    if settings.suspend:
        return Plan(Action.NONE, "Suspended", "spec.suspend is true: no change is made", Phase.SUSPENDED,
                    active=observed.service.color, scale_down_at=observed.scale_down_at)
    if not observed.service.exists:
        return Plan(Action.WAIT, "ServiceNotFound",
                    f"Service {observed.service.name!r} does not exist; create it (the operator only switches "
                    "its selector)", Phase.DEGRADED, active=None, stalled=True)
    if desired is None:
        return _hold(observed, settings, now)

    active = observed.service.color
    if active is not None and observed.color(active).template_hash == desired.template_hash:
        return _serving(desired, observed, settings, now, active)
    target = _color_running(desired, observed)
    if target is not None:
        return _promote(desired, observed, settings, now, target)
    idle = active.other if active is not None else _first_color(observed)
    return migrations.expand_first(Plan(Action.APPLY, "NewRelease",
                                        f"applying commit {desired.commit[:12]} to the idle colour {idle}",
                                        Phase.PROGRESSING, color=idle, replicas=desired.replicas, active=active,
                                        scale_down_at=None), desired, observed, settings)


def candidate_color(desired: Desired | None, observed: Observed) -> Color | None:
    """The colour whose checks matter now: the one running the desired template (the serving one first)."""
    if desired is None:
        return None
    active = observed.service.color
    if active is not None and observed.color(active).template_hash == desired.template_hash:
        return active
    return _color_running(desired, observed)


def _first_color(observed: Observed) -> Color:
    """Colour for a release when the Service selects none: one already holding pods of ours, else blue."""
    if observed.green.exists and observed.green.replicas > 0 and not observed.blue.exists:
        return Color.GREEN
    return Color.BLUE


def _color_running(desired: Desired, observed: Observed) -> Color | None:
    for state in (observed.blue, observed.green):
        if state.exists and state.template_hash == desired.template_hash:
            return state.color
    return None


def _serving(desired: Desired, observed: Observed, settings: Settings, now: datetime, active: Color) -> Plan:
    """Rule 3: the active colour runs the desired template (every step of it is ``serving``, but a rollback or
    a marked commit that still serves: git's head is then not what should serve)."""
    step = _serving_step(desired, observed, settings, now, active)
    return step if step.action is Action.ROLLBACK or step.stalled else replace(step, serving=True)


def _serving_step(desired: Desired, observed: Observed, settings: Settings, now: datetime, active: Color) -> Plan:
    current = observed.color(active)
    window = gates.after_switch(desired, observed, settings, active)
    if window is not None and window.action is not Action.RUN_CHECKS:
        return window  # a rollback (or a mark with nothing to go back to) comes before anything else
    if current.replicas != desired.replicas:
        return Plan(Action.SCALE, "ReplicasChanged",
                    f"scaling the active colour {active} from {current.replicas} to {desired.replicas} replicas",
                    Phase.PROGRESSING, color=active, replicas=desired.replicas, active=active,
                    scale_down_at=observed.scale_down_at)
    if window is not None:
        return window  # the post-promotion checks run: the previous colour stays warm, whatever its delay
    phase = Phase.HEALTHY if current.fully_available else Phase.DEGRADED
    step, deadline = _scale_down_step(observed, settings, now, active, phase)
    if step is not None:
        return step
    preview = _preview_step(observed, target=active.other, active=active, keep=deadline)
    if preview is not None:
        return preview
    if deadline is None:
        contract = migrations.contract_step(desired, observed, settings, active)
        if contract is not None:
            return contract
        return Plan(Action.NONE, "Released", f"{active} serves commit {desired.commit[:12]}", phase,
                    active=active)
    return Plan(Action.WAIT, "PreviousColorWarm",
                f"{active} serves commit {desired.commit[:12]}; {active.other} stays warm for instant rollback "
                f"until {format_time(deadline)}", phase, active=active,
                requeue_after=(deadline - now).total_seconds(), scale_down_at=deadline)


def _scale_down_step(observed: Observed, settings: Settings, now: datetime, active: Color,
                     phase: Phase) -> tuple[Plan | None, datetime | None]:
    """Scale the previous colour down once its delay has passed; else (None, its scale-down time or None)."""
    idle = observed.color(active.other)
    if not idle.exists or idle.replicas == 0:
        return None, None
    deadline = observed.scale_down_at or now + timedelta(seconds=settings.scale_down_delay_seconds)
    if now < deadline:
        return None, deadline
    return Plan(Action.SCALE_DOWN, "ScaleDownDelayPassed",
                f"scaling the previous colour {idle.color} to 0 (scaleDownDelaySeconds "
                f"{settings.scale_down_delay_seconds}s passed)",
                phase, color=idle.color, replicas=0, active=active, scale_down_at=None), None


def _promote(desired: Desired, observed: Observed, settings: Settings, now: datetime, target: Color) -> Plan:
    """Rule 4: the non-serving colour runs the desired template; bring it up, then switch to it."""
    state = observed.color(target)
    active = observed.service.color
    keep = observed.scale_down_at
    if state.failed_commit == desired.commit:
        return migrations.marked_retry(gates.marked(desired, observed, settings, target), desired, observed, settings)
    aborted = gates.abort_before_switch(desired, observed, target)
    if aborted is not None:
        return aborted
    if state.replicas != desired.replicas:
        kind = "ReplicasChanged"
        if state.replicas == 0:
            kind = "Retry" if state.failed_commit else "ColdRollback"
        return migrations.expand_first(
            Plan(Action.SCALE, kind, f"scaling {target} (commit {(state.commit or '?')[:12]}) to {desired.replicas} "
                                     "replicas", Phase.PROGRESSING, color=target, replicas=desired.replicas,
                 active=active, scale_down_at=keep), desired, observed, settings)
    if observed.recorded_active is target and state.replicas > 0:
        # The status says this colour serves: the selector was edited by hand. Put it back whatever the colour's
        # readiness (it served until the edit; it is never abandoned). Not a release: no history entry, and the
        # previous colour's scale-down time is kept.
        return Plan(Action.SWITCH, "SelectorDrift",
                    f"Service {observed.service.name!r} selects {active or 'no colour'}; restoring {target}",
                    Phase.DEGRADED, color=target, active=target, scale_down_at=keep)
    preview = _preview_step(observed, target=target, active=active, keep=keep)
    if preview is not None:
        return preview
    if state.fully_available:
        # The colour was brought up for an earlier commit with the same template: a revert. While that colour is
        # still warm from serving (its scale-down time is set) it is switched to at once, past every gate.
        rollback = state.commit is not None and state.commit != desired.commit
        if not (rollback and keep is not None):
            gate = gates.before_switch(desired, observed, settings, target)
            if gate is not None:
                return gate
        switch = Plan(Action.SWITCH, "Rollback" if rollback else "Promote",
                      f"switching Service {observed.service.name!r} to {target} (commit {desired.commit[:12]}): "
                      f"all {state.replicas} replicas ready and available", Phase.PROGRESSING, color=target,
                      active=target, scale_down_at=now + timedelta(seconds=settings.scale_down_delay_seconds))
        return gates.promoted(switch, desired, observed, settings)
    started = state.rollout_started_at or now
    deadline = started + timedelta(seconds=settings.progress_deadline_seconds)
    if now >= deadline:
        return Plan(Action.ABANDON, "ProgressDeadlineExceeded",
                    f"{target} did not become available within {settings.progress_deadline_seconds}s "
                    f"({state.describe_progress()}); abandoning commit {desired.commit[:12]}, traffic stays on "
                    f"{active or 'the current pods'}", Phase.DEGRADED, color=target, replicas=0, active=active,
                    scale_down_at=keep, stalled=True)
    return Plan(Action.WAIT, WAITING_FOR_AVAILABILITY,
                f"waiting for {target} to become available ({state.describe_progress()}) before switching",
                Phase.PROGRESSING, color=target, active=active,
                requeue_after=(deadline - now).total_seconds(), scale_down_at=keep)


def _hold(observed: Observed, settings: Settings, now: datetime) -> Plan:
    """The desired template is unknown: keep traffic where it was and only run the timers."""
    active = observed.service.color
    recorded = observed.recorded_active
    if recorded is not None and active != recorded and observed.color(recorded).fully_available:
        return Plan(Action.SWITCH, "SelectorDrift",
                    f"Service {observed.service.name!r} selects {active or 'no colour'}; restoring {recorded}",
                    Phase.DEGRADED, color=recorded, active=recorded, scale_down_at=observed.scale_down_at)
    if active is None:
        return Plan(Action.WAIT, "SourceNotReady", "waiting for a valid manifest in git", Phase.PENDING)
    step, deadline = _scale_down_step(observed, settings, now, active, Phase.DEGRADED)
    if step is not None:
        return step
    remaining = (deadline - now).total_seconds() if deadline is not None else None
    return Plan(Action.WAIT, "SourceNotReady", f"{active} keeps serving while the source is not ready",
                Phase.DEGRADED, active=active, requeue_after=remaining, scale_down_at=deadline)


def _preview_step(observed: Observed, *, target: Color, active: Color | None,
                  keep: datetime | None) -> Plan | None:
    """Point the preview Service (if any) at the colour that does not serve (or is about to serve) traffic."""
    preview = observed.preview
    if preview is None or not preview.exists or preview.color == target:
        return None
    return Plan(Action.SWITCH_PREVIEW, "PreviewSwitch",
                f"pointing preview Service {preview.name!r} at the idle colour {target}",
                Phase.PROGRESSING if active != target.other else Phase.HEALTHY, color=target, active=active,
                scale_down_at=keep)
