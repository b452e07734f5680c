"""The planner as a table of named cases, then convergence and idempotence over simulated passes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen.core.planner import Action, ColorState, Desired, Observed, Phase, Plan, ServiceState, Settings, plan
from bluegreen.core.spec import Color

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
H1, H2, H3 = "hash1", "hash2", "hash3"
C1, C2, C3, C4 = "1" * 40, "2" * 40, "3" * 40, "4" * 40
SETTINGS = Settings(scale_down_delay_seconds=300, progress_deadline_seconds=600)
BLUE, GREEN = Color.BLUE, Color.GREEN


def ready(color: Color, template: str, commit: str, replicas: int = 3, **extra: object) -> ColorState:
    """A Deployment whose every replica runs its template and is ready and available."""
    fields: dict[str, object] = dict(
        color=color, exists=True, template_hash=template, commit=commit, replicas=replicas, generation=2,
        observed_generation=2, status_replicas=replicas, updated_replicas=replicas, ready_replicas=replicas,
        available_replicas=replicas, rollout_started_at=NOW - timedelta(minutes=30))
    fields.update(extra)
    return ColorState(**fields)  # type: ignore[arg-type]


def rolling(color: Color, template: str, commit: str, ready_count: int, replicas: int = 3,
            started: timedelta = timedelta(seconds=20), **extra: object) -> ColorState:
    return ready(color, template, commit, replicas, ready_replicas=ready_count, available_replicas=ready_count,
                 rollout_started_at=NOW - started, **extra)


def cold(color: Color, template: str, commit: str) -> ColorState:
    return ready(color, template, commit, replicas=0)


def absent(color: Color) -> ColorState:
    return ColorState(color=color)


def observed(blue: ColorState | None = None, green: ColorState | None = None, selects: Color | None = None,
             service: bool = True, preview: ServiceState | None = None, recorded: Color | None = None,
             scale_down_at: datetime | None = None) -> Observed:
    return Observed(blue=blue or absent(BLUE), green=green or absent(GREEN),
                    service=ServiceState("shop", exists=service, color=selects), preview=preview,
                    recorded_active=recorded, scale_down_at=scale_down_at)


def want(template: str, commit: str, replicas: int = 3) -> Desired:
    return Desired(commit=commit, template_hash=template, replicas=replicas)


# (id, desired, observed, settings, expected action, expected colour, expected reason)
CASES = [
    ("suspend-freezes-a-new-commit", want(H2, C2), observed(ready(BLUE, H1, C1), selects=BLUE),
     replace(SETTINGS, suspend=True), Action.NONE, None, "Suspended"),
    ("missing-service-stalls", want(H1, C1), observed(service=False), SETTINGS,
     Action.WAIT, None, "ServiceNotFound"),
    ("first-release-applies-blue", want(H1, C1), observed(), SETTINGS, Action.APPLY, BLUE, "NewRelease"),
    ("first-release-waits-for-readiness", want(H1, C1), observed(rolling(BLUE, H1, C1, 1)), SETTINGS,
     Action.WAIT, BLUE, "WaitingForAvailability"),
    ("first-release-switches-when-available", want(H1, C1), observed(ready(BLUE, H1, C1)), SETTINGS,
     Action.SWITCH, BLUE, "Promote"),
    ("released-and-settled", want(H1, C1), observed(ready(BLUE, H1, C1), selects=BLUE), SETTINGS,
     Action.NONE, None, "Released"),
    ("commit-without-template-change-does-nothing", want(H1, C2), observed(ready(BLUE, H1, C1), selects=BLUE),
     SETTINGS, Action.NONE, None, "Released"),
    ("new-template-goes-to-idle-green", want(H2, C2), observed(ready(BLUE, H1, C1), selects=BLUE), SETTINGS,
     Action.APPLY, GREEN, "NewRelease"),
    ("new-template-overwrites-cold-idle", want(H2, C2),
     observed(ready(BLUE, H1, C1), cold(GREEN, H3, C3), selects=BLUE), SETTINGS, Action.APPLY, GREEN, "NewRelease"),
    ("partly-ready-idle-is-not-switched-to", want(H2, C2),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 2), selects=BLUE), SETTINGS,
     Action.WAIT, GREEN, "WaitingForAvailability"),
    ("old-pods-still-present-is-not-switched-to", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, status_replicas=4, rollout_started_at=NOW), selects=BLUE),
     SETTINGS,
     Action.WAIT, GREEN, "WaitingForAvailability"),
    ("unobserved-generation-is-not-switched-to", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, generation=3, rollout_started_at=NOW), selects=BLUE), SETTINGS,
     Action.WAIT, GREEN, "WaitingForAvailability"),
    ("fully-available-idle-is-switched-to", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE), SETTINGS, Action.SWITCH, GREEN, "Promote"),
    ("previous-colour-stays-warm", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, scale_down_at=NOW + timedelta(seconds=100)),
     SETTINGS, Action.WAIT, None, "PreviousColorWarm"),
    ("previous-colour-scaled-down-after-delay", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, scale_down_at=NOW - timedelta(seconds=1)),
     SETTINGS, Action.SCALE_DOWN, BLUE, "ScaleDownDelayPassed"),
    ("zero-delay-scales-down-at-once", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN),
     replace(SETTINGS, scale_down_delay_seconds=0), Action.SCALE_DOWN, BLUE, "ScaleDownDelayPassed"),
    ("lost-scale-down-time-restarts-the-delay", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN), SETTINGS,
     Action.WAIT, None, "PreviousColorWarm"),
    ("warm-revert-switches-back-at-once", want(H1, C3),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, scale_down_at=NOW + timedelta(seconds=100)),
     SETTINGS, Action.SWITCH, BLUE, "Rollback"),
    ("cold-revert-scales-the-old-colour-up", want(H1, C3),
     observed(cold(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN), SETTINGS, Action.SCALE, BLUE, "ColdRollback"),
    ("cold-revert-waits-for-readiness", want(H1, C3),
     observed(rolling(BLUE, H1, C1, 0), ready(GREEN, H2, C2), selects=GREEN), SETTINGS,
     Action.WAIT, BLUE, "WaitingForAvailability"),
    ("deadline-missed-abandons-the-idle-colour", want(H2, C2),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1, started=timedelta(seconds=601)), selects=BLUE),
     SETTINGS, Action.ABANDON, GREEN, "ProgressDeadlineExceeded"),
    ("abandoned-template-is-not-retried", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=0, failed_commit=C2), selects=BLUE), SETTINGS,
     Action.WAIT, None, "ProgressDeadlineExceeded"),
    ("next-commit-after-abandon-tries-again", want(H3, C3),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=0, failed_commit=C2), selects=BLUE), SETTINGS,
     Action.APPLY, GREEN, "NewRelease"),
    ("same-template-in-a-new-commit-after-abandon-retries", want(H2, C3),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=0, failed_commit=C2), selects=BLUE), SETTINGS,
     Action.SCALE, GREEN, "Retry"),
    ("newer-commit-supersedes-release-under-way", want(H3, C3),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1), selects=BLUE), SETTINGS,
     Action.APPLY, GREEN, "NewRelease"),
    ("hand-edited-selector-is-corrected", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE, scale_down_at=NOW + timedelta(seconds=50)),
     SETTINGS, Action.SWITCH, GREEN, "Promote"),
    ("removed-selector-key-is-restored", want(H1, C1), observed(ready(BLUE, H1, C1)), SETTINGS,
     Action.SWITCH, BLUE, "Promote"),
    ("selector-edited-away-from-the-recorded-colour-is-restored", want(H1, C1),
     observed(ready(BLUE, H1, C1), selects=GREEN, recorded=BLUE), SETTINGS, Action.SWITCH, BLUE, "SelectorDrift"),
    ("selector-key-removed-from-the-recorded-colour-is-restored", want(H1, C1),
     observed(ready(BLUE, H1, C1), recorded=BLUE), SETTINGS, Action.SWITCH, BLUE, "SelectorDrift"),
    ("edited-selector-goes-back-even-to-a-degraded-serving-colour", want(H1, C1),
     observed(rolling(BLUE, H1, C1, 2, started=timedelta(hours=2)), selects=GREEN, recorded=BLUE), SETTINGS,
     Action.SWITCH, BLUE, "SelectorDrift"),
    ("warm-revert-is-a-rollback-not-drift", want(H1, C3),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, recorded=GREEN), SETTINGS,
     Action.SWITCH, BLUE, "Rollback"),
    ("replica-change-scales-the-active-colour", want(H1, C2, replicas=5),
     observed(ready(BLUE, H1, C1), selects=BLUE), SETTINGS, Action.SCALE, BLUE, "ReplicasChanged"),
    ("broken-source-keeps-serving", None, observed(ready(BLUE, H1, C1), selects=BLUE, recorded=BLUE), SETTINGS,
     Action.WAIT, None, "SourceNotReady"),
    ("broken-source-still-heals-the-selector", None,
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, recorded=BLUE), SETTINGS,
     Action.SWITCH, BLUE, "SelectorDrift"),
    ("broken-source-still-scales-down-on-time", None,
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE, recorded=BLUE,
              scale_down_at=NOW - timedelta(seconds=1)), SETTINGS, Action.SCALE_DOWN, GREEN, "ScaleDownDelayPassed"),
    ("broken-source-before-first-release-waits", None, observed(), SETTINGS, Action.WAIT, None, "SourceNotReady"),
    ("preview-follows-the-colour-being-released", want(H2, C2),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1), selects=BLUE,
              preview=ServiceState("shop-preview", exists=True, color=BLUE)), SETTINGS,
     Action.SWITCH_PREVIEW, GREEN, "PreviewSwitch"),
    ("preview-moves-to-the-new-idle-after-switch", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN, scale_down_at=NOW + timedelta(seconds=5),
              preview=ServiceState("shop-preview", exists=True, color=GREEN)), SETTINGS,
     Action.SWITCH_PREVIEW, BLUE, "PreviewSwitch"),
    ("missing-preview-service-is-ignored", want(H2, C2),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1), selects=BLUE,
              preview=ServiceState("shop-preview", exists=False)), SETTINGS,
     Action.WAIT, GREEN, "WaitingForAvailability"),
    ("first-release-reuses-a-green-holding-pods", want(H1, C1), observed(green=ready(GREEN, H2, C2)), SETTINGS,
     Action.APPLY, GREEN, "NewRelease"),
    ("first-release-ignores-a-scaled-down-green", want(H1, C1), observed(green=cold(GREEN, H2, C2)), SETTINGS,
     Action.APPLY, BLUE, "NewRelease"),
    ("first-release-with-both-colours-present-takes-blue", want(H1, C1),
     observed(ready(BLUE, H3, C3), ready(GREEN, H2, C2)), SETTINGS, Action.APPLY, BLUE, "NewRelease"),
    ("one-replica-recorded-colour-is-drift", want(H2, C2, replicas=1),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=1), selects=BLUE, recorded=GREEN), SETTINGS,
     Action.SWITCH, GREEN, "SelectorDrift"),
    ("broken-source-does-not-restore-an-unavailable-colour", None,
     observed(rolling(BLUE, H1, C1, 1), ready(GREEN, H2, C2), selects=GREEN, recorded=BLUE), SETTINGS,
     Action.WAIT, None, "SourceNotReady"),
    ("broken-source-keeps-the-warm-window", None,
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE, recorded=BLUE,
              scale_down_at=NOW + timedelta(seconds=50)), SETTINGS, Action.WAIT, None, "SourceNotReady"),
    ("idle-colour-with-other-replicas-is-rescaled", want(H2, C2, replicas=5),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE), SETTINGS,
     Action.SCALE, GREEN, "ReplicasChanged"),
    # The previous colour's scale-down time is kept by every step that does not end the warm window.
    ("suspend-keeps-the-scale-down-time", want(H2, C2), observed(ready(BLUE, H1, C1), selects=BLUE,
                                                                 scale_down_at=NOW + timedelta(seconds=40)),
     replace(SETTINGS, suspend=True), Action.NONE, None, "Suspended"),
    ("waiting-keeps-the-scale-down-time", want(H3, C3),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H3, C3, 1), selects=BLUE,
              scale_down_at=NOW + timedelta(seconds=40)), SETTINGS,
     Action.WAIT, GREEN, "WaitingForAvailability"),
    ("cold-rollback-keeps-the-scale-down-time", want(H1, C3),
     observed(cold(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN,
              scale_down_at=NOW + timedelta(seconds=40)), SETTINGS,
     Action.SCALE, BLUE, "ColdRollback"),
    ("abandon-keeps-the-scale-down-time", want(H2, C2),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1, started=timedelta(seconds=601)), selects=BLUE,
              scale_down_at=NOW + timedelta(seconds=40)),
     SETTINGS, Action.ABANDON, GREEN, "ProgressDeadlineExceeded"),
    ("abandoned-keeps-the-scale-down-time", want(H2, C2),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2, replicas=0, failed_commit=C2), selects=BLUE,
              scale_down_at=NOW + timedelta(seconds=40)),
     SETTINGS, Action.WAIT, None, "ProgressDeadlineExceeded"),
    ("held-drift-keeps-the-scale-down-time", None,
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=None, recorded=BLUE,
              scale_down_at=NOW + timedelta(seconds=40)), SETTINGS,
     Action.SWITCH, BLUE, "SelectorDrift"),
    ("preview-before-the-switch-keeps-the-scale-down-time", want(H3, C3),
     observed(ready(BLUE, H1, C1), rolling(GREEN, H3, C3, 1), selects=BLUE, scale_down_at=NOW + timedelta(seconds=40),
              preview=ServiceState("shop-preview", exists=True, color=BLUE)), SETTINGS,
     Action.SWITCH_PREVIEW, GREEN, "PreviewSwitch"),
    ("new-release-forgets-the-scale-down-time", want(H3, C3),
     observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE,
              scale_down_at=NOW + timedelta(seconds=40)), SETTINGS,
     Action.APPLY, GREEN, "NewRelease"),
    ("first-release-with-only-one-green-replica-reuses-green", want(H1, C1),
     observed(green=ready(GREEN, H2, C2, replicas=1)), SETTINGS, Action.APPLY, GREEN, "NewRelease"),
]


# What else each rule says: (message, phase, active colour, replicas, requeue_after, scale_down_at, stalled, serving).
# The message is the Event's and the status's; the rest drives conditions, timers and the scale-down time.
FULL = {
    'suspend-freezes-a-new-commit': (
        'spec.suspend is true: no change is made',
        Phase.SUSPENDED, BLUE, None, None, None, False, False),
    'missing-service-stalls': (
        "Service 'shop' does not exist; create it (the operator only switches its selector)",
        Phase.DEGRADED, None, None, None, None, True, False),
    'first-release-applies-blue': (
        'applying commit 111111111111 to the idle colour blue',
        Phase.PROGRESSING, None, 3, None, None, False, False),
    'first-release-waits-for-readiness': (
        'waiting for blue to become available (1/3 ready, 1 available, 3 updated) before switching',
        Phase.PROGRESSING, None, None, 580.0, None, False, False),
    'first-release-switches-when-available': (
        "switching Service 'shop' to blue (commit 111111111111): all 3 replicas ready and available",
        Phase.PROGRESSING, BLUE, None, None, NOW + timedelta(seconds=300), False, False),
    'released-and-settled': (
        'blue serves commit 111111111111',
        Phase.HEALTHY, BLUE, None, None, None, False, True),
    'commit-without-template-change-does-nothing': (
        'blue serves commit 222222222222',
        Phase.HEALTHY, BLUE, None, None, None, False, True),
    'new-template-goes-to-idle-green': (
        'applying commit 222222222222 to the idle colour green',
        Phase.PROGRESSING, BLUE, 3, None, None, False, False),
    'new-template-overwrites-cold-idle': (
        'applying commit 222222222222 to the idle colour green',
        Phase.PROGRESSING, BLUE, 3, None, None, False, False),
    'partly-ready-idle-is-not-switched-to': (
        'waiting for green to become available (2/3 ready, 2 available, 3 updated) before switching',
        Phase.PROGRESSING, BLUE, None, 580.0, None, False, False),
    'old-pods-still-present-is-not-switched-to': (
        'waiting for green to become available (3/3 ready, 3 available, 3 updated) before switching',
        Phase.PROGRESSING, BLUE, None, 600.0, None, False, False),
    'unobserved-generation-is-not-switched-to': (
        'waiting for green to become available (3/3 ready, 3 available, 3 updated) before switching',
        Phase.PROGRESSING, BLUE, None, 600.0, None, False, False),
    'fully-available-idle-is-switched-to': (
        "switching Service 'shop' to green (commit 222222222222): all 3 replicas ready and available",
        Phase.PROGRESSING, GREEN, None, None, NOW + timedelta(seconds=300), False, False),
    'previous-colour-stays-warm': (
        'green serves commit 222222222222; blue stays warm for instant rollback until '
        '2026-11-22T12:01:40Z',
        Phase.HEALTHY, GREEN, None, 100.0, NOW + timedelta(seconds=100), False, True),
    'previous-colour-scaled-down-after-delay': (
        'scaling the previous colour blue to 0 (scaleDownDelaySeconds 300s passed)',
        Phase.HEALTHY, GREEN, 0, None, None, False, True),
    'zero-delay-scales-down-at-once': (
        'scaling the previous colour blue to 0 (scaleDownDelaySeconds 0s passed)',
        Phase.HEALTHY, GREEN, 0, None, None, False, True),
    'lost-scale-down-time-restarts-the-delay': (
        'green serves commit 222222222222; blue stays warm for instant rollback until '
        '2026-11-22T12:05:00Z',
        Phase.HEALTHY, GREEN, None, 300.0, NOW + timedelta(seconds=300), False, True),
    'warm-revert-switches-back-at-once': (
        "switching Service 'shop' to blue (commit 333333333333): all 3 replicas ready and available",
        Phase.PROGRESSING, BLUE, None, None, NOW + timedelta(seconds=300), False, False),
    'cold-revert-scales-the-old-colour-up': (
        'scaling blue (commit 111111111111) to 3 replicas',
        Phase.PROGRESSING, GREEN, 3, None, None, False, False),
    'cold-revert-waits-for-readiness': (
        'waiting for blue to become available (0/3 ready, 0 available, 3 updated) before switching',
        Phase.PROGRESSING, GREEN, None, 580.0, None, False, False),
    'deadline-missed-abandons-the-idle-colour': (
        'green did not become available within 600s (1/3 ready, 1 available, 3 updated); abandoning '
        'commit 222222222222, traffic stays on blue',
        Phase.DEGRADED, BLUE, 0, None, None, True, False),
    'abandoned-template-is-not-retried': (
        'commit 222222222222 was abandoned on green: it did not become available within 600s; push a '
        'new commit to try again',
        Phase.DEGRADED, BLUE, None, None, None, True, False),
    'next-commit-after-abandon-tries-again': (
        'applying commit 333333333333 to the idle colour green',
        Phase.PROGRESSING, BLUE, 3, None, None, False, False),
    'same-template-in-a-new-commit-after-abandon-retries': (
        'scaling green (commit 222222222222) to 3 replicas',
        Phase.PROGRESSING, BLUE, 3, None, None, False, False),
    'newer-commit-supersedes-release-under-way': (
        'applying commit 333333333333 to the idle colour green',
        Phase.PROGRESSING, BLUE, 3, None, None, False, False),
    'hand-edited-selector-is-corrected': (
        "switching Service 'shop' to green (commit 222222222222): all 3 replicas ready and available",
        Phase.PROGRESSING, GREEN, None, None, NOW + timedelta(seconds=300), False, False),
    'removed-selector-key-is-restored': (
        "switching Service 'shop' to blue (commit 111111111111): all 3 replicas ready and available",
        Phase.PROGRESSING, BLUE, None, None, NOW + timedelta(seconds=300), False, False),
    'selector-edited-away-from-the-recorded-colour-is-restored': (
        "Service 'shop' selects green; restoring blue",
        Phase.DEGRADED, BLUE, None, None, None, False, False),
    'selector-key-removed-from-the-recorded-colour-is-restored': (
        "Service 'shop' selects no colour; restoring blue",
        Phase.DEGRADED, BLUE, None, None, None, False, False),
    'edited-selector-goes-back-even-to-a-degraded-serving-colour': (
        "Service 'shop' selects green; restoring blue",
        Phase.DEGRADED, BLUE, None, None, None, False, False),
    'warm-revert-is-a-rollback-not-drift': (
        "switching Service 'shop' to blue (commit 333333333333): all 3 replicas ready and available",
        Phase.PROGRESSING, BLUE, None, None, NOW + timedelta(seconds=300), False, False),
    'replica-change-scales-the-active-colour': (
        'scaling the active colour blue from 3 to 5 replicas',
        Phase.PROGRESSING, BLUE, 5, None, None, False, True),
    'broken-source-keeps-serving': (
        'blue keeps serving while the source is not ready',
        Phase.DEGRADED, BLUE, None, None, None, False, False),
    'broken-source-still-heals-the-selector': (
        "Service 'shop' selects green; restoring blue",
        Phase.DEGRADED, BLUE, None, None, None, False, False),
    'broken-source-still-scales-down-on-time': (
        'scaling the previous colour green to 0 (scaleDownDelaySeconds 300s passed)',
        Phase.DEGRADED, BLUE, 0, None, None, False, False),
    'broken-source-before-first-release-waits': (
        'waiting for a valid manifest in git',
        Phase.PENDING, None, None, None, None, False, False),
    'preview-follows-the-colour-being-released': (
        "pointing preview Service 'shop-preview' at the idle colour green",
        Phase.HEALTHY, BLUE, None, None, None, False, False),
    'preview-moves-to-the-new-idle-after-switch': (
        "pointing preview Service 'shop-preview' at the idle colour blue",
        Phase.HEALTHY, GREEN, None, None, NOW + timedelta(seconds=5), False, True),
    'missing-preview-service-is-ignored': (
        'waiting for green to become available (1/3 ready, 1 available, 3 updated) before switching',
        Phase.PROGRESSING, BLUE, None, 580.0, None, False, False),
    'first-release-reuses-a-green-holding-pods': (
        'applying commit 111111111111 to the idle colour green',
        Phase.PROGRESSING, None, 3, None, None, False, False),
    'first-release-ignores-a-scaled-down-green': (
        'applying commit 111111111111 to the idle colour blue',
        Phase.PROGRESSING, None, 3, None, None, False, False),
    'first-release-with-both-colours-present-takes-blue': (
        'applying commit 111111111111 to the idle colour blue',
        Phase.PROGRESSING, None, 3, None, None, False, False),
    'one-replica-recorded-colour-is-drift': (
        "Service 'shop' selects blue; restoring green",
        Phase.DEGRADED, GREEN, None, None, None, False, False),
    'broken-source-does-not-restore-an-unavailable-colour': (
        'green keeps serving while the source is not ready',
        Phase.DEGRADED, GREEN, None, 300.0, NOW + timedelta(seconds=300), False, False),
    'broken-source-keeps-the-warm-window': (
        'blue keeps serving while the source is not ready',
        Phase.DEGRADED, BLUE, None, 50.0, NOW + timedelta(seconds=50), False, False),
    'idle-colour-with-other-replicas-is-rescaled': (
        'scaling green (commit 222222222222) to 5 replicas',
        Phase.PROGRESSING, BLUE, 5, None, None, False, False),
    'suspend-keeps-the-scale-down-time': (
        'spec.suspend is true: no change is made',
        Phase.SUSPENDED, BLUE, None, None, NOW + timedelta(seconds=40), False, False),
    'waiting-keeps-the-scale-down-time': (
        'waiting for green to become available (1/3 ready, 1 available, 3 updated) before switching',
        Phase.PROGRESSING, BLUE, None, 580.0, NOW + timedelta(seconds=40), False, False),
    'cold-rollback-keeps-the-scale-down-time': (
        'scaling blue (commit 111111111111) to 3 replicas',
        Phase.PROGRESSING, GREEN, 3, None, NOW + timedelta(seconds=40), False, False),
    'abandon-keeps-the-scale-down-time': (
        'green did not become available within 600s (1/3 ready, 1 available, 3 updated); abandoning '
        'commit 222222222222, traffic stays on blue',
        Phase.DEGRADED, BLUE, 0, None, NOW + timedelta(seconds=40), True, False),
    'abandoned-keeps-the-scale-down-time': (
        'commit 222222222222 was abandoned on green: it did not become available within 600s; push a '
        'new commit to try again',
        Phase.DEGRADED, BLUE, None, None, NOW + timedelta(seconds=40), True, False),
    'held-drift-keeps-the-scale-down-time': (
        "Service 'shop' selects no colour; restoring blue",
        Phase.DEGRADED, BLUE, None, None, NOW + timedelta(seconds=40), False, False),
    'preview-before-the-switch-keeps-the-scale-down-time': (
        "pointing preview Service 'shop-preview' at the idle colour green",
        Phase.HEALTHY, BLUE, None, None, NOW + timedelta(seconds=40), False, False),
    'new-release-forgets-the-scale-down-time': (
        'applying commit 333333333333 to the idle colour green',
        Phase.PROGRESSING, BLUE, 3, None, None, False, False),
    'first-release-with-only-one-green-replica-reuses-green': (
        'applying commit 111111111111 to the idle colour green',
        Phase.PROGRESSING, None, 3, None, None, False, False),
}


def test_every_rule_has_its_full_plan() -> None:
    assert set(FULL) == {case[0] for case in CASES}


@pytest.mark.parametrize(("desired", "seen", "settings"), [pytest.param(*case[1:4], id=case[0]) for case in CASES])
def test_full_plan_of_each_rule(request: pytest.FixtureRequest, desired: Desired | None, seen: Observed,
                                settings: Settings) -> None:
    result = plan(desired, seen, settings, NOW)
    message, phase, active, replicas, requeue_after, scale_down_at, stalled, serving = FULL[request.node.callspec.id]
    assert result.message == message
    assert (result.phase, result.active, result.replicas, result.stalled, result.serving) == \
        (phase, active, replicas, stalled, serving)
    assert result.requeue_after == (pytest.approx(requeue_after) if requeue_after is not None else None)
    assert result.scale_down_at == scale_down_at


@pytest.mark.parametrize(("desired", "seen", "settings", "action", "color", "reason"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_rule(desired: Desired | None, seen: Observed, settings: Settings, action: Action, color: Color | None,
              reason: str) -> None:
    result = plan(desired, seen, settings, NOW)
    assert (result.action, result.reason) == (action, reason), result.message
    if color is not None:
        assert result.color == color
    assert plan(desired, seen, settings, NOW) == result, "planning must be deterministic"


def test_switch_starts_the_scale_down_delay() -> None:
    result = plan(want(H2, C2), observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE), SETTINGS, NOW)
    assert result.scale_down_at == NOW + timedelta(seconds=300)
    assert result.active == GREEN


def test_restoring_an_edited_selector_keeps_the_scale_down_time() -> None:
    keep = NOW + timedelta(seconds=50)
    result = plan(want(H2, C2), observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=BLUE, recorded=GREEN,
                                         scale_down_at=keep), SETTINGS, NOW)
    assert (result.action, result.color, result.reason) == (Action.SWITCH, GREEN, "SelectorDrift")
    assert result.scale_down_at == keep and result.active == GREEN


def test_waits_report_when_to_look_again() -> None:
    warm = plan(want(H2, C2), observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN,
                                       scale_down_at=NOW + timedelta(seconds=42)), SETTINGS, NOW)
    assert warm.requeue_after == pytest.approx(42)
    progressing = plan(want(H2, C2), observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 0), selects=BLUE),
                       SETTINGS, NOW)
    assert progressing.requeue_after == pytest.approx(600 - 20)
    assert progressing.phase is Phase.PROGRESSING


def test_abandon_and_missing_service_are_stalled() -> None:
    abandon = plan(want(H2, C2), observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1, started=timedelta(hours=1)),
                                          selects=BLUE), SETTINGS, NOW)
    assert abandon.stalled and abandon.replicas == 0 and abandon.active == BLUE
    assert plan(want(H1, C1), observed(service=False), SETTINGS, NOW).stalled


# ---- convergence over simulated passes ------------------------------------------------------------------
class World:
    """A tiny cluster model: applies a plan's effect the way the reconciler and Kubernetes would."""

    def __init__(self, seen: Observed, now: datetime = NOW) -> None:
        self.seen = seen
        self.now = now
        self.writes: list[tuple[Action, Color | None]] = []

    def set_color(self, state: ColorState) -> None:
        key = "blue" if state.color is BLUE else "green"
        self.seen = replace(self.seen, **{key: state})

    def apply(self, step: Plan, desired: Desired) -> None:
        self.writes.append((step.action, step.color))
        state = self.seen.color(step.color) if step.color else None
        if step.action is Action.APPLY:
            assert step.color is not None and step.replicas is not None
            self.set_color(ColorState(color=step.color, exists=True, template_hash=desired.template_hash,
                                      commit=desired.commit, replicas=step.replicas,
                                      generation=(state.generation if state else 0) + 1,
                                      rollout_started_at=self.now))
        elif step.action in (Action.SCALE, Action.SCALE_DOWN, Action.ABANDON):
            assert state is not None and step.replicas is not None
            started = self.now if step.color != self.seen.service.color else state.rollout_started_at
            self.set_color(replace(state, replicas=step.replicas, generation=state.generation + 1,
                                   rollout_started_at=started, failed_commit=desired.commit
                                   if step.action is Action.ABANDON else None))
        elif step.action is Action.SWITCH:
            self.seen = replace(self.seen, service=replace(self.seen.service, color=step.color))
        elif step.action is Action.SWITCH_PREVIEW:
            assert self.seen.preview is not None
            self.seen = replace(self.seen, preview=replace(self.seen.preview, color=step.color))
        self.seen = replace(self.seen, scale_down_at=step.scale_down_at, recorded_active=step.active)

    def kubernetes_rolls_out(self) -> None:
        """The deployment controller and kubelet make every replica ready."""
        for state in (self.seen.blue, self.seen.green):
            if state.exists:
                self.set_color(replace(state, observed_generation=state.generation, status_replicas=state.replicas,
                                       updated_replicas=state.replicas, ready_replicas=state.replicas,
                                       available_replicas=state.replicas))

    def run(self, desired: Desired, limit: int = 20) -> Plan:
        """Plan/act until nothing is left to do; time jumps over waits; fails on a repeated write."""
        for _ in range(limit):
            step = plan(desired, self.seen, SETTINGS, self.now)
            self.seen = replace(self.seen, scale_down_at=step.scale_down_at)  # status is saved every pass
            if step.writes:
                assert self.writes[-1:] != [(step.action, step.color)] or step.action is Action.SWITCH_PREVIEW, \
                    f"the same write twice in a row: {step}"
                self.apply(step, desired)
            elif step.reason == "WaitingForAvailability":
                self.kubernetes_rolls_out()
            elif step.requeue_after is not None:
                self.now += timedelta(seconds=step.requeue_after)
            else:
                return step
        raise AssertionError(f"no convergence after {limit} passes: {self.writes}")


STARTS = [
    pytest.param(observed(), id="empty-cluster"),
    pytest.param(observed(ready(BLUE, H1, C1), selects=BLUE), id="blue-serving"),
    pytest.param(observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN,
                          scale_down_at=NOW + timedelta(seconds=30)), id="green-serving-blue-warm"),
    pytest.param(observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1), selects=BLUE), id="release-under-way"),
    pytest.param(observed(cold(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN), id="blue-cold"),
    pytest.param(observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=None), id="selector-key-removed"),
    pytest.param(observed(ready(BLUE, H1, C1), rolling(GREEN, H2, C2, 1), selects=BLUE,
                          preview=ServiceState("shop-preview", exists=True)), id="with-preview"),
]
TARGETS = [pytest.param(want(t, c), id=f"to-{t}") for t, c in ((H1, C4), (H2, C4), (H3, C4))]


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("desired", TARGETS)
def test_converges_to_the_desired_template_with_one_colour_up(start: Observed, desired: Desired) -> None:
    world = World(start)
    final = world.run(desired)
    active = world.seen.service.color
    assert final.action is Action.NONE and final.reason == "Released"
    assert active is not None and world.seen.color(active).template_hash == desired.template_hash
    assert world.seen.color(active).fully_available
    assert world.seen.color(active.other).replicas == 0, "the previous colour is scaled down in the end"
    assert world.writes.count((Action.SWITCH, active)) <= 1, "exactly one cut-over to the serving colour"
    if world.seen.preview is not None:
        assert world.seen.preview.color == active.other
    assert plan(desired, world.seen, SETTINGS, world.now) == final, "re-planning a settled release changes nothing"


def test_traffic_only_moves_to_fully_available_colours() -> None:
    world = World(observed(ready(BLUE, H1, C1), selects=BLUE))
    desired = want(H2, C2)
    for _ in range(20):
        step = plan(desired, world.seen, SETTINGS, world.now)
        if step.action is Action.SWITCH:
            assert step.color is not None and world.seen.color(step.color).fully_available
        if step.writes:
            world.apply(step, desired)
        elif step.reason == "WaitingForAvailability":
            world.kubernetes_rolls_out()
        elif step.requeue_after:
            world.now += timedelta(seconds=step.requeue_after)
        else:
            break
    assert world.seen.service.color == GREEN


def test_warm_rollback_writes_nothing_but_the_selector() -> None:
    world = World(observed(ready(BLUE, H1, C1), ready(GREEN, H2, C2), selects=GREEN,
                           scale_down_at=NOW + timedelta(seconds=200)))
    step = plan(want(H1, C3), world.seen, SETTINGS, NOW)
    assert (step.action, step.color) == (Action.SWITCH, BLUE)


def test_never_ready_release_is_abandoned_and_traffic_stays() -> None:
    world = World(observed(ready(BLUE, H1, C1), selects=BLUE))
    desired = want(H2, C2)
    world.apply(plan(desired, world.seen, SETTINGS, world.now), desired)  # APPLY green, never becomes ready
    step = plan(desired, world.seen, SETTINGS, world.now)
    assert step.reason == "WaitingForAvailability"
    world.now += timedelta(seconds=step.requeue_after or 0)
    abandon = plan(desired, world.seen, SETTINGS, world.now)
    assert abandon.action is Action.ABANDON
    world.apply(abandon, desired)
    after = plan(desired, world.seen, SETTINGS, world.now)
    assert after.action is Action.WAIT and after.stalled
    assert world.seen.service.color == BLUE and world.seen.green.replicas == 0
