"""Notification delivery against real HTTP receivers on loopback (``tests/servers/receivers.py``): a signed
webhook and a Slack message, a receiver that fails twice then succeeds, one that always fails (given up,
logged, an Event, no secret in the logs), one that hangs (its timeout fires; other targets and the pool
deliver meanwhile), a 429 with Retry-After, final 4xx answers and refused URLs.

The cluster side (Secrets, Events) is a small in-memory stand-in of the ``Cluster`` port; the operator's
Secrets and Events on a real API server are in tests/e2e/test_notifications.py. Log output is the operator's
JSON logging (``bluegreen.logs.configure``), captured.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from receivers import HangingReceiver, Receiver

from bluegreen.core.delivery_policy import DeliveryPolicy
from bluegreen.core.networks import parse_networks
from bluegreen.core.spec import ReleaseRef, ReleaseSpec
from bluegreen.logs import configure
from bluegreen.notify import Notifier

Make = Callable[..., Any]
Logs = Callable[[], str]
RELEASE = ReleaseRef("shop", "shop", "u-1")
HMAC_KEY = b"hmac-key-\xf0\x9f\x94\x91-do-not-log"
SLACK_PATH_SECRET = "T000/B000/XXXXslackTOKENdoNotLog"
V1 = "a1" * 20
BASE_SPEC: dict[str, Any] = {"source": {"url": "https://git.example.com/d.git", "path": "d.yaml"}, "service": "shop"}


class SecretsAndEvents:
    """The two calls of the Cluster port the notifier makes, in memory (thread-safe)."""

    def __init__(self, secrets: dict[str, dict[str, bytes]]) -> None:
        self.secrets = secrets
        self.events: list[tuple[str, str, str]] = []
        self.reads = 0
        self._lock = threading.Lock()

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        with self._lock:
            self.reads += 1
        assert namespace == RELEASE.namespace
        return self.secrets.get(name)

    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None:
        with self._lock:
            self.events.append((kind, reason, message))


@pytest.fixture
def logs() -> Iterator[Callable[[], str]]:
    """The operator's JSON log output while the test runs."""
    root = logging.getLogger()
    saved_handlers, saved_level, saved_config = root.handlers[:], root.level, structlog.get_config()
    configure(fmt="json")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream.getvalue
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    structlog.configure(**saved_config)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def receivers() -> Iterator[Make]:
    made: list[Any] = []

    def make(kind: type = Receiver, **fields: Any) -> Any:
        server = kind(**fields)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


FAST = DeliveryPolicy(attempts=4, timeout_seconds=2.0, backoff_first=0.05, backoff_max=0.2, retry_after_max=5.0)


@pytest.fixture
def notifier() -> Iterator[Make]:
    """Factory of started notifiers, each closed at the end of the test (closing twice is harmless)."""
    made: list[Notifier] = []

    def make(cluster: SecretsAndEvents, policy: DeliveryPolicy = FAST, workers: int = 2,
             deny: str = "169.254.0.0/16,fe80::/10", capacity: int = 1000) -> Notifier:
        sender = Notifier(cluster, deny_networks=parse_networks(deny), policy=policy, workers=workers,
                          capacity=capacity)
        sender.start()
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.close(grace=0.1)


def spec_with(*targets: dict[str, Any]) -> ReleaseSpec:
    return ReleaseSpec.from_dict({**copy.deepcopy(BASE_SPEC), "notify": list(targets)})


def webhook(name: str, url: str, secret: str = "hmac", **extra: Any) -> dict[str, Any]:
    return {"name": name, "webhook": {"url": url, "secretRef": {"name": secret}}, **extra}


def slack(name: str, secret: str = "slack", **extra: Any) -> dict[str, Any]:
    return {"name": name, "slack": {"secretRef": {"name": secret}}, **extra}


def entry(outcome: str, revision: str = V1, finished: str | None = "2026-01-01T10:00:07Z") -> dict[str, Any]:
    found = {"revision": revision, "message": "shop v2", "author": "Dev One <dev@example.com>", "color": "green",
             "startedAt": "2026-01-01T10:00:00Z", "outcome": outcome, "reason": "NewRelease"}
    if outcome != "InProgress" and finished is not None:
        found.update(finishedAt=finished, reason="Promote")
    return found


def write(sender: Notifier, spec: ReleaseSpec, outcome: str = "Succeeded", before: str | None = "InProgress",
          release: ReleaseRef = RELEASE, revision: str = V1) -> float:
    """What a pass does after its status patch: hand the notifier the status before and after; return when."""
    old = {"history": [entry(before, revision)] if before else []}
    at = time.monotonic()
    sender.status_written(release, spec, old, {"activeColor": "green", "history": [entry(outcome, revision)]})
    return at


def test_a_signed_webhook_and_a_slack_message(notifier: Make, receivers: Make, logs: Logs) -> None:
    hook, chat = receivers(secret=HMAC_KEY), receivers()
    slack_url = f"{chat.url}/{SLACK_PATH_SECRET}"
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}, "slack": {"url": slack_url.encode()}})
    sender = notifier(cluster)
    spec = spec_with(webhook("team-hook", hook.url), slack("team-chat"))
    started = write(sender, spec, outcome="InProgress", before=None)
    first = [hook.wait_for(1)[0], chat.wait_for(1)[0]]
    promoted = write(sender, spec)
    [_, signed], [_, message] = hook.wait_for(2), chat.wait_for(2)
    sender.close()

    assert [r.verified for r in hook.received] == [True, True], "the receiver's own HMAC check passes"
    document = signed.json
    assert signed.headers["X-Bluegreen-Event"] == "Promoted" and signed.headers["Content-Type"] == "application/json"
    assert signed.headers["X-Bluegreen-Delivery"] == document["id"]
    assert signed.headers["User-Agent"].startswith("bluegreen-operator/")
    assert (document["event"], document["color"], document["activeColor"], document["durationSeconds"]) == \
        ("Promoted", "green", "green", 7)
    assert document["commit"] == {"sha": V1, "short": V1[:12], "author": "Dev One <dev@example.com>",
                                  "message": "shop v2"}
    assert document["release"] == {"namespace": "shop", "name": "shop", "uid": "u-1"}
    assert hook.events() == ["Started", "Promoted"], "in order, per target"
    assert message.path == f"/hook/{SLACK_PATH_SECRET}", "the Slack URL is the Secret's, path and all"
    assert message.json["text"].startswith("shop/shop: green promoted, commit " + V1[:12])
    assert {f["title"] for f in message.json["attachments"][0]["fields"]} >= {"Release", "Commit", "Author",
                                                                              "Duration"}
    assert cluster.events == []
    latency = [(first[0].at - started) * 1000, (first[1].at - started) * 1000, (signed.at - promoted) * 1000,
               (message.at - promoted) * 1000]
    print(f"notify delivery latency after the status write (loopback): webhook {latency[0]:.1f} / "
          f"{latency[2]:.1f} ms, slack {latency[1]:.1f} / {latency[3]:.1f} ms")
    delivered = [line for line in lines(logs()) if line.get("event") == "notification delivered"]
    assert {(line["target"], line["notify_event"]) for line in delivered} == {
        ("team-hook", "Started"), ("team-hook", "Promoted"), ("team-chat", "Started"), ("team-chat", "Promoted")}
    assert all(line["level"] == "info" and line["attempts"] == 1 and line["ms"] >= 0 for line in delivered)
    assert_no_secret(logs(), hook.url, chat.url)


def assert_no_secret(text: str, *urls: str) -> None:
    assert text, "something was logged"
    for secret in (HMAC_KEY.decode(), SLACK_PATH_SECRET, *urls, "127.0.0.1:"):
        assert secret not in text, f"{secret!r} is in the log output"


def test_a_receiver_failing_twice_then_answering_is_retried(notifier: Make, receivers: Make,
                                                           logs: Logs) -> None:
    hook = receivers(secret=HMAC_KEY, script=[(500, {}), (502, {})])
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    sender = notifier(cluster)
    write(sender, spec_with(webhook("flaky", hook.url, events=["Promoted"])))
    got = hook.wait_for(3)
    time.sleep(0.3)
    sender.close()
    assert len(hook.received) == 3, "delivered on the third attempt, not sent again"
    assert len({r.json["id"] for r in got}) == 1, "every attempt carries the notification's id"
    assert all(r.verified for r in got), "each attempt is signed (its timestamp may differ)"
    assert cluster.events == []
    said = lines(logs())
    retries = [line for line in said if line.get("event") == "notification attempt failed; retrying"]
    assert [(line["attempt"], line["error"]) for line in retries] == [(1, "HTTP 500"), (2, "HTTP 502")]
    assert all(0.025 <= line["retry_in"] <= 0.1 for line in retries), retries
    [done] = [line for line in said if line.get("event") == "notification delivered"]
    assert (done["attempts"], done["status"]) == (3, 200)
    assert cluster.reads == 3, "the Secret is read for each attempt (a rotated key applies at once)"


def test_a_receiver_that_always_fails_is_given_up_with_a_warning_and_an_event(
        notifier: Make, receivers: Make, logs: Logs) -> None:
    hook, chat = receivers(status=500), receivers(status=503)
    slack_url = f"{chat.url}/{SLACK_PATH_SECRET}"
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}, "slack": {"url": slack_url.encode()}})
    sender = notifier(cluster, policy=DeliveryPolicy(attempts=3, timeout_seconds=2, backoff_first=0.02,
                                                     backoff_max=0.05))
    write(sender, spec_with(webhook("always-down", hook.url), slack("chat-down")))
    hook.wait_for(3)
    chat.wait_for(3)
    wait(lambda: len(cluster.events) == 2, "two NotificationFailed Events")
    time.sleep(0.3)
    sender.close()
    assert (len(hook.received), len(chat.received)) == (3, 3), "exactly the attempts allowed"
    messages = sorted(message for _, _, message in cluster.events)
    assert {(kind, reason) for kind, reason, _ in cluster.events} == {("Warning", "NotificationFailed")}
    assert messages == [
        f"Promoted notification of commit {V1[:12]} to target 'always-down' failed after 3 attempts: HTTP 500",
        f"Promoted notification of commit {V1[:12]} to target 'chat-down' failed after 3 attempts: HTTP 503"]
    warnings = [line for line in lines(logs()) if line["level"] == "warning"]
    assert {line["target"] for line in warnings} == {"always-down", "chat-down"}
    assert all(line["reason"] == "NotificationFailed" for line in warnings)
    assert_no_secret(logs() + "\n".join(messages), hook.url, slack_url)


def test_a_hanging_receiver_times_out_and_delays_no_other_target(notifier: Make, receivers: Make,
                                                                 logs: Logs) -> None:
    """Three releases notify a receiver that hangs and one that answers: the hanging destination gets at most half
    the senders (here one of two), so every delivery to the other one arrives before the first timeout."""
    hang, hook = receivers(HangingReceiver), receivers(secret=HMAC_KEY)
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    timeout = 1.5
    sender = notifier(cluster, policy=DeliveryPolicy(attempts=2, timeout_seconds=timeout, backoff_first=0.05,
                                                     backoff_max=0.05), workers=2)
    spec = spec_with(webhook("hangs", hang.url), webhook("fine", hook.url))
    others = [ReleaseRef("shop", f"other-{i}", f"u-other-{i}") for i in range(2)]
    began = write(sender, spec, outcome="InProgress", before=None)
    write(sender, spec)
    for other in others:  # more releases, the same two receivers: more hanging lanes, more answering deliveries
        write(sender, spec, release=other)
    got = hook.wait_for(2 + len(others), timeout=timeout * 0.9)
    fine_done = max(r.at for r in got) - began
    assert hook.events()[:2] == ["Started", "Promoted"]
    assert len(hang.accepted) == 1, "one sender is held by the hanging receiver meanwhile"
    assert not hang.closed, "and its attempt has not timed out yet"
    notes = 2 + len(others)
    wait(lambda: sum(reason == "NotificationFailed" for _, reason, _ in cluster.events) == notes,
         "the hanging target given up for every notification", timeout=2 * notes * timeout + 5)
    gave_up = [m for _, _, m in cluster.events]
    assert all("'hangs'" in m and m.endswith(f"failed after 2 attempts: no answer within {timeout:g}s")
               for m in gave_up), gave_up
    assert len(hang.accepted) == 2 * notes, "every attempt connected, one at a time"
    wait(lambda: len(hang.closed) == len(hang.accepted), "the operator closed every connection it gave up on")
    print(f"notify hanging receiver: {len(got)} deliveries to the answering receiver done {fine_done * 1000:.0f} ms "
          f"after the first write, while the hanging one held its first connection ({timeout:g}s timeout, 2 senders)")
    assert_no_secret(logs(), hang.url, hook.url)


def test_a_429_waits_for_its_retry_after(notifier: Make, receivers: Make, logs: Logs) -> None:
    hook = receivers(secret=HMAC_KEY, script=[(429, {"Retry-After": "1"})])
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    sender = notifier(cluster)
    write(sender, spec_with(webhook("limited", hook.url)))
    first, second = hook.wait_for(2, timeout=10)
    sender.close()
    gap = second.at - first.at
    assert 0.9 <= gap < 3.0, f"Retry-After: 1 respected (the backoff alone would be < 0.2 s): {gap:.2f}s"
    [retry] = [line for line in lines(logs()) if line.get("event") == "notification attempt failed; retrying"]
    assert (retry["error"], retry["retry_in"]) == ("HTTP 429", 1.0)
    assert cluster.events == []


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_other_answers_are_final(notifier: Make, receivers: Make, logs: Logs, status: int) -> None:
    hook = receivers(status=status)
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    sender = notifier(cluster)
    write(sender, spec_with(webhook("says-no", hook.url)))
    wait(lambda: len(cluster.events) == 1, "a NotificationFailed Event")
    time.sleep(0.3)
    sender.close()
    assert len(hook.received) == 1
    assert cluster.events[0][2].endswith(f"after 1 attempt: HTTP {status}")


@pytest.mark.parametrize(("secrets", "target", "problem"), [
    pytest.param({"hmac": {"secret": HMAC_KEY}}, "denied", "its host resolves to an address the operator may not "
                 "call (--check-deny-networks (env BLUEGREEN_CHECK_DENY_NETWORKS))", id="denied-network"),
    pytest.param({}, "webhook", "Secret 'hmac' not found", id="no-secret"),
    pytest.param({"hmac": {"other": b"x"}}, "webhook", "Secret 'hmac' has no (or an empty) key 'secret'",
                 id="no-key"),
    pytest.param({"hmac": {"secret": b" \n"}}, "webhook", "Secret 'hmac' has no (or an empty) key 'secret'",
                 id="empty-key"),
    pytest.param({"slack": {"url": b"ftp://hooks.example.com/" + SLACK_PATH_SECRET.encode()}}, "slack",
                 "Secret 'slack' key 'url': not an http:// or https:// URL with a host", id="slack-not-http"),
    pytest.param({"slack": {"url": b"https:///" + SLACK_PATH_SECRET.encode()}}, "slack",
                 "Secret 'slack' key 'url': not an http:// or https:// URL with a host", id="slack-no-host"),
])
def test_refused_deliveries_are_not_tried_again(notifier: Make, receivers: Make, logs: Logs,
                                               secrets: dict[str, dict[str, bytes]], target: str,
                                               problem: str) -> None:
    hook = receivers()
    cluster = SecretsAndEvents(secrets)
    sender = notifier(cluster, deny="127.0.0.0/8" if target == "denied" else "169.254.0.0/16")
    chosen = slack("t") if target == "slack" else webhook("t", hook.url)
    write(sender, spec_with(chosen))
    wait(lambda: len(cluster.events) == 1, "a NotificationFailed Event")
    time.sleep(0.2)
    sender.close()
    assert hook.received == [], "nothing was sent"
    assert cluster.events == [("Warning", "NotificationFailed",
                               f"Promoted notification of commit {V1[:12]} to target 't' failed after 1 attempt: "
                               f"{problem}")]
    assert_no_secret(logs(), hook.url)


def test_a_bad_port_fails_its_own_target_only(notifier: Make, receivers: Make, logs: Logs) -> None:
    hook = receivers(secret=HMAC_KEY)
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    sender = notifier(cluster)
    write(sender, spec_with(webhook("bad-port", "http://127.0.0.1:http/x"), webhook("fine", hook.url)))
    hook.wait_for(1)
    wait(lambda: len(cluster.events) == 1, "a NotificationFailed Event")
    assert cluster.events[0][2].endswith("to target 'bad-port' failed after 1 attempt: the URL's port is not a number")


def test_status_written_never_blocks_and_a_full_queue_drops_the_oldest(notifier: Make, receivers: Make,
                                                                        logs: Logs) -> None:
    hang = receivers(HangingReceiver)
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    sender = notifier(cluster, policy=DeliveryPolicy(attempts=1, timeout_seconds=30), workers=1, capacity=5)
    spec = spec_with(webhook("hangs", hang.url))
    began = time.monotonic()
    for index in range(20):
        write(sender, spec, release=ReleaseRef("shop", f"r{index}", f"u{index}"))
    took = time.monotonic() - began
    wait(lambda: len(hang.accepted) == 1, "the one sender stuck on the hanging receiver")
    assert len(sender.lanes) <= 6, "at most the capacity, plus the one under way"
    dropped = [line for line in lines(logs()) if "queue full" in line.get("event", "")]
    assert len(dropped) >= 14 and all(line["level"] == "warning" for line in dropped)
    assert {line["release"] for line in dropped} <= {f"r{i}" for i in range(15)}, "the oldest are dropped"
    print(f"notify: 20 status writes queued in {took * 1000:.1f} ms with the only sender hanging")


def test_a_note_written_twice_is_queued_once(notifier: Make, receivers: Make) -> None:
    hook = receivers(secret=HMAC_KEY)
    cluster = SecretsAndEvents({"hmac": {"secret": HMAC_KEY}})
    sender = notifier(cluster)
    spec = spec_with(webhook("once", hook.url))
    write(sender, spec)
    write(sender, spec)  # the same status change handed over again (a stale status the pass started from)
    hook.wait_for(1)
    time.sleep(0.3)
    sender.close()
    assert hook.events() == ["Promoted"]


def test_no_targets_no_work() -> None:
    cluster = SecretsAndEvents({})
    sender = Notifier(cluster)
    sender.status_written(RELEASE, ReleaseSpec.from_dict(BASE_SPEC), {}, {"history": [entry("InProgress")]})
    assert len(sender.lanes) == 0 and cluster.reads == 0


def wait(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
