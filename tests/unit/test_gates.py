"""The gate rules of the planner as a table of named cases: pre-promotion checks, the manual gate,
promote/abort/retry requests and their answers, post-promotion checks with rollback, warm and cold reverts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_planner import NOW, SETTINGS, absent, cold, observed, ready, rolling, want

from bluegreen.core.checks import CheckResult, Hook, Verdict
from bluegreen.core.planner import (
    Action,
    MarkReason,
    Observed,
    Phase,
    Plan,
    Requests,
    Settings,
    candidate_color,
    plan,
)
from bluegreen.core.spec import Color

BLUE, GREEN = Color.BLUE, Color.GREEN
H1, H2 = "hash1", "hash2"
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
PRE = replace(SETTINGS, pre_checks=("smoke",))
PRE2 = replace(SETTINGS, pre_checks=("smoke", "e2e"))
POST = replace(SETTINGS, post_checks=("healthz",))
MANUAL = replace(SETTINGS, manual=True)
MANUAL_PRE = replace(PRE, manual=True)
ALL = replace(PRE, post_checks=("healthz",), manual=True)
LATER = NOW + timedelta(seconds=200)
EARLIER = NOW - timedelta(seconds=5)


def result(name: str, verdict: Verdict, message: str = "") -> CheckResult:
    return CheckResult(name, verdict, str(verdict), message or f"{name}: {verdict}")


def passed(*names: str) -> dict[str, CheckResult]:
    return {n: result(n, Verdict.PASSED) for n in names}


def failed(name: str, message: str = "HTTP 500: boom") -> dict[str, CheckResult]:
    return {name: result(name, Verdict.FAILED, message)}


def running(*names: str) -> dict[str, CheckResult]:
    return {n: result(n, Verdict.RUNNING) for n in names}


def releasing(green: Any = None, **extra: Any) -> Observed:
    """Blue serves C1; green runs the desired template (H2, commit C2), fully available unless given."""
    return replace(observed(ready(BLUE, H1, C1), green or ready(GREEN, H2, C2), selects=BLUE), **extra)


def serving(blue: Any = None, scale_down_at: datetime | None = LATER, **extra: Any) -> Observed:
    """Green serves the desired template (H2, C2) since a switch; blue (C1) is warm unless given."""
    return replace(observed(blue or ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN,
                            scale_down_at=scale_down_at), **extra)


def marked(replicas: int = 0, reason: str = MarkReason.PRE_PROMOTION_CHECK_FAILED,
           message: str = "pre-promotion check 'smoke' failed on green: HTTP 500") -> Any:
    return ready(GREEN, H2, C2, replicas=replicas, failed_commit=C2, failed_reason=reason, failed_message=message)


D2 = want(H2, C2)

# (id, observed, settings, expected action, colour, reason, other expected fields of the plan)
CASES: list[tuple[str, Observed, Settings, Action, Color | None, str, dict[str, Any]]] = [
    # -- pre-promotion checks (rule 4: green is fully available)
    ("pre-checks-start-once-available", releasing(), PRE, Action.RUN_CHECKS, GREEN, "PrePromotionChecks",
     {"hook": Hook.PRE_PROMOTION, "active": BLUE, "phase": Phase.PROGRESSING}),
    ("pre-checks-not-before-available", releasing(rolling(GREEN, H2, C2, 1)), PRE, Action.WAIT, GREEN,
     "WaitingForAvailability", {"hook": None}),
    ("pre-check-running-waits", releasing(pre_results=running("smoke")), PRE, Action.RUN_CHECKS, GREEN,
     "PrePromotionChecks", {}),
    ("one-of-two-passed-still-runs", releasing(pre_results=passed("smoke")), PRE2, Action.RUN_CHECKS, GREEN,
     "PrePromotionChecks", {}),
    ("all-passed-switches", releasing(pre_results=passed("smoke", "e2e")), PRE2, Action.SWITCH, GREEN, "Promote",
     {"active": GREEN}),
    ("pre-check-failure-fails-the-commit", releasing(pre_results=failed("smoke")), PRE, Action.FAIL, GREEN,
     "PrePromotionCheckFailed", {"replicas": 0, "mark": MarkReason.PRE_PROMOTION_CHECK_FAILED, "active": BLUE,
                                 "stalled": True}),
    ("second-check-failing-fails-too", releasing(pre_results={**passed("smoke"), **failed("e2e")}), PRE2,
     Action.FAIL, GREEN, "PrePromotionCheckFailed", {"replicas": 0}),
    ("a-result-of-an-unconfigured-check-is-ignored", releasing(pre_results={**passed("smoke"), **failed("old")}),
     PRE, Action.SWITCH, GREEN, "Promote", {}),
    ("no-checks-switches-as-before", releasing(), SETTINGS, Action.SWITCH, GREEN, "Promote", {}),
    # -- the manual gate
    ("manual-waits-for-a-promote", releasing(), MANUAL, Action.WAIT, GREEN, "AwaitingPromotion",
     {"awaiting": True, "phase": Phase.AWAITING_PROMOTION, "active": BLUE, "stalled": False}),
    ("manual-waits-after-the-checks-passed", releasing(pre_results=passed("smoke")), MANUAL_PRE, Action.WAIT, GREEN,
     "AwaitingPromotion", {"awaiting": True}),
    ("manual-does-not-wait-before-the-checks", releasing(pre_results=running("smoke")), MANUAL_PRE,
     Action.RUN_CHECKS, GREEN, "PrePromotionChecks", {"awaiting": False}),
    ("manual-failed-check-fails", releasing(pre_results=failed("smoke")), MANUAL_PRE, Action.FAIL, GREEN,
     "PrePromotionCheckFailed", {}),
    ("promote-switches", releasing(requests=Requests(promote=C2)), MANUAL, Action.SWITCH, GREEN, "Promote",
     {"answers": ("promote", True)}),
    ("promote-by-abbreviation-switches", releasing(requests=Requests(promote=C2[:7])), MANUAL, Action.SWITCH,
     GREEN, "Promote", {"answers": ("promote", True)}),
    ("too-short-an-abbreviation-is-refused", releasing(requests=Requests(promote=C2[:6])), MANUAL, Action.WAIT,
     GREEN, "AwaitingPromotion", {"answers": ("promote", False)}),
    ("promote-of-another-commit-is-refused", releasing(requests=Requests(promote=C3)), MANUAL, Action.WAIT, GREEN,
     "AwaitingPromotion", {"answers": ("promote", False)}),
    ("early-promote-waits-for-the-gate", releasing(rolling(GREEN, H2, C2, 1), requests=Requests(promote=C2)),
     MANUAL, Action.WAIT, GREEN, "WaitingForAvailability", {"answers": None}),
    ("early-promote-waits-for-the-checks", releasing(pre_results=running("smoke"), requests=Requests(promote=C2)),
     MANUAL_PRE, Action.RUN_CHECKS, GREEN, "PrePromotionChecks", {"answers": None}),
    ("promote-does-not-skip-the-checks", releasing(requests=Requests(promote=C2)), MANUAL_PRE, Action.RUN_CHECKS,
     GREEN, "PrePromotionChecks", {"answers": None}),
    ("promote-in-auto-mode-is-refused", releasing(requests=Requests(promote=C2)), SETTINGS, Action.SWITCH, GREEN,
     "Promote", {"answers": ("promote", False)}),
    ("promote-when-it-serves-is-refused", serving(requests=Requests(promote=C2)), MANUAL, Action.WAIT, None,
     "PreviousColorWarm", {"answers": ("promote", False)}),
    # -- abort before the switch
    ("abort-while-rolling-out", releasing(rolling(GREEN, H2, C2, 1), requests=Requests(abort=C2)), SETTINGS,
     Action.FAIL, GREEN, "Aborted", {"replicas": 0, "mark": MarkReason.ABORTED, "answers": ("abort", True),
                                     "active": BLUE, "stalled": True}),
    ("abort-while-waiting", releasing(requests=Requests(abort=C2)), MANUAL, Action.FAIL, GREEN, "Aborted",
     {"mark": MarkReason.ABORTED, "stalled": True}),
    ("early-promote-waits-while-another-request-is-refused",
     releasing(rolling(GREEN, H2, C2, 1), requests=Requests(promote=C2, retry=C2)), MANUAL, Action.WAIT, GREEN,
     "WaitingForAvailability", {"answers": ("retry", False)}),
    ("abort-of-another-commit-is-refused", releasing(requests=Requests(abort=C3)), MANUAL, Action.WAIT, GREEN,
     "AwaitingPromotion", {"answers": ("abort", False)}),
    ("abort-with-nothing-under-way-is-refused", serving(requests=Requests(abort=C2)), SETTINGS, Action.WAIT, None,
     "PreviousColorWarm", {"answers": ("abort", False)}),
    # -- marks and retry
    ("marked-commit-stalls", releasing(marked()), PRE, Action.WAIT, None, "PrePromotionCheckFailed",
     {"stalled": True, "message": "pre-promotion check 'smoke' failed on green: HTTP 500"}),
    ("marked-colour-with-replicas-goes-to-0", releasing(marked(replicas=3)), PRE, Action.SCALE_DOWN, GREEN,
     "ScaleDownFailedColor", {"replicas": 0, "stalled": True}),
    ("aborted-commit-stalls", releasing(marked(reason=MarkReason.ABORTED, message="aborted")), SETTINGS, Action.WAIT,
     None, "Aborted", {"stalled": True}),
    ("legacy-abandoned-mark-stalls", releasing(ready(GREEN, H2, C2, replicas=0, failed_commit=C2)), SETTINGS,
     Action.WAIT, None, "ProgressDeadlineExceeded", {"stalled": True}),
    ("retry-clears-the-mark", releasing(marked(), requests=Requests(retry=C2)), PRE, Action.RETRY, GREEN, "Retry",
     {"replicas": 3, "answers": ("retry", True), "stalled": False}),
    ("retry-of-another-commit-is-refused", releasing(marked(), requests=Requests(retry=C3)), PRE, Action.WAIT, None,
     "PrePromotionCheckFailed", {"answers": ("retry", False)}),
    ("retry-of-an-unmarked-commit-is-refused", serving(requests=Requests(retry=C2)), SETTINGS, Action.WAIT, None,
     "PreviousColorWarm", {"answers": ("retry", False)}),
    ("a-marked-colour-of-one-replica-goes-to-0", releasing(marked(replicas=1)), PRE, Action.SCALE_DOWN, GREEN,
     "ScaleDownFailedColor", {"replicas": 0, "active": BLUE}),
    ("an-abandoned-mark-with-a-message-shows-it", releasing(marked(reason=MarkReason.PROGRESS_DEADLINE_EXCEEDED,
                                                                   message="green did not become available")),
     SETTINGS, Action.WAIT, None, "ProgressDeadlineExceeded", {"message": "green did not become available"}),
    ("a-request-handled-and-another-refused", releasing(requests=Requests(promote=C2, retry=C2)), MANUAL,
     Action.SWITCH, GREEN, "Promote", {"answers": [("promote", True), ("retry", False)]}),
    ("two-requests-refused", releasing(requests=Requests(abort=C3, retry=C3)), MANUAL, Action.WAIT, GREEN,
     "AwaitingPromotion", {"answers": [("abort", False), ("retry", False)]}),
    ("a-mark-of-an-older-commit-does-not-stop-a-new-one", releasing(ready(GREEN, H2, C2, failed_commit=C1)), PRE,
     Action.RUN_CHECKS, GREEN, "PrePromotionChecks", {}),
    # -- post-promotion checks (rule 3: green serves, blue warm)
    ("post-checks-start-after-the-switch", serving(), POST, Action.RUN_CHECKS, GREEN, "PostPromotionChecks",
     {"hook": Hook.POST_PROMOTION, "serving": True, "active": GREEN, "scale_down_at": LATER}),
    ("scale-down-waits-for-the-post-checks", serving(scale_down_at=EARLIER, post_results=running("healthz")), POST,
     Action.RUN_CHECKS, GREEN, "PostPromotionChecks", {}),
    ("post-checks-passed-keeps-the-warm-window", serving(post_results=passed("healthz")), POST, Action.WAIT, None,
     "PreviousColorWarm", {"serving": True}),
    ("post-checks-passed-then-scale-down", serving(scale_down_at=EARLIER, post_results=passed("healthz")), POST,
     Action.SCALE_DOWN, BLUE, "ScaleDownDelayPassed", {}),
    ("post-check-failure-rolls-back", serving(post_results=failed("healthz")), POST, Action.ROLLBACK, BLUE,
     "PostPromotionCheckFailed", {"active": BLUE, "mark": MarkReason.POST_PROMOTION_CHECK_FAILED, "stalled": True,
                                  "serving": False, "scale_down_at": None}),
    ("abort-in-the-post-window-rolls-back", serving(requests=Requests(abort=C2)), POST, Action.ROLLBACK, BLUE,
     "Aborted", {"mark": MarkReason.ABORTED, "answers": ("abort", True)}),
    ("abort-after-the-post-window-is-refused", serving(post_results=passed("healthz"), requests=Requests(abort=C2)),
     POST, Action.WAIT, None, "PreviousColorWarm", {"answers": ("abort", False)}),
    ("post-checks-on-blue-with-green-warm", observed(ready(BLUE, H2, C2), ready(GREEN, H1, C1, replicas=1),
                                                     selects=BLUE, scale_down_at=LATER), POST, Action.RUN_CHECKS,
     BLUE, "PostPromotionChecks", {"hook": Hook.POST_PROMOTION}),
    ("post-check-failure-on-blue-goes-back-to-green", replace(observed(
        ready(BLUE, H2, C2), ready(GREEN, H1, C1, replicas=1), selects=BLUE, scale_down_at=LATER),
        post_results=failed("healthz")), POST, Action.ROLLBACK, GREEN, "PostPromotionCheckFailed", {"active": GREEN}),
    ("no-post-checks-without-a-warm-colour", serving(cold(BLUE, H1, C1), scale_down_at=None), POST, Action.NONE,
     None, "Released", {}),
    ("no-post-checks-for-a-first-release", serving(absent(BLUE), scale_down_at=None), POST, Action.NONE, None,
     "Released", {}),
    ("a-marked-serving-colour-goes-back", replace(
        serving(), green=marked(replicas=3, reason=MarkReason.POST_PROMOTION_CHECK_FAILED, message="it failed")),
     POST, Action.ROLLBACK, BLUE, "PostPromotionCheckFailed", {"active": BLUE}),
    ("a-marked-serving-colour-with-nothing-warm-stalls", replace(
        serving(cold(BLUE, H1, C1), scale_down_at=LATER), green=marked(replicas=3)), POST, Action.WAIT, None,
     "PrePromotionCheckFailed", {"stalled": True, "active": GREEN, "scale_down_at": LATER}),
    # -- reverts
    ("warm-revert-passes-no-gate", observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN,
                                            scale_down_at=LATER), ALL, Action.SWITCH, BLUE, "Rollback", {}),
    ("cold-revert-runs-the-gates", observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN), ALL,
     Action.RUN_CHECKS, BLUE, "PrePromotionChecks", {}),
    ("a-warm-revert-serving-runs-no-post-check", observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE,
                                                          scale_down_at=LATER), POST, Action.WAIT, None,
     "PreviousColorWarm", {}),
]

DESIRED = {"warm-revert-passes-no-gate": want(H1, C3), "cold-revert-runs-the-gates": want(H1, C3),
           "a-warm-revert-serving-runs-no-post-check": want(H1, C3)}


@pytest.mark.parametrize(("case", "seen", "settings", "action", "color", "reason", "fields"),
                         [pytest.param(c[0], *c[1:], id=c[0]) for c in CASES])
def test_gate_rules(case: str, seen: Observed, settings: Settings, action: Action, color: Color | None, reason: str,
                    fields: dict[str, Any]) -> None:
    step = plan(DESIRED.get(case, D2), seen, settings, NOW)
    assert (step.action, step.reason) == (action, reason), step.message
    if color is not None or action in (Action.SWITCH, Action.FAIL, Action.ROLLBACK, Action.RUN_CHECKS):
        assert step.color == color
    phase = {Action.FAIL: Phase.DEGRADED, Action.ROLLBACK: Phase.DEGRADED, Action.RUN_CHECKS: Phase.PROGRESSING,
             Action.RETRY: Phase.PROGRESSING}.get(action, Phase.DEGRADED if step.stalled else step.phase)
    assert step.phase == fields.get("phase", phase)
    assert isinstance(step.message, str) and step.message
    for answer in step.answers:
        assert answer.commit == dict(seen.requests.items())[answer.kind] and answer.message
    for name, value in fields.items():
        if name == "answers":
            got = [(a.kind, a.accepted) for a in step.answers]
            assert got == (value if isinstance(value, list) else [value] if value is not None else []), step.answers
        elif name == "message":
            assert step.message == value
        else:
            assert getattr(step, name) == value, name


# Steps of a release under way keep the previous colour's scale-down time (status.idleScaleDownAt) as it is.
KEEPS = [
    ("pre-checks", releasing(), PRE), ("pre-check-failed", releasing(pre_results=failed("smoke")), PRE),
    ("awaiting", releasing(), MANUAL), ("aborted", releasing(requests=Requests(abort=C2)), SETTINGS),
    ("marked-stalls", releasing(marked()), PRE), ("marked-scaled-down", releasing(marked(replicas=3)), PRE),
    ("retry", releasing(marked(), requests=Requests(retry=C2)), PRE),
]


@pytest.mark.parametrize(("seen", "settings"), [pytest.param(c[1], c[2], id=c[0]) for c in KEEPS])
def test_steps_under_way_keep_the_scale_down_time(seen: Observed, settings: Settings) -> None:
    step = plan(D2, replace(seen, scale_down_at=LATER), settings, NOW)
    assert step.scale_down_at == LATER and step.active == BLUE, step


def test_a_marked_serving_colour_goes_back_saying_why() -> None:
    seen = replace(serving(), green=marked(replicas=3, reason=MarkReason.POST_PROMOTION_CHECK_FAILED,
                                           message="post-promotion check 'healthz' failed"))
    assert plan(D2, seen, POST, NOW).message.startswith("post-promotion check 'healthz' failed; traffic is switched")
    unmarked = replace(seen, green=replace(seen.green, failed_message=""))
    assert "commit 222222222222 is marked PostPromotionCheckFailed" in plan(D2, unmarked, POST, NOW).message


def test_a_pre_check_failure_names_the_check_what_it_saw_and_what_to_do() -> None:
    step = plan(D2, releasing(pre_results=failed("smoke", "GET http://x/: HTTP 503 (expected 2xx): down")), PRE, NOW)
    assert "pre-promotion check 'smoke' failed on green (commit 222222222222)" in step.message
    assert "HTTP 503" in step.message and "traffic stays on blue" in step.message
    assert "revert it in git or push a fix" in step.message


def test_a_rollback_says_that_git_s_head_is_not_what_serves() -> None:
    step = plan(D2, serving(post_results=failed("healthz", "HTTP 503: unhealthy")), POST, NOW)
    assert "Git's head (commit 222222222222) is not what serves: blue serves commit 111111111111" in step.message
    assert "post-promotion check 'healthz' failed on green (commit 222222222222): HTTP 503" in step.message
    aborted = plan(D2, serving(requests=Requests(abort=C2)), POST, NOW)
    assert aborted.message.startswith("the release of commit 222222222222 was aborted after the switch; traffic")


@pytest.mark.parametrize(("seen", "settings", "says"), [
    pytest.param(releasing(pre_results=passed("smoke")), PRE2, "against green (commit 222222222222): 1/2 passed",
                 id="progress-of-the-checks"),
    pytest.param(releasing(pre_results={**passed("smoke"), **running("e2e")}), PRE2, "1/2 passed", id="running"),
    pytest.param(releasing(pre_results=passed("smoke")), MANUAL_PRE,
                 "commit 222222222222 on green passed its checks and waits for a promote", id="waits-after-checks"),
    pytest.param(releasing(), MANUAL, "commit 222222222222 on green waits for a promote", id="waits-without-checks"),
    pytest.param(releasing(pre_results=failed("smoke")), PRE, "traffic stays on blue", id="pre-failure"),
    pytest.param(replace(observed(ready(BLUE, H2, C2)), requests=Requests(abort=C2)), SETTINGS,
                 "traffic stays on the current pods", id="abort-of-a-first-release"),
    pytest.param(releasing(requests=Requests(abort=C2)), SETTINGS, "traffic stays on blue",
                 id="abort-names-the-colour"),
    pytest.param(releasing(marked(), requests=Requests(retry=C2)), PRE,
                 "retrying commit 222222222222: its PrePromotionCheckFailed mark is cleared", id="retry"),
    pytest.param(serving(post_results=passed("healthz"), requests=Requests(abort=C2)), POST,
                 "to roll back, revert it in git", id="abort-refusal"),
])
def test_messages_say_where_it_stands(seen: Observed, settings: Settings, says: str) -> None:
    step = plan(D2, seen, settings, NOW)
    text = " ".join([step.message, *(a.message for a in step.answers)])
    assert says in text, text


@pytest.mark.parametrize(("kind", "commit", "seen", "settings", "says"), [
    pytest.param("promote", C3, releasing(), MANUAL, "the commit that waits for promotion is 222222222222",
                 id="promote-names-the-waiting-commit"),
    pytest.param("promote", C2, releasing(), SETTINGS, "spec.promotion.mode is Auto", id="promote-in-auto-mode"),
    pytest.param("promote", C2, serving(), MANUAL, "already serves", id="promote-serving"),
    pytest.param("abort", C2, serving(), SETTINGS, "nothing is under way", id="abort-nothing"),
    pytest.param("retry", C2, serving(), SETTINGS, "is not marked", id="retry-unmarked"),
])
def test_refusals_say_why(kind: str, commit: str, seen: Observed, settings: Settings, says: str) -> None:
    step = plan(D2, replace(seen, requests=Requests(**{kind: commit})), settings, NOW)
    [answer] = step.answers
    assert not answer.accepted and answer.kind == kind and answer.commit == commit
    assert says in answer.message, answer.message


def test_requests_wait_while_suspended_or_without_a_manifest() -> None:
    seen = releasing(requests=Requests(promote=C3, abort=C3, retry=C3))
    assert plan(D2, seen, replace(MANUAL, suspend=True), NOW).answers == ()
    assert plan(None, seen, MANUAL, NOW).answers == ()


@pytest.mark.parametrize(("seen", "expected"), [
    pytest.param(releasing(), GREEN, id="the-idle-colour-under-way"),
    pytest.param(serving(), GREEN, id="the-serving-colour"),
    pytest.param(observed(ready(BLUE, H2, C1), ready(GREEN, H2, C2), selects=GREEN), GREEN, id="serving-first"),
    pytest.param(observed(ready(BLUE, H1, C1), selects=BLUE), None, id="none-runs-it"),
])
def test_the_candidate_is_the_colour_running_the_desired_template(seen: Observed, expected: Color | None) -> None:
    assert candidate_color(D2, seen) == expected
    assert candidate_color(None, seen) is None


def test_observed_results_by_hook() -> None:
    seen = replace(releasing(), pre_results=passed("smoke"), post_results=failed("healthz"))
    assert seen.results(Hook.PRE_PROMOTION) is seen.pre_results
    assert seen.results(Hook.POST_PROMOTION) is seen.post_results


def test_reconciling_covers_checks_and_the_wait_for_a_promote() -> None:
    assert plan(D2, releasing(), PRE, NOW).reconciling
    assert plan(D2, releasing(), MANUAL, NOW).reconciling
    assert plan(D2, serving(), POST, NOW).reconciling
    assert not plan(D2, releasing(marked()), PRE, NOW).reconciling
    assert not Plan(Action.RUN_CHECKS, "x", "y", Phase.PROGRESSING).writes
