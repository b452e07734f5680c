"""The gates of a release: pre-promotion checks, the manual gate, post-promotion checks with automatic
rollback, and promote / abort / retry requests. Pure; called by ``bluegreen.core.planner``.

Where they sit in a release (DESIGN.md "A release, step by step")::

    idle colour fully available -> pre-promotion checks -> [Manual: wait for a promote] -> switch
      -> post-promotion checks while the previous colour is warm (its scale-down waits for them)

- A failed pre-promotion check (or an abort before the switch) scales the idle colour to 0 and marks the
  commit on it (``MarkReason``); traffic is never touched.
- A failed post-promotion check (or an abort during the post-promotion window) marks the serving colour,
  then switches back to the still-warm previous colour (one step: mark first, so a crash between the two
  cannot promote the commit again); the failed colour is scaled to 0 next.
- A marked commit is not tried again until a new commit or a retry request for it.
- A WARM rollback (a ``git revert`` back to what the still-warm previous colour runs) passes no gate: it goes
  back to what served. A cold one (that colour was scaled to 0) is a release like any other.

Requests (``Requests``) name a commit; one that the plan acts on, or that cannot apply, is answered
(``Answer``: done or refused) so the reconciler removes its annotation. A promote for the desired commit
while it is still on its way (Manual mode) stays until the commit reaches the gate: it is pre-approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bluegreen.core.checks import CheckResult, Hook, Verdict
from bluegreen.core.plans import (
    AWAITING_PROMOTION,
    Action,
    Answer,
    Desired,
    MarkReason,
    Observed,
    Phase,
    Plan,
    Settings,
    all_passed,
    first_failure,
    names_commit,
)
from bluegreen.core.spec import Color

WHAT_TO_DO = "revert it in git or push a fix (or `bluegreen retry` to try it again)"


def short(commit: str | None) -> str:
    return (commit or "?")[:12]


def _progress(names: tuple[str, ...], results: Mapping[str, CheckResult]) -> str:
    passed = sum(1 for n in names if n in results and results[n].verdict is Verdict.PASSED)
    return f"{passed}/{len(names)} passed"


def describe_failure(hook: Hook, failure: CheckResult, color: Color, commit: str) -> str:
    kind = "pre-promotion" if hook is Hook.PRE_PROMOTION else "post-promotion"
    return f"{kind} check {failure.name!r} failed on {color} (commit {short(commit)}): {failure.message}"


def before_switch(desired: Desired, observed: Observed, settings: Settings, target: Color) -> Plan | None:
    """The idle colour ``target`` is fully available: run its pre-promotion checks, then (Manual) wait for a
    promote. None: go ahead and switch."""
    active, keep = observed.service.color, observed.scale_down_at
    names, results = settings.pre_checks, observed.pre_results
    failure = first_failure(names, results)
    if failure is not None:
        return Plan(Action.FAIL, MarkReason.PRE_PROMOTION_CHECK_FAILED,
                    f"{describe_failure(Hook.PRE_PROMOTION, failure, target, desired.commit)}; {target} is scaled to "
                    f"0 and traffic stays on {active or 'the current pods'}; the commit is not tried again: "
                    f"{WHAT_TO_DO}", Phase.DEGRADED, color=target, replicas=0, active=active, scale_down_at=keep,
                    stalled=True, mark=MarkReason.PRE_PROMOTION_CHECK_FAILED)
    if not all_passed(names, results):
        return Plan(Action.RUN_CHECKS, "PrePromotionChecks",
                    f"running the pre-promotion checks against {target} (commit {short(desired.commit)}): "
                    f"{_progress(names, results)}", Phase.PROGRESSING, color=target, active=active,
                    scale_down_at=keep, hook=Hook.PRE_PROMOTION)
    if settings.manual and not names_commit(observed.requests.promote, desired.commit):
        passed = "passed its checks and waits" if names else "waits"
        return Plan(Action.WAIT, AWAITING_PROMOTION,
                    f"commit {short(desired.commit)} on {target} {passed} for a promote: `bluegreen promote` "
                    f"(annotation bluegreen.dev/promote={desired.commit})", Phase.AWAITING_PROMOTION, color=target,
                    active=active, scale_down_at=keep, awaiting=True)
    return None


def promoted(step: Plan, desired: Desired, observed: Observed, settings: Settings) -> Plan:
    """The switch after the gates: a Manual promote that it carries out is answered."""
    if settings.manual and names_commit(observed.requests.promote, desired.commit):
        assert observed.requests.promote is not None
        return replace(step, answers=(Answer("promote", observed.requests.promote, True,
                                             f"promoted commit {short(desired.commit)} on {step.color}"),))
    return step


def abort_before_switch(desired: Desired, observed: Observed, target: Color) -> Plan | None:
    """An abort of the release under way: scale the idle colour to 0 and mark the commit Aborted."""
    request = observed.requests.abort
    if not names_commit(request, desired.commit) or observed.recorded_active is target:
        return None
    assert request is not None
    active = observed.service.color
    message = (f"the release of commit {short(desired.commit)} was aborted: {target} is scaled to 0 and traffic "
               f"stays on {active or 'the current pods'}; the commit is not tried again: {WHAT_TO_DO}")
    return Plan(Action.FAIL, MarkReason.ABORTED, message, Phase.DEGRADED, color=target, replicas=0, active=active,
                scale_down_at=observed.scale_down_at, stalled=True, mark=MarkReason.ABORTED,
                answers=(Answer("abort", request, True, message),))


def marked(desired: Desired, observed: Observed, settings: Settings, target: Color) -> Plan:
    """The colour running the desired template carries a failure mark for the desired commit: a retry clears
    it; else the colour goes to 0 and the release stalls."""
    state, active, keep = observed.color(target), observed.service.color, observed.scale_down_at
    retry = observed.requests.retry
    if names_commit(retry, desired.commit):
        assert retry is not None
        message = (f"retrying commit {short(desired.commit)}: its {state.failed_reason} mark is cleared and "
                   f"{target} is scaled to {desired.replicas} replicas")
        return Plan(Action.RETRY, "Retry", message, Phase.PROGRESSING, color=target, replicas=desired.replicas,
                    active=active, scale_down_at=keep, answers=(Answer("retry", retry, True, message),))
    if state.replicas > 0:
        return Plan(Action.SCALE_DOWN, "ScaleDownFailedColor",
                    f"scaling {target} (commit {short(desired.commit)}, marked {state.failed_reason}) to 0",
                    Phase.DEGRADED, color=target, replicas=0, active=active, scale_down_at=keep, stalled=True)
    if state.failed_reason == MarkReason.PROGRESS_DEADLINE_EXCEEDED and not state.failed_message:
        message = (f"commit {short(desired.commit)} was abandoned on {target}: it did not become available within "
                   f"{settings.progress_deadline_seconds}s; push a new commit to try again")
    else:
        message = state.failed_message or f"commit {short(desired.commit)} is marked {state.failed_reason}"
    return Plan(Action.WAIT, state.failed_reason, message, Phase.DEGRADED, active=active, scale_down_at=keep,
                stalled=True)


def after_switch(desired: Desired, observed: Observed, settings: Settings, active: Color) -> Plan | None:
    """The active colour runs the desired template: the post-promotion window while the previous colour is
    warm. None: no window (no post checks, a warm rollback, nothing warm) or it is over (all passed)."""
    current, previous = observed.color(active), observed.color(active.other)
    warm = previous.exists and previous.replicas > 0
    if current.failed_commit == desired.commit:  # marked, but the switch back did not happen (a crash between)
        if warm:
            return _rollback(desired, observed, active, current.failed_reason,
                             current.failed_message or f"commit {short(desired.commit)} is marked "
                                                       f"{current.failed_reason}")
        return Plan(Action.WAIT, current.failed_reason,
                    f"commit {short(desired.commit)} is marked {current.failed_reason} but no other colour is warm to "
                    f"go back to: {active} keeps serving it; {WHAT_TO_DO}", Phase.DEGRADED, active=active,
                    stalled=True, scale_down_at=observed.scale_down_at)
    names, results = settings.post_checks, observed.post_results
    if not names or not warm or current.commit != desired.commit or all_passed(names, results):
        return None
    request = observed.requests.abort
    if names_commit(request, desired.commit):
        assert request is not None
        step = _rollback(desired, observed, active, MarkReason.ABORTED,
                         f"the release of commit {short(desired.commit)} was aborted after the switch")
        return replace(step, answers=(Answer("abort", request, True, step.message),))
    failure = first_failure(names, results)
    if failure is not None:
        return _rollback(desired, observed, active, MarkReason.POST_PROMOTION_CHECK_FAILED,
                         describe_failure(Hook.POST_PROMOTION, failure, active, desired.commit))
    return Plan(Action.RUN_CHECKS, "PostPromotionChecks",
                f"{active} serves commit {short(desired.commit)}; running the post-promotion checks "
                f"({_progress(names, results)}); {active.other} stays warm until they pass", Phase.PROGRESSING,
                color=active, active=active, scale_down_at=observed.scale_down_at, hook=Hook.POST_PROMOTION)


def _rollback(desired: Desired, observed: Observed, failed: Color, reason: str, what: str) -> Plan:
    back = failed.other
    serves = short(observed.color(back).commit)
    message = (f"{what}; traffic is switched back to {back} (commit {serves}). Git's head (commit "
               f"{short(desired.commit)}) is not what serves: {back} serves commit {serves}; {WHAT_TO_DO}")
    return Plan(Action.ROLLBACK, reason, message, Phase.DEGRADED, color=back, active=back, stalled=True,
                mark=reason, scale_down_at=None)


def answer_rest(step: Plan, desired: Desired, observed: Observed, settings: Settings) -> Plan:
    """Refuse every request the plan did not act on, unless it is a promote that waits for its commit to
    reach the gate (Manual mode, that commit on its way)."""
    handled = {answer.kind for answer in step.answers}
    refusals = []
    for kind, commit in observed.requests.items():
        if kind in handled or kind in step.held:
            continue
        if kind == "promote" and _promote_pending(step, desired, observed, settings):
            continue
        refusals.append(Answer(kind, commit, False, _refusal(kind, commit, step, desired, settings)))
    return replace(step, answers=step.answers + tuple(refusals))


def _promote_pending(step: Plan, desired: Desired, observed: Observed, settings: Settings) -> bool:
    return (settings.manual and names_commit(observed.requests.promote, desired.commit) and not step.serving
            and not step.stalled and step.action not in (Action.FAIL, Action.ROLLBACK, Action.SWITCH))


def _refusal(kind: str, commit: str, step: Plan, desired: Desired, settings: Settings) -> str:
    head = short(desired.commit)
    refused = f"{kind} of commit {short(commit)} refused"
    if not names_commit(commit, desired.commit):
        if step.awaiting:
            return f"{refused}: the commit that waits for promotion is {head}"
        return f"{refused}: git's head is commit {head} ({step.message})"
    if step.stalled:
        return f"{refused}: {step.message}"
    if kind == "promote":
        if not settings.manual:
            return f"{refused}: spec.promotion.mode is Auto, the switch follows the checks by itself"
        return f"{refused}: commit {head} already serves"
    if kind == "abort":
        return (f"{refused}: nothing is under way (commit {head} serves and its post-promotion window is over); "
                "to roll back, revert it in git")
    return f"{refused}: commit {head} is not marked failed, aborted or abandoned"
