"""The notifier's own rules without a network: tuning from the environment, destinations (the groups of the
per-destination sender limit), which targets get which notification, and that a pass is never broken by it.
Deliveries over real HTTP are in tests/integration/test_notify_delivery.py."""

from __future__ import annotations

from typing import Any

import pytest
import structlog.testing

from bluegreen.core.delivery_policy import DeliveryPolicy
from bluegreen.core.notify_spec import NotifyEvent, NotifyTarget
from bluegreen.core.spec import ReleaseRef, ReleaseSpec
from bluegreen.notify.sender import Notifier, destination

RELEASE = ReleaseRef("shop", "shop", "u-1")
ENTRY = {"revision": "5" * 40, "message": "m", "author": "a", "color": "blue", "startedAt": "2026-01-01T10:00:00Z",
         "outcome": "InProgress", "reason": "NewRelease"}


class NoCluster:
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        raise AssertionError("nothing is sent in these tests")

    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None:
        raise AssertionError("nothing is sent in these tests")


def test_tuning_from_the_environment() -> None:
    default = Notifier.from_env(NoCluster(), deny_networks=(), environ={})
    assert (default.policy, default.workers, default.lanes.capacity, default.lanes.group_limit) == \
        (DeliveryPolicy(), 4, 1000, 2)
    tuned = Notifier.from_env(NoCluster(), deny_networks=(), environ={
        "BLUEGREEN_NOTIFY_WORKERS": "6", "BLUEGREEN_NOTIFY_QUEUE": "50", "BLUEGREEN_NOTIFY_TIMEOUT": "2.5",
        "BLUEGREEN_NOTIFY_ATTEMPTS": "2", "BLUEGREEN_NOTIFY_BACKOFF": "0.5"})
    assert (tuned.workers, tuned.lanes.capacity, tuned.lanes.group_limit) == (6, 50, 3)
    assert tuned.policy == DeliveryPolicy(attempts=2, timeout_seconds=2.5, backoff_first=0.5)
    assert Notifier(NoCluster(), workers=1).lanes.group_limit == 1
    with pytest.raises(ValueError):
        Notifier.from_env(NoCluster(), deny_networks=(), environ={"BLUEGREEN_NOTIFY_TIMEOUT": "5s"})


@pytest.mark.parametrize(("url", "group"), [
    ("https://hooks.example.com/a", ("https", "hooks.example.com")),
    ("https://HOOKS.example.com:443/b?x=1", ("https", "hooks.example.com:443")),
    ("http://user:token@hooks.example.com:8080/c", ("http", "hooks.example.com:8080")),
    ("http://127.0.0.1:http/x", ("http", "127.0.0.1:http")),
])
def test_a_webhook_destination_is_its_scheme_host_and_port(url: str, group: tuple[str, ...]) -> None:
    assert destination(RELEASE, NotifyTarget("t", "webhook", "s", "secret", url=url)) == group


def test_a_slack_destination_is_its_secret() -> None:
    assert destination(RELEASE, NotifyTarget("t", "slack", "chat", "url")) == ("secret", "shop", "chat")


def spec(*targets: dict[str, Any]) -> ReleaseSpec:
    return ReleaseSpec.from_dict({"source": {"url": "https://g/x.git", "path": "d.yaml"}, "service": "shop",
                                  "notify": list(targets)})


def test_only_the_targets_that_want_the_event_are_queued_once_each() -> None:
    notifier = Notifier(NoCluster())  # not started: what is queued stays queued
    targets = spec({"name": "all", "slack": {"secretRef": {"name": "a"}}},
                   {"name": "failures", "slack": {"secretRef": {"name": "b"}}, "events": ["Failed"]},
                   {"name": "starts", "webhook": {"url": "https://h/x", "secretRef": {"name": "c"}},
                    "events": ["Started", "Promoted"]})
    notifier.status_written(RELEASE, targets, {}, {"history": [ENTRY]})
    assert len(notifier.lanes) == 2
    notifier.status_written(RELEASE, targets, {}, {"history": [ENTRY]})
    assert len(notifier.lanes) == 2, "the same change handed over again is not queued again"
    taken = sorted(item.target.name for _, item in (notifier.lanes.take(0), notifier.lanes.take(0)))  # type: ignore[misc]
    assert taken == ["all", "starts"]
    other = ReleaseRef("shop", "other", "u-2")
    assert notifier.queue(other, targets.notify, []) == 0
    notifier.status_written(other, targets, {}, {"history": [ENTRY]})
    assert len(notifier.lanes) == 4, "another release's identical history is its own"


class Exploding(dict):  # type: ignore[type-arg]
    def get(self, *_: Any) -> Any:
        raise RuntimeError("a bug somewhere")


def test_a_failure_to_announce_is_logged_never_raised_into_the_pass() -> None:
    with structlog.testing.capture_logs() as logged:
        notifier = Notifier(NoCluster())
        notifier.status_written(RELEASE, spec({"name": "x", "slack": {"secretRef": {"name": "a"}}}), None,
                                {"history": [Exploding(ENTRY)]})
    assert len(notifier.lanes) == 0
    assert [(line["event"], line["log_level"], line["error"]) for line in logged] == [
        ("notifications not queued", "warning", "RuntimeError: a bug somewhere")]


def test_no_targets_announce_nothing_and_read_nothing() -> None:
    notifier = Notifier(NoCluster())
    notifier.status_written(RELEASE, spec(), {}, {"history": [ENTRY]})
    assert len(notifier.lanes) == 0
    assert NotifyEvent.STARTED in NotifyTarget("t", "slack", "s", "url").events
