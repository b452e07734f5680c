"""The leader-election rules (core.leases): who may claim the Lease, when it expires, when a holder must stop."""

from __future__ import annotations

import pytest

from bluegreen.core.leases import LeaseRecord, LeaseSettings, Observation, claim, release, still_leading

SETTINGS = LeaseSettings("ops", "lease", 15.0, 10.0, 2.0)
STAMP = "2026-12-01T10:00:00.000000Z"
LATER = "2026-12-01T10:00:05.000000Z"
HELD_BY_A = LeaseRecord("a", 15, STAMP, STAMP, 3)


def test_defaults_are_client_go_s() -> None:
    settings = LeaseSettings("ops")
    assert (settings.name, settings.lease_duration, settings.renew_deadline, settings.retry_period) == \
        ("bluegreen-operator", 15.0, 10.0, 2.0)


@pytest.mark.parametrize(("durations", "problem"), [
    (("10s", "10s", "2s"), "the lease duration (10s) must be longer than the renew deadline (10s)"),
    (("15s", "20s", "2s"), "the lease duration (15s) must be longer than the renew deadline (20s)"),
    (("15s", "2.4s", "2s"), "the renew deadline (2.4s) must be longer than 1.2 x the retry period (2s)"),
    (("15s", "10s", "0s"), "must be positive"),
])
def test_unsafe_timing_is_refused(durations: tuple[str, str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        LeaseSettings.parse("ops", "lease", *durations)


def test_parse_reads_durations() -> None:
    assert LeaseSettings.parse("ops", "x", "6s", "4s", "1s") == LeaseSettings("ops", "x", 6.0, 4.0, 1.0)
    assert LeaseSettings.parse("ops", "x", "1m", "30s", "500ms").retry_period == 0.5
    with pytest.raises(ValueError, match="invalid duration"):
        LeaseSettings.parse("ops", "x", "15", "10s", "2s")
    with pytest.raises(ValueError, match="namespace and a name"):
        LeaseSettings("", "x")


def test_renew_deadline_just_above_jitter_is_accepted() -> None:
    assert LeaseSettings("ops", "x", 15.0, 2.41, 2.0).renew_deadline == 2.41


def test_no_lease_is_created_for_me() -> None:
    assert claim(Observation(None, 0.0), "me", 100.0, STAMP, SETTINGS) == LeaseRecord("me", 15, STAMP, STAMP, 0)


def test_a_live_holder_keeps_it() -> None:
    seen = Observation(HELD_BY_A, 100.0)
    assert claim(seen, "b", 100.0, LATER, SETTINGS) is None
    assert claim(seen, "b", 114.9, LATER, SETTINGS) is None


def test_expiry_counts_from_when_the_candidate_saw_the_change() -> None:
    seen = Observation(HELD_BY_A, 100.0)
    assert not seen.expired(114.99)
    assert seen.expired(115.0)
    taken = claim(seen, "b", 115.0, LATER, SETTINGS)
    assert taken == LeaseRecord("b", 15, LATER, LATER, 4)


def test_the_record_s_own_duration_decides_expiry() -> None:
    short = LeaseRecord("a", 5, STAMP, STAMP, 0)
    assert Observation(short, 100.0).expired(105.0)
    assert not Observation(short, 100.0).expired(104.9)


def test_a_renewal_restarts_the_clock_and_an_unchanged_record_does_not() -> None:
    seen = Observation(HELD_BY_A, 100.0)
    assert seen.seen(HELD_BY_A, 110.0) is seen
    renewed = LeaseRecord("a", 15, STAMP, LATER, 3)
    again = seen.seen(renewed, 110.0)
    assert again.changed_at == 110.0 and again.record == renewed
    assert not again.expired(124.0)
    assert Observation(None, 5.0).seen(None, 9.0).changed_at == 5.0


def test_a_released_lease_is_taken_at_once() -> None:
    released = LeaseRecord("", 1, STAMP, LATER, 3)
    seen = Observation(released, 100.0)
    assert seen.expired(100.0)
    assert claim(seen, "b", 100.0, LATER, SETTINGS) == LeaseRecord("b", 15, LATER, LATER, 4)


def test_the_holder_renews_keeping_its_acquire_time_and_transitions() -> None:
    mine = LeaseRecord("me", 7, STAMP, STAMP, 2)
    renewed = claim(Observation(mine, 0.0), "me", 1000.0, LATER, SETTINGS)
    assert renewed == LeaseRecord("me", 15, STAMP, LATER, 2)
    assert claim(Observation(LeaseRecord("me", 15, None, None, 0), 0.0), "me", 1.0, LATER, SETTINGS) == \
        LeaseRecord("me", 15, LATER, LATER, 0)


def test_duration_is_whole_seconds_at_least_one() -> None:
    settings = LeaseSettings("ops", "x", 1.4, 1.3, 1.0)
    assert claim(Observation(None, 0.0), "me", 0.0, STAMP, settings) == LeaseRecord("me", 1, STAMP, STAMP, 0)
    settings = LeaseSettings("ops", "x", 6.6, 4.0, 1.0)
    assert claim(Observation(None, 0.0), "me", 0.0, STAMP, settings).duration_seconds == 7  # type: ignore[union-attr]


def test_release_only_by_the_holder() -> None:
    mine = LeaseRecord("me", 15, STAMP, STAMP, 2)
    assert release(mine, "me", LATER) == LeaseRecord("", 1, STAMP, LATER, 2)
    assert release(mine, "other", LATER) is None
    assert LeaseRecord("", 1).released and not mine.released


@pytest.mark.parametrize(("renewed", "now", "leading"), [
    (None, 0.0, False),
    (100.0, 100.0, True),
    (100.0, 109.99, True),
    (100.0, 110.0, False),
    (100.0, 200.0, False),
])
def test_a_holder_acts_only_within_the_renew_deadline(renewed: float | None, now: float, leading: bool) -> None:
    assert still_leading(renewed, now, SETTINGS) is leading
