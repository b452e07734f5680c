"""The delivery retry policy (which answers retry, backoff bounds, Retry-After), the per-target lanes of the
notification queue, and the shared deny-networks rules (``core.networks``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from bluegreen.core.delivery_policy import DeliveryPolicy, delivered, parse_retry_after, retryable
from bluegreen.core.networks import DEFAULT_DENY_NETWORKS, denied, parse_networks
from bluegreen.notify.lanes import Lanes

NOW = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "retry"), [
    (None, True), (429, True), (500, True), (502, True), (503, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (408, False), (410, False), (422, False),
    (301, False), (304, False), (200, False), (204, False), (600, False), (499, False),
])
def test_which_answers_are_retried(status: int | None, retry: bool) -> None:
    assert retryable(status) is retry
    assert (DeliveryPolicy().next_delay(1, status, 0.5) is not None) is retry


@pytest.mark.parametrize(("status", "ok"), [(200, True), (201, True), (204, True), (299, True), (199, False),
                                            (300, False), (404, False), (500, False)])
def test_delivered_means_2xx(status: int, ok: bool) -> None:
    assert delivered(status) is ok


def test_attempts_are_bounded() -> None:
    policy = DeliveryPolicy(attempts=4)
    assert [policy.next_delay(n, 500, 0.0) is not None for n in (1, 2, 3, 4, 5)] == [True, True, True, False, False]
    assert DeliveryPolicy(attempts=1).next_delay(1, None, 0.0) is None


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (4, 4.0, 8.0),
                                                      (6, 15.0, 30.0), (20, 15.0, 30.0)])
def test_backoff_doubles_with_jitter_in_its_upper_half_and_is_capped(attempt: int, low: float, high: float) -> None:
    policy = DeliveryPolicy(attempts=50, backoff_first=1.0, backoff_max=30.0)
    assert policy.backoff(attempt, 0.0) == low
    assert policy.backoff(attempt, 0.999999) == pytest.approx(high, rel=1e-5)
    assert low < policy.next_delay(attempt, 503, 0.5) < high  # type: ignore[operator]


def test_retry_after_replaces_the_backoff_up_to_its_cap() -> None:
    policy = DeliveryPolicy(retry_after_max=60.0)
    assert policy.next_delay(1, 429, 0.5, retry_after=7.0) == 7.0
    assert policy.next_delay(1, 429, 0.5, retry_after=3600.0) == 60.0
    assert policy.next_delay(1, 503, 0.5, retry_after=-5.0) == 0.0
    assert policy.next_delay(1, 404, 0.5, retry_after=1.0) is None, "a final answer is final, Retry-After or not"
    assert policy.next_delay(4, 429, 0.5, retry_after=1.0) is None, "and so is the last attempt"


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), (" 3 ", 3.0), ("0", 0.0), ("Thu, 01 Jan 2026 10:00:30 GMT", 30.0),
    ("Thu, 01 Jan 2026 09:59:00 GMT", 0.0), (None, None), ("", None), ("soon", None), ("-1", None), ("1.5", None),
])
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


# ---- the lanes --------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_lane_is_worked_in_order_by_one_sender_at_a_time() -> None:
    lanes: Lanes[str] = Lanes(10, Clock())
    lanes.put("a", "a1")
    lanes.put("a", "a2")
    lanes.put("b", "b1")
    assert lanes.take(0) == ("a", "a1")
    assert lanes.take(0) == ("b", "b1"), "a's next waits until a1 is done"
    assert lanes.take(0) is None
    lanes.done("a")
    assert lanes.take(0) == ("a", "a2")
    lanes.done("a")
    lanes.done("b")
    assert len(lanes) == 0 and lanes.take(0) is None


def test_a_retry_waits_its_delay_while_other_lanes_go_on() -> None:
    clock = Clock()
    lanes: Lanes[str] = Lanes(10, clock)
    lanes.put("slow", "s1")
    lanes.put("slow", "s2")
    assert lanes.take(0) == ("slow", "s1")
    lanes.done("slow", retry_in=5.0)
    lanes.put("fast", "f1")
    assert lanes.take(0) == ("fast", "f1")
    assert lanes.take(0) is None, "s1 is not due yet and s2 stays behind it"
    clock.now += 5.0
    assert lanes.take(0) == ("slow", "s1"), "the same item, retried"
    lanes.done("slow")
    assert lanes.take(0) == ("slow", "s2")


def test_a_full_queue_drops_its_oldest_idle_item() -> None:
    lanes: Lanes[str] = Lanes(3, Clock())
    assert lanes.put("a", "a1") is None
    assert lanes.take(0) == ("a", "a1")  # busy: never dropped under a sender
    assert lanes.put("a", "a2") is None
    assert lanes.put("b", "b1") is None
    assert lanes.put("b", "b2") == "a2", "the oldest item no sender works on"
    assert lanes.put("c", "c1") == "b1"
    assert len(lanes) == 3
    lanes.done("a")
    assert [lanes.take(0), lanes.take(0)] == [("b", "b2"), ("c", "c1")]


def test_dropping_a_waiting_head_makes_its_successor_due_now() -> None:
    clock = Clock()
    lanes: Lanes[str] = Lanes(3, clock)
    lanes.put("a", "a1")
    lanes.put("a", "a2")
    assert lanes.take(0) == ("a", "a1")
    lanes.done("a", retry_in=60.0)
    lanes.put("b", "b1")
    assert lanes.put("b", "b2") == "a1"
    assert lanes.take(0) == ("a", "a2"), "a2 need not wait for a1's retry"


def test_a_group_is_worked_by_at_most_its_limit_of_senders() -> None:
    lanes: Lanes[str] = Lanes(10, Clock(), group_limit=2)
    for lane in ("r1", "r2", "r3"):
        lanes.put(lane, f"{lane}-slow", group="slow.example:443")
    lanes.put("r1-other", "fast", group="fast.example:443")
    taken = [lanes.take(0), lanes.take(0), lanes.take(0)]
    assert taken == [("r1", "r1-slow"), ("r2", "r2-slow"), ("r1-other", "fast")], "r3 waits for a slot of its group"
    assert lanes.take(0) is None
    lanes.done("r1-other")
    assert lanes.take(0) is None, "another group's slot does not help"
    lanes.done("r2", retry_in=30.0)
    assert lanes.take(0) == ("r3", "r3-slow")


def test_a_lane_keeps_the_group_it_was_taken_in() -> None:
    lanes: Lanes[str] = Lanes(10, Clock(), group_limit=1)
    lanes.put("r1", "a", group="old")
    assert lanes.take(0) == ("r1", "a")
    lanes.put("r1", "b", group="new")  # the spec changed the target's URL meanwhile
    lanes.put("r2", "c", group="old")
    assert lanes.take(0) is None, "'old' is still worked on"
    lanes.done("r1")
    assert {lanes.take(0), lanes.take(0)} == {("r1", "b"), ("r2", "c")}, "both groups free now"


def test_close_wakes_a_waiting_sender() -> None:
    lanes: Lanes[str] = Lanes(3)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(lanes.take()))
    thread.start()
    lanes.close()
    thread.join(5)
    assert got == [None] and not thread.is_alive()


def test_a_put_wakes_a_waiting_sender() -> None:
    lanes: Lanes[str] = Lanes(3)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(lanes.take(10)))
    thread.start()
    lanes.put("a", "a1")
    thread.join(5)
    assert got == [("a", "a1")]


# ---- deny networks -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("address", "refused"), [
    ("169.254.169.254", True), ("fe80::1", True), ("fe80::1%eth0", True), ("::ffff:169.254.169.254", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("::1", False), ("169.255.0.1", False),
])
def test_the_default_deny_networks(address: str, refused: bool) -> None:
    assert denied(address, parse_networks(DEFAULT_DENY_NETWORKS)) is refused


def test_networks_parse() -> None:
    assert parse_networks("") == () and parse_networks(" , ") == ()
    assert [str(n) for n in parse_networks("10.1.2.3/8, 127.0.0.1")] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert denied("10.9.9.9", parse_networks("10.1.2.3/8"))
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/8,nope")
