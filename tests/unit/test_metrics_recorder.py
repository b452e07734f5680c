"""``PrometheusRecorder``: the events the operator reports become the right series (each test on a registry
of its own, read back sample by sample; the moments come from a fake monotonic clock)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bluegreen.core.planner import ColorState
from bluegreen.core.spec import Color
from bluegreen.metrics.recorder import PrometheusRecorder

NS, NAME = "shop-ns", "shop"
V1, V2, REVERT = "1" * 40, "2" * 40, "3" * 40
RELEASE = {"namespace": NS, "release": NAME}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def at(self, moment: float) -> Clock:
        self.now = moment
        return self


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder(clock: Clock) -> PrometheusRecorder:
    return PrometheusRecorder(CollectorRegistry(), monotonic=clock)


def sample(recorder: PrometheusRecorder, name: str, **labels: str) -> float | None:
    return recorder.registry.get_sample_value(name, labels)


def body(version: int, status: dict[str, Any] | None = None, service: str = "shop") -> dict[str, Any]:
    return {"metadata": {"namespace": NS, "name": NAME, "resourceVersion": str(version)},
            "spec": {"service": service}, "status": status or {}}


def entry(commit: str, color: str, outcome: str, reason: str, started: str = "2026-12-01T12:00:00Z") -> dict[str, Any]:
    return {"revision": commit, "color": color, "outcome": outcome, "reason": reason, "startedAt": started}


def state(color: Color, *, replicas: int = 2, ready: int = 2, available: int | None = None,
          generation: int = 1) -> ColorState:
    return ColorState(color=color, exists=True, replicas=replicas, generation=generation, observed_generation=1,
                      status_replicas=replicas, updated_replicas=replicas, ready_replicas=ready,
                      available_replicas=ready if available is None else available)


def test_the_info_series_follows_the_status_and_the_old_one_is_removed(recorder: PrometheusRecorder) -> None:
    recorder.release_observed(body(10))
    assert sample(recorder, "bluegreen_release_info", **RELEASE, active_color="", revision="", phase="") == 1
    recorder.release_observed(body(11, {"activeColor": "blue", "activeRevision": V1, "phase": "Healthy"}))
    assert sample(recorder, "bluegreen_release_info", **RELEASE, active_color="", revision="", phase="") is None
    assert sample(recorder, "bluegreen_release_info", **RELEASE, active_color="blue", revision=V1,
                  phase="Healthy") == 1
    recorder.release_observed(body(9, {"activeColor": "green", "activeRevision": V2, "phase": "Healthy"}))
    assert sample(recorder, "bluegreen_release_info", **RELEASE, active_color="blue", revision=V1,
                  phase="Healthy") == 1, "an older status (a late watch event) changes nothing"
    text = generate_latest(recorder.registry).decode()
    assert text.count("bluegreen_release_info{") == 1


def test_conditions_are_one_series_each_with_the_current_status(recorder: PrometheusRecorder) -> None:
    recorder.release_observed(body(10, {"conditions": [{"type": "Ready", "status": "False"},
                                                       {"type": "Reconciling", "status": "True"}]}))
    recorder.release_observed(body(11, {"conditions": [{"type": "Ready", "status": "True"},
                                                       {"type": "Reconciling", "status": "False"}]}))
    assert sample(recorder, "bluegreen_release_condition", **RELEASE, condition="Ready", status="True") == 1
    assert sample(recorder, "bluegreen_release_condition", **RELEASE, condition="Ready", status="False") is None
    assert sample(recorder, "bluegreen_release_condition", **RELEASE, condition="Reconciling", status="False") == 1
    assert sample(recorder, "bluegreen_release_condition", **RELEASE, condition="Reconciling", status="True") is None


def test_outcomes_start_at_zero_and_count_what_ended_since_the_first_look(recorder: PrometheusRecorder) -> None:
    recorder.release_observed(body(10, {"history": [entry(V1, "blue", "Succeeded", "Promote")]}))
    for outcome in ("Succeeded", "RolledBack", "Failed", "Aborted", "Abandoned", "Superseded"):
        assert sample(recorder, "bluegreen_release_outcomes_total", **RELEASE, outcome=outcome) == 0, \
            "what ended before the operator started is not counted"
    history = [entry(V2, "green", "InProgress", "Release", "2026-12-01T12:05:00Z"),
               entry(V1, "blue", "Succeeded", "Promote")]
    recorder.release_observed(body(11, {"history": history}))
    history = [entry(V2, "green", "Abandoned", "ProgressDeadlineExceeded", "2026-12-01T12:05:00Z"), history[1]]
    recorder.release_observed(body(12, {"history": history}))
    recorder.release_observed(body(12, {"history": history}))
    assert sample(recorder, "bluegreen_release_outcomes_total", **RELEASE, outcome="Abandoned") == 1
    assert sample(recorder, "bluegreen_release_outcomes_total", **RELEASE, outcome="Succeeded") == 0
    assert sample(recorder, "bluegreen_available_to_switch_seconds_count", namespace=NS, outcome="Succeeded") \
        is None, "no switch: no latency"


def test_the_cut_over_is_measured_from_the_colour_available_and_from_the_commit_seen(
        recorder: PrometheusRecorder, clock: Clock) -> None:
    recorder.release_observed(body(10))
    clock.at(1000.0)
    recorder.commit_seen(NS, NAME, V1)
    clock.at(1002.0)
    recorder.color_observed(NS, NAME, state(Color.BLUE, ready=1))
    clock.at(1004.0)
    recorder.color_observed(NS, NAME, state(Color.BLUE))
    clock.at(1004.5)
    recorder.commit_seen(NS, NAME, V1)  # seen again by the next check: the first moment counts
    recorder.color_observed(NS, NAME, state(Color.BLUE))  # still available: since 1004
    clock.at(1004.25)
    recorder.service_switched(NS, "shop", Color.BLUE)
    clock.at(1006.0)  # the status naming the switch arrives later: the switch's own moment counts
    recorder.release_observed(body(11, {"history": [entry(V1, "blue", "Succeeded", "Promote")]}))
    assert sample(recorder, "bluegreen_available_to_switch_seconds_sum", namespace=NS, outcome="Succeeded") == 0.25
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_sum", namespace=NS, outcome="Succeeded") == 4.25
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_bucket", namespace=NS, outcome="Succeeded",
                  le="5.0") == 1
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_bucket", namespace=NS, outcome="Succeeded",
                  le="2.5") == 0

    # A warm revert: blue was available all along; the switch became possible when the revert was fetched.
    clock.at(2000.0)
    recorder.commit_seen(NS, NAME, REVERT)
    clock.at(2000.125)
    recorder.service_switched(NS, "shop", Color.BLUE)
    clock.at(2001.0)
    recorder.release_observed(body(12, {"history": [entry(REVERT, "blue", "RolledBack", "Rollback",
                                                          "2026-12-01T13:00:00Z"),
                                                    entry(V1, "blue", "Succeeded", "Promote")]}))
    assert sample(recorder, "bluegreen_available_to_switch_seconds_sum", namespace=NS, outcome="RolledBack") == 0.125
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_sum", namespace=NS, outcome="RolledBack") == 0.125
    assert sample(recorder, "bluegreen_release_outcomes_total", **RELEASE, outcome="RolledBack") == 1
    assert sample(recorder, "bluegreen_release_outcomes_total", **RELEASE, outcome="Succeeded") == 1


def test_a_switch_not_seen_is_timed_by_the_status_and_an_unknown_moment_gives_no_latency(
        recorder: PrometheusRecorder, clock: Clock) -> None:
    recorder.release_observed(body(10, service="front"))
    clock.at(1000.0)
    recorder.color_observed(NS, NAME, state(Color.GREEN))
    recorder.service_switched(NS, "other", Color.GREEN)  # another Service: not this release's switch
    recorder.service_switched(NS, "front", Color.BLUE)  # this Service, but to the other colour
    clock.at(1003.0)
    recorder.release_observed(body(11, {"history": [entry(V2, "green", "Succeeded", "Promote")]}, service="front"))
    assert sample(recorder, "bluegreen_available_to_switch_seconds_sum", namespace=NS, outcome="Succeeded") == 3.0
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_count", namespace=NS, outcome="Succeeded") is None, \
        "the commit was never seen by this process"


def test_a_colour_that_stops_being_available_starts_over(recorder: PrometheusRecorder, clock: Clock) -> None:
    recorder.release_observed(body(10))
    clock.at(1000.0)
    recorder.color_observed(NS, NAME, state(Color.GREEN))
    clock.at(1005.0)
    recorder.commit_seen(NS, NAME, V2)
    clock.at(1010.0)
    recorder.color_observed(NS, NAME, state(Color.GREEN, generation=2))  # a new template applied: not yet rolled out
    clock.at(1020.0)
    recorder.color_observed(NS, NAME, state(Color.GREEN))
    clock.at(1021.0)
    recorder.release_observed(body(11, {"history": [entry(V2, "green", "Succeeded", "Promote")]}))
    assert sample(recorder, "bluegreen_available_to_switch_seconds_sum", namespace=NS, outcome="Succeeded") == 1.0
    recorder.color_deleted(NS, NAME, Color.GREEN)
    clock.at(1030.0)
    recorder.release_observed(body(12, {"history": [entry(V1, "green", "Succeeded", "Promote", "2026-12-01T13:00:00Z"),
                                                    entry(V2, "green", "Succeeded", "Promote")]}))
    assert sample(recorder, "bluegreen_available_to_switch_seconds_count", namespace=NS, outcome="Succeeded") == 1, \
        "a deleted colour's availability is forgotten"


def test_colour_replicas_follow_the_deployment_and_go_with_it(recorder: PrometheusRecorder) -> None:
    recorder.color_observed(NS, NAME, state(Color.BLUE, replicas=3, ready=2, available=1))
    labels = {**RELEASE, "color": "blue"}
    assert sample(recorder, "bluegreen_color_spec_replicas", **labels) == 3
    assert sample(recorder, "bluegreen_color_ready_replicas", **labels) == 2
    assert sample(recorder, "bluegreen_color_available_replicas", **labels) == 1
    recorder.color_observed(NS, NAME, state(Color.BLUE, replicas=0, ready=0))
    assert sample(recorder, "bluegreen_color_spec_replicas", **labels) == 0
    recorder.color_deleted(NS, NAME, Color.BLUE)
    for name in ("bluegreen_color_spec_replicas", "bluegreen_color_ready_replicas",
                 "bluegreen_color_available_replicas"):
        assert sample(recorder, name, **labels) is None


def test_check_verdicts_are_counted_by_hook_check_and_verdict(recorder: PrometheusRecorder) -> None:
    check = {"name": "smoke", "hook": "prePromotion", "commit": V2, "color": "green", "verdict": "Running",
             "startedAt": "2026-12-01T12:00:05Z"}
    recorder.release_observed(body(10, {"checks": [check]}))
    recorder.release_observed(body(11, {"checks": [{**check, "verdict": "Failed"}]}))
    recorder.release_observed(body(12, {"checks": [{**check, "verdict": "Failed"}]}))
    assert sample(recorder, "bluegreen_check_verdicts_total", **RELEASE, hook="prePromotion", check="smoke",
                  verdict="Failed") == 1
    assert sample(recorder, "bluegreen_check_verdicts_total", **RELEASE, hook="prePromotion", check="smoke",
                  verdict="Passed") is None


def test_a_deleted_release_loses_its_series_and_keeps_the_histograms(recorder: PrometheusRecorder,
                                                                    clock: Clock) -> None:
    check = {"name": "smoke", "hook": "prePromotion", "commit": V1, "color": "blue", "verdict": "Running"}
    recorder.release_observed(body(10, {"checks": [check]}))
    recorder.color_observed(NS, NAME, state(Color.BLUE))
    recorder.commit_seen(NS, NAME, V1)
    recorder.release_observed(body(11, {"activeColor": "blue", "activeRevision": V1, "phase": "Healthy",
                                        "conditions": [{"type": "Ready", "status": "True"}],
                                        "checks": [{**check, "verdict": "Passed"}],
                                        "history": [entry(V1, "blue", "Succeeded", "Promote")]}))
    recorder.release_deleted(NS, NAME)
    text = generate_latest(recorder.registry).decode()
    for name in ("bluegreen_release_info{", "bluegreen_release_condition{", "bluegreen_release_outcomes_total{",
                 "bluegreen_check_verdicts_total{"):
        assert name not in text, f"{name} outlived its release"
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_count", namespace=NS, outcome="Succeeded") == 1
    assert sample(recorder, "bluegreen_color_spec_replicas", **RELEASE, color="blue") == 2, \
        "the Deployment is still there (deletionPolicy Orphan)"
    recorder.release_deleted(NS, NAME)  # twice: nothing to do

    recorder.release_observed(body(20, {"history": [entry(V1, "blue", "Succeeded", "Promote")]}))
    assert sample(recorder, "bluegreen_release_outcomes_total", **RELEASE, outcome="Succeeded") == 0, \
        "a release created again under the same name starts from its first look"
    recorder.release_observed(body(21, {"history": [entry(V1, "blue", "Succeeded", "Promote", "2026-12-01T14:00:00Z"),
                                                    entry(V1, "blue", "Succeeded", "Promote")]}))
    assert sample(recorder, "bluegreen_commit_to_switch_seconds_count", namespace=NS, outcome="Succeeded") == 1, \
        "the commits the deleted release had seen are forgotten with it"


def test_the_operators_own_work(recorder: PrometheusRecorder) -> None:
    assert sample(recorder, "bluegreen_reconcile_passes_total", result="error") == 0
    recorder.reconcile_pass("success", 0.02)
    recorder.reconcile_pass("success", 0.03)
    recorder.reconcile_pass("error", 0.5)
    assert sample(recorder, "bluegreen_reconcile_passes_total", result="success") == 2
    assert sample(recorder, "bluegreen_reconcile_passes_total", result="error") == 1
    assert sample(recorder, "bluegreen_reconcile_duration_seconds_count") == 3
    assert sample(recorder, "bluegreen_reconcile_duration_seconds_sum") == pytest.approx(0.55)

    repository = "https://git.example.com/team/deploy"
    recorder.git_contact(repository, "success", 0.2)
    recorder.git_contact(repository, "RepositoryUnreachable", 30.0)
    recorder.git_fetch(repository, "success", 0.15)
    assert sample(recorder, "bluegreen_git_remote_contacts_total", repository=repository, result="success") == 1
    assert sample(recorder, "bluegreen_git_remote_contacts_total", repository=repository,
                  result="RepositoryUnreachable") == 1
    assert sample(recorder, "bluegreen_git_remote_contact_duration_seconds_sum", repository=repository,
                  result="RepositoryUnreachable") == 30.0
    assert sample(recorder, "bluegreen_git_fetches_total", repository=repository, result="success") == 1
    assert sample(recorder, "bluegreen_git_fetch_duration_seconds_sum", repository=repository,
                  result="success") == 0.15

    recorder.webhook_request("github", 202)
    recorder.webhook_request("github", 202)
    recorder.webhook_request("unknown", 404)
    assert sample(recorder, "bluegreen_webhook_requests_total", provider="github", code="202") == 2
    assert sample(recorder, "bluegreen_webhook_requests_total", provider="unknown", code="404") == 1


def test_a_malformed_release_is_logged_never_raised(recorder: PrometheusRecorder,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    recorder.release_observed({"metadata": {"namespace": NS, "name": NAME}, "status": "not a mapping"})
    recorder.color_observed(NS, NAME, None)  # type: ignore[arg-type]
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("metrics: recording failed") == 2
    assert "bluegreen_release_info{" not in generate_latest(recorder.registry).decode()
    recorder.release_observed(body(10, {"phase": "Healthy"}))
    assert sample(recorder, "bluegreen_release_info", **RELEASE, active_color="", revision="", phase="Healthy") == 1


def test_every_series_follows_the_naming_conventions() -> None:
    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry)
    recorder.release_observed(body(1))
    families = {family.name: family for family in registry.collect()}
    assert families["bluegreen_build_info"].samples[0].labels["version"]
    for name, family in families.items():
        assert name.startswith("bluegreen_"), f"{name}: no bluegreen_ prefix (a private registry has only ours)"
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), f"{name}: counters end in _total"
        if family.type == "histogram":
            assert name.endswith("_seconds"), f"{name}: durations are in seconds"
    default = PrometheusRecorder()
    assert any(f.name.startswith("process_") for f in default.registry.collect()), "the process collector"
