"""The replica rules when the source has a HorizontalPodAutoscaler, as a table: the serving colour's count is the
HPA's (never scaled back to the manifest's), a colour is brought up at the serving colour's current count within
the HPA's range (the manifest's when nothing serves), a colour being brought up is left to its HPA; without an HPA
the manifest's count rules as before."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_planner import BLUE, C1, C2, C3, GREEN, H1, H2, NOW, SETTINGS, cold, observed, ready, rolling, want

from bluegreen.core.planner import Action, Desired, Plan, Requests, plan
from bluegreen.core.plans import bring_up_replicas


def scaled(template: str, commit: str, replicas: int = 3, low: int = 2, high: int = 10) -> Desired:
    """The desired template of a source with an HPA of ``low``..``high`` replicas."""
    return replace(want(template, commit, replicas), autoscale=(low, high))


WARM = NOW + timedelta(seconds=100)

# (id, desired, observed, expected action, colour, replicas, reason)
CASES = [
    ("apply-at-the-serving-count", scaled(H2, C2), observed(ready(BLUE, H1, C1, replicas=7), selects=BLUE),
     Action.APPLY, GREEN, 7, "NewRelease"),
    ("apply-clamped-to-max", scaled(H2, C2, high=10), observed(ready(BLUE, H1, C1, replicas=12), selects=BLUE),
     Action.APPLY, GREEN, 10, "NewRelease"),
    ("apply-at-max-exactly", scaled(H2, C2, high=10), observed(ready(BLUE, H1, C1, replicas=10), selects=BLUE),
     Action.APPLY, GREEN, 10, "NewRelease"),
    ("apply-clamped-to-min", scaled(H2, C2, low=4), observed(ready(BLUE, H1, C1, replicas=1), selects=BLUE),
     Action.APPLY, GREEN, 4, "NewRelease"),
    ("apply-at-min-exactly", scaled(H2, C2, low=4), observed(ready(BLUE, H1, C1, replicas=4), selects=BLUE),
     Action.APPLY, GREEN, 4, "NewRelease"),
    ("first-release-at-the-manifest-count", scaled(H1, C1, replicas=3), observed(), Action.APPLY, BLUE, 3,
     "NewRelease"),
    ("first-release-manifest-count-clamped-to-min", scaled(H1, C1, replicas=1, low=2), observed(),
     Action.APPLY, BLUE, 2, "NewRelease"),
    ("first-release-manifest-count-clamped-to-max", scaled(H1, C1, replicas=9, high=5), observed(),
     Action.APPLY, BLUE, 5, "NewRelease"),
    ("serving-colour-at-zero-counts-as-nothing-serving", scaled(H2, C2, replicas=3),
     observed(ready(BLUE, H1, C1, replicas=0), selects=BLUE), Action.APPLY, GREEN, 3, "NewRelease"),
    ("no-hpa-applies-the-manifest-count", want(H2, C2, replicas=3),
     observed(ready(BLUE, H1, C1, replicas=7), selects=BLUE), Action.APPLY, GREEN, 3, "NewRelease"),
    ("serving-count-is-the-hpas", scaled(H1, C1, replicas=3), observed(ready(BLUE, H1, C1, replicas=7), selects=BLUE),
     Action.NONE, None, None, "Released"),
    ("no-hpa-serving-count-follows-the-manifest", want(H1, C1, replicas=3),
     observed(ready(BLUE, H1, C1, replicas=7), selects=BLUE), Action.SCALE, BLUE, 3, "ReplicasChanged"),
    ("serving-colour-at-zero-is-scaled-up", scaled(H1, C1, replicas=3),
     observed(ready(BLUE, H1, C1, replicas=0), selects=BLUE), Action.SCALE, BLUE, 3, "ReplicasChanged"),
    ("colour-being-brought-up-is-left-to-its-hpa", scaled(H2, C2),
     observed(ready(BLUE, H1, C1, replicas=7), rolling(GREEN, H2, C2, 2, replicas=5), selects=BLUE),
     Action.WAIT, GREEN, None, "WaitingForAvailability"),
    ("no-hpa-colour-being-brought-up-follows-the-manifest", want(H2, C2, replicas=3),
     observed(ready(BLUE, H1, C1, replicas=7), rolling(GREEN, H2, C2, 2, replicas=5), selects=BLUE),
     Action.SCALE, GREEN, 3, "ReplicasChanged"),
    ("cold-rollback-at-the-serving-count", scaled(H1, C3),
     observed(cold(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=6), selects=GREEN),
     Action.SCALE, BLUE, 6, "ColdRollback"),
    ("cold-rollback-clamped-to-max", scaled(H1, C3, high=8),
     observed(cold(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=12), selects=GREEN),
     Action.SCALE, BLUE, 8, "ColdRollback"),
    ("no-hpa-cold-rollback-at-the-manifest-count", want(H1, C3, replicas=3),
     observed(cold(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=6), selects=GREEN),
     Action.SCALE, BLUE, 3, "ColdRollback"),
    ("retry-of-an-abandoned-template-at-the-serving-count", scaled(H2, C3),
     observed(ready(BLUE, H1, C1, replicas=5), ready(GREEN, H2, C2, replicas=0, failed_commit=C2), selects=BLUE),
     Action.SCALE, GREEN, 5, "Retry"),
    ("warm-rollback-switches-at-once-whatever-the-counts", scaled(H1, C3),
     observed(ready(BLUE, H1, C1, replicas=3), ready(GREEN, H2, C2, replicas=7), selects=GREEN, scale_down_at=WARM),
     Action.SWITCH, BLUE, None, "Rollback"),
]


@pytest.mark.parametrize(("desired", "seen", "action", "color", "replicas", "reason"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_autoscaled_replica_rules(desired: Desired, seen: object, action: Action, color: object,
                                  replicas: int | None, reason: str) -> None:
    step = plan(desired, seen, SETTINGS, NOW)  # type: ignore[arg-type]
    assert (step.action, step.color, step.reason) == (action, color, reason), step.message
    if replicas is not None:
        assert step.replicas == replicas, step.message
    if action in (Action.APPLY, Action.SCALE) and desired.autoscale is not None:
        assert f"to {replicas} replicas" in step.message or f"at {replicas} replicas" in step.message, step.message


def test_a_retry_request_brings_the_colour_up_at_the_serving_count() -> None:
    desired = scaled(H2, C2)
    seen = replace(observed(ready(BLUE, H1, C1, replicas=6), ready(GREEN, H2, C2, replicas=0, failed_commit=C2),
                            selects=BLUE), requests=Requests(retry=C2))
    step: Plan = plan(desired, seen, SETTINGS, NOW)
    assert (step.action, step.color, step.replicas) == (Action.RETRY, GREEN, 6)
    assert "scaled to 6 replicas" in step.message


@pytest.mark.parametrize(("serving", "target", "expected"), [
    pytest.param(7, GREEN, 7, id="the-serving-colours-count"),
    pytest.param(7, BLUE, 3, id="the-target-itself-serving-counts-as-nothing"),
    pytest.param(0, GREEN, 3, id="a-serving-colour-at-zero-counts-as-nothing"),
    pytest.param(1, GREEN, 2, id="raised-to-min"),
    pytest.param(11, GREEN, 10, id="lowered-to-max"),
])
def test_bring_up_replicas(serving: int, target: object, expected: int) -> None:
    seen = observed(ready(BLUE, H1, C1, replicas=serving), selects=BLUE)
    assert bring_up_replicas(scaled(H2, C2, replicas=3, low=2, high=10), seen, target) == expected  # type: ignore[arg-type]


def test_bring_up_replicas_without_a_serving_colour_or_an_hpa() -> None:
    assert bring_up_replicas(scaled(H1, C1, replicas=3), observed(ready(BLUE, H1, C1, replicas=7)), GREEN) == 3
    assert bring_up_replicas(want(H2, C2, replicas=3), observed(ready(BLUE, H1, C1, replicas=7), selects=BLUE),
                             GREEN) == 3
