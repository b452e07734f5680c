"""The expand/contract migrations of a release: when each Job runs and what waits for it. Pure; called by
``bluegreen.core.planner`` at two points (docs/migrations.md).

Where they sit in a release (DESIGN.md "A release, step by step")::

    expand Job -> idle colour applied -> fully available -> [checks] -> switch -> previous colour warm
      -> previous colour to 0 -> its last pod gone -> contract Job

- ``expand_first`` wraps every step that brings a colour up for the desired commit: rule 5's APPLY and rule 4's
  SCALE of the colour that runs the desired template from 0 (a cold rollback); ``marked_retry`` a RETRY of a
  marked commit whose colour is at 0. A replica change of a colour that is up brings nothing up. The step
  goes ahead once the commit's expand for that colour has passed (the plan then carries the Job's uid,
  recorded on the colour); until then the release runs or waits for the expand, and a failed expand stalls
  it (``MigrationFailed``) with nothing brought up. A warm rollback never reaches it: it brings nothing up.
- ``contract_step`` runs in rule 3 once nothing is warm: the desired commit serves, the previous colour's
  Deployment says 0 pods and a pod count says none is left (or there is no previous colour: a first release).
- One migration at a time: a new run waits while any other migration Job of the release runs; a running one is
  never stopped (a newer commit waits for it, then runs its own).

When a run counts (all derived from the cluster, so a restart decides the same): an expand run that finished
before the release's newest contract Job was created no longer counts (that contract may have dropped what
the commit needs); nor does the run recorded on a colour (``ColorState.expand_job``) once that colour is at 0:
bringing it up again (a cold rollback, a retry) runs the expand again. A contract run that finished before the
commit's expand run was created no longer counts (the expand may have put back what it dropped). A run that no
longer counts is run again: its finished Job is deleted first (``MigrationRun.rerun``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from bluegreen.core.checks import Verdict
from bluegreen.core.hook_jobs import HOOK_CONTRACT, HOOK_EXPAND
from bluegreen.core.plans import (
    MIGRATION_WAITING,
    WAITING_FOR_OLD_PODS,
    Action,
    Answer,
    ColorState,
    Desired,
    MigrationResult,
    MigrationRun,
    Observed,
    Phase,
    Plan,
    Settings,
    names_commit,
)
from bluegreen.core.spec import Color

EXPAND_RUNNING: Final = "ExpandRunning"
CONTRACT_RUNNING: Final = "ContractRunning"
MIGRATION_FAILED: Final = "MigrationFailed"
CONTRACT_FAILED: Final = "ContractFailed"
POD_POLL_SECONDS: Final = 1.0
"""How often the pods of the previous colour are counted again while some are still terminating."""
BRINGS_UP: Final = frozenset({Action.APPLY, Action.SCALE})


def short(commit: str | None) -> str:
    return (commit or "?")[:12]


# ---- expand -------------------------------------------------------------------------------------------
def expand_first(step: Plan, desired: Desired, observed: Observed, settings: Settings) -> Plan:
    """``step`` brings ``step.color`` up for the desired commit: it goes ahead once the commit's expand for that
    colour passed; else the step that runs, waits for or reports the expand."""
    if not settings.expand or step.action not in BRINGS_UP or step.color is None:
        return step
    if step.action is Action.SCALE and observed.color(step.color).replicas > 0:
        return step  # a replica change of a colour that is up (a warm revert with other replicas, say)
    color = step.color
    result = observed.expand_runs.get(color)
    retry = names_commit(observed.requests.retry, desired.commit)
    if result is not None and counts(result, observed, observed.color(color)):
        if result.verdict is Verdict.PASSED:
            return _accept_retry(replace(step, expanded=result.uid), observed) if retry else \
                replace(step, expanded=result.uid)
        if result.verdict is Verdict.RUNNING:
            running = _expand_running(desired, observed, color, result)
            return _accept_retry(running, observed) if retry else _refuse_abort(running, desired, observed)
        if not retry:
            return _expand_failed(desired, observed, color, result)
    return _start(HOOK_EXPAND, desired, observed, color, result, retry=retry, step=step)


def marked_retry(step: Plan, desired: Desired, observed: Observed, settings: Settings) -> Plan:
    """The colour running the desired template carries the commit's failure mark (``gates.marked`` gave
    ``step``). A retry of it at 0 replicas brings the colour up again, so it runs the expand first: the retry
    request waits until that run exists, then the RETRY follows its success (or the release reports its
    failure)."""
    color = step.color if step.color is not None else _marked_color(desired, observed)
    if not settings.expand or color is None:
        return step
    state = observed.color(color)
    if state.replicas > 0:
        return step  # still up (a rollback just marked it): nothing is brought up
    result = observed.expand_runs.get(color)
    retry = names_commit(observed.requests.retry, desired.commit)
    if result is not None and counts(result, observed, state):  # a retry's run (the colour's own no longer counts)
        if result.verdict is Verdict.PASSED:
            message = (f"retrying commit {short(desired.commit)}: its expand passed again; its "
                       f"{state.failed_reason} mark is cleared and {color} is scaled to {desired.replicas} replicas")
            again = Plan(Action.RETRY, "Retry", message, Phase.PROGRESSING, color=color, replicas=desired.replicas,
                         active=observed.service.color, scale_down_at=observed.scale_down_at, expanded=result.uid)
            return _accept_retry(again, observed) if retry else again
        if result.verdict is Verdict.RUNNING:
            running = _expand_running(desired, observed, color, result)
            return _accept_retry(running, observed) if retry else running
        if not retry:
            return _expand_failed(desired, observed, color, result)
    if not retry:
        return step
    return _start(HOOK_EXPAND, desired, observed, color, result, retry=True, step=step)


def _marked_color(desired: Desired, observed: Observed) -> Color | None:
    for state in (observed.blue, observed.green):
        if state.exists and state.template_hash == desired.template_hash:
            return state.color
    return None


def counts(result: MigrationResult, observed: Observed, state: ColorState) -> bool:
    """Does this expand run (of the desired commit, for ``state``'s colour) still count? A running one always
    does; a finished one not when a contract Job was created after it, nor when it is the run that last brought
    the colour up and the colour is at 0 since."""
    if result.verdict is Verdict.RUNNING:
        return True
    if observed.last_contract_at is not None and result.created_at is not None \
            and result.created_at < observed.last_contract_at:
        return False
    return not (state.exists and state.replicas == 0 and state.expand_job == result.uid)


def _expand_running(desired: Desired, observed: Observed, color: Color, result: MigrationResult) -> Plan:
    return Plan(Action.RUN_MIGRATION, EXPAND_RUNNING,
                f"running the expand Job {result.job} of commit {short(desired.commit)} before {color} is brought "
                f"up; traffic stays on {observed.service.color or 'the current pods'}", Phase.PROGRESSING,
                color=color, active=observed.service.color, scale_down_at=observed.scale_down_at,
                migration=MigrationRun(HOOK_EXPAND, desired.commit, color, started_at=result.created_at))


def _expand_failed(desired: Desired, observed: Observed, color: Color, result: MigrationResult) -> Plan:
    active = observed.service.color
    stays = f"traffic stays on {active}" if active is not None else "nothing serves yet"
    message = (f"the expand migration of commit {short(desired.commit)} failed, so {color} was not brought up and "
               f"{stays}: push a fix, or `bluegreen retry` to run it again. {result.message}")
    return Plan(Action.WAIT, MIGRATION_FAILED, message, Phase.DEGRADED, color=color, active=active,
                scale_down_at=observed.scale_down_at, stalled=True,
                migration=MigrationRun(HOOK_EXPAND, desired.commit, color, started_at=result.created_at))


def _refuse_abort(step: Plan, desired: Desired, observed: Observed) -> Plan:
    """An abort while the commit's expand runs: refused, a migration is never stopped halfway."""
    request = observed.requests.abort
    if not names_commit(request, desired.commit) or step.action is not Action.RUN_MIGRATION:
        return step
    assert request is not None
    message = (f"abort of commit {short(desired.commit)} refused: its expand Job runs and is never stopped halfway "
               "(nothing is brought up yet); push a new commit, or revert, to release something else after it")
    return replace(step, answers=(*step.answers, Answer("abort", request, False, message)))


# ---- contract -----------------------------------------------------------------------------------------
def contract_step(desired: Desired, observed: Observed, settings: Settings, active: Color) -> Plan | None:
    """Rule 3 with nothing warm: run the desired commit's contract once no pod of the previous colour is left.
    None: nothing to do (no contract, or it passed)."""
    if not settings.contract:
        return None
    result = observed.contract_runs.get(active)
    retry = names_commit(observed.requests.retry, desired.commit)
    if result is not None and _contract_counts(result, observed, active):
        if result.verdict is Verdict.PASSED:
            return None
        if result.verdict is Verdict.RUNNING:
            running = Plan(Action.RUN_MIGRATION, CONTRACT_RUNNING,
                           f"{active} serves commit {short(desired.commit)} and no pod of {active.other} is left: "
                           f"running the contract Job {result.job}", Phase.PROGRESSING, color=active, active=active,
                           serving=True,
                           migration=MigrationRun(HOOK_CONTRACT, desired.commit, active, started_at=result.created_at))
            return _accept_retry(running, observed) if retry else running
        if not retry:
            return Plan(Action.WAIT, CONTRACT_FAILED,
                        f"{active} serves commit {short(desired.commit)}, but its contract migration failed (traffic "
                        f"is not touched): push a fix, or `bluegreen retry` to run it again. {result.message}",
                        Phase.DEGRADED, color=active, active=active, serving=True, stalled=True,
                        migration=MigrationRun(HOOK_CONTRACT, desired.commit, active, started_at=result.created_at))
    previous = observed.color(active.other)
    if previous.exists and not _scaled_to_zero(previous):
        return Plan(Action.WAIT, WAITING_FOR_OLD_PODS,
                    f"{active} serves commit {short(desired.commit)}; the contract waits until {active.other} reports "
                    f"0 pods ({previous.status_replicas} left)", Phase.PROGRESSING, color=active, active=active,
                    serving=True, held=("retry",) if retry else ())
    if previous.exists and observed.previous_pods != 0:
        left = "its pods are being counted" if observed.previous_pods is None else \
            f"{observed.previous_pods} of its pods are still terminating"
        return Plan(Action.WAIT, WAITING_FOR_OLD_PODS,
                    f"{active} serves commit {short(desired.commit)}; the contract waits until no pod of "
                    f"{active.other} is left ({left})", Phase.PROGRESSING, color=active, active=active,
                    serving=True, requeue_after=POD_POLL_SECONDS, held=("retry",) if retry else ())
    return _start(HOOK_CONTRACT, desired, observed, active, result, retry=retry, step=None)


def pods_to_count(desired: Desired | None, observed: Observed, settings: Settings) -> Color | None:
    """The colour whose pods the runtime must count before this pass is planned: the previous colour, when the
    desired commit serves, its contract is to run and that colour's Deployment already says 0 pods. None
    otherwise (the usual case: a pass with nothing to do counts nothing)."""
    active = observed.service.color
    if not settings.contract or settings.suspend or desired is None or active is None \
            or observed.color(active).template_hash != desired.template_hash:
        return None
    previous = observed.color(active.other)
    if not previous.exists or not _scaled_to_zero(previous):
        return None
    result = observed.contract_runs.get(active)
    if result is None or not _contract_counts(result, observed, active):
        return previous.color
    retry = names_commit(observed.requests.retry, desired.commit)
    return previous.color if result.verdict is Verdict.FAILED and retry else None


def _contract_counts(result: MigrationResult, observed: Observed, color: Color) -> bool:
    """A finished contract run before the commit's expand run (for the same colour) was created does not count."""
    if result.verdict is Verdict.RUNNING:
        return True
    expand = observed.expand_runs.get(color)
    return not (expand is not None and expand.created_at is not None and result.created_at is not None
                and result.created_at < expand.created_at)


def _scaled_to_zero(state: ColorState) -> bool:
    """The Deployment asks for 0 replicas and its controller reports 0 pods (terminating ones are not counted)."""
    return state.replicas == 0 and state.status_replicas == 0 and state.observed_generation >= state.generation


# ---- shared -------------------------------------------------------------------------------------------
def _start(phase: str, desired: Desired, observed: Observed, color: Color, result: MigrationResult | None, *,
           retry: bool, step: Plan | None) -> Plan:
    """Create the run (deleting a finished Job that no longer counts first), or wait while another migration of
    the release runs. A retry request waits until the new run exists (then it is answered)."""
    held = ("retry",) if retry else ()
    serving = phase == HOOK_CONTRACT
    active = observed.service.color
    keep = None if serving else observed.scale_down_at
    busy = next((r for r in observed.running_migrations
                 if (r.phase, r.commit, r.color) != (phase, desired.commit, color)), None)
    if busy is not None:
        return Plan(Action.WAIT, MIGRATION_WAITING,
                    f"the {phase} of commit {short(desired.commit)} waits for the {busy.phase} Job {busy.job} (commit "
                    f"{short(busy.commit)}) to finish: a release runs one migration at a time, never stopping one "
                    "halfway", Phase.PROGRESSING, color=color, active=active, scale_down_at=keep, serving=serving,
                    held=held, migration=MigrationRun(phase, desired.commit, color))
    what = f"before {color} is brought up" if phase == HOOK_EXPAND else \
        f"now that {color} serves it and no pod of {color.other} is left"
    if step is not None and step.action is Action.RETRY:
        what = f"before {color} is scaled up again for the retry"
    rerun = result is not None and result.verdict is not Verdict.RUNNING
    again = " again" if rerun else ""
    plan = Plan(Action.RUN_MIGRATION, EXPAND_RUNNING if phase == HOOK_EXPAND else CONTRACT_RUNNING,
                f"starting the {phase} Job of commit {short(desired.commit)}{again} {what}", Phase.PROGRESSING,
                color=color, active=active, scale_down_at=keep, serving=serving, held=held,
                migration=MigrationRun(phase, desired.commit, color, rerun=rerun))
    return plan if phase == HOOK_CONTRACT else _refuse_abort(plan, desired, observed)


def _accept_retry(step: Plan, observed: Observed) -> Plan:
    """The retry request is done: its migration runs again (or passed again)."""
    request = observed.requests.retry
    assert request is not None
    message = f"retry of commit {short(request)}: {step.message}"
    return replace(step, held=tuple(k for k in step.held if k != "retry"),
                   answers=(*[a for a in step.answers if a.kind != "retry"], Answer("retry", request, True, message)))
