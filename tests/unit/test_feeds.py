"""The fetch scheduler's rules (``runtime.feeds.FeedBook``), pure: which feed is due when, against which remote
contact, in which lane, and which releases hear of a finished run. No threads, no git: a fake clock (the
``now`` arguments) and a fixed "random" draw."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bluegreen.core.commits import CommitInfo
from bluegreen.core.desired import DesiredTemplate
from bluegreen.core.errors import Outcome
from bluegreen.core.spec import GitRef
from bluegreen.runtime.feeds import (
    VERDICTS_KEPT,
    FeedBook,
    Lane,
    RunOutcome,
    SourceResult,
    Subscription,
    Work,
    feed_key,
)

URL = "https://git.example.com/team/deploy.git"
MAIN = GitRef("branch", "main")


def sub(name: str = "a", namespace: str = "ns", url: str = URL, interval: float = 30.0,
        **extra: object) -> Subscription:
    return Subscription((namespace, name), url, extra.pop("ref", MAIN), str(extra.pop("path", "d.yaml")),
                        interval=interval, **extra)  # type: ignore[arg-type]


def ok(sha: str = "a" * 40) -> SourceResult:
    commit = CommitInfo(sha, "release", "Dev <dev@example.com>", datetime(2024, 5, 1, tzinfo=UTC))
    template = DesiredTemplate({"template": {"spec": {"image": sha}}}, 1, f"hash-{sha[:7]}")
    return SourceResult(Outcome(True, "Fetched", f"commit {sha[:7]}", sha), commit, template)


def book(**kwargs: object) -> FeedBook:
    draw = kwargs.pop("draw", 0.0)
    return FeedBook(random=lambda: draw, **kwargs)  # type: ignore[arg-type]


def finish(b: FeedBook, work: Work, now: float, results: dict[tuple[str, str], SourceResult] | None = None,
           refreshed_at: float | None = None) -> set[tuple[str, str]]:
    """Complete ``work`` with ``results`` (default: ``ok()`` for everyone)."""
    outcome = RunOutcome(results if results is not None else {s.release: ok() for s in work.subscriptions},
                         refreshed_at)
    return b.complete(work, outcome, now)


def first_run(b: FeedBook, *subs: Subscription, now: float = 100.0) -> Work:
    for s in subs:
        b.subscribe(s)
    [work] = b.take(now)
    finish(b, work, now + 0.1, refreshed_at=now)
    return work


def settled(b: FeedBook, *subs: Subscription, now: float) -> None:
    """Every subscription checked once at ``now`` (so the next checks are timed ones)."""
    for s in subs:
        b.subscribe(s)
    for work in b.take(now, unlimited=True):
        finish(b, work, now, refreshed_at=now)


# ---- feeds: one per repository and credentials Secret -------------------------------------------------
@pytest.mark.parametrize(("a", "b", "shared"), [
    pytest.param(sub("a"), sub("b", namespace="other"), True, id="no-secret-any-namespace"),
    pytest.param(sub("a"), sub("b", url="https://GIT.example.com/team/deploy.git/"), True, id="same-mirror-key"),
    pytest.param(sub("a"), sub("b", ref=GitRef("tag", "v1"), path="x.yaml"), True, id="other-ref-and-path"),
    pytest.param(sub("a", secret="git"), sub("b", secret="git"), True, id="same-secret"),
    pytest.param(sub("a", secret="git"), sub("b", secret="other"), False, id="other-secret"),
    pytest.param(sub("a", secret="git"), sub("b", namespace="other", secret="git"), False, id="secret-namespace"),
    pytest.param(sub("a"), sub("b", secret="git"), False, id="with-and-without"),
    pytest.param(sub("a"), sub("b", url="ssh://git@git.example.com/team/deploy.git"), False, id="other-transport"),
    pytest.param(sub("a"), sub("b", url="https://git.example.com/team/other.git"), False, id="other-repository"),
])
def test_feeds_are_one_per_repository_and_credentials_secret(a: Subscription, b: Subscription, shared: bool) -> None:
    assert (feed_key(a) == feed_key(b)) is shared


def test_many_releases_of_one_repository_cost_one_run() -> None:
    b = book()
    for n in range(200):
        b.subscribe(sub(f"r{n}"))
    works = b.take(100.0)
    assert len(works) == 1 and len(works[0].subscriptions) == 200
    assert b.take(100.0) == [], "one run per feed at a time"


# ---- when a feed is due -----------------------------------------------------------------------------
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_timed_checks_come_once_per_interval_plus_at_most_the_jitter(draw: float) -> None:
    b = book(draw=draw, jitter=0.1)
    first_run(b, sub(interval=30.0), now=100.0)
    due = 100.0 + 30.0 * (1 + 0.1 * draw)
    assert b.take(due - 0.01) == []
    assert b.wake_at(100.2) == pytest.approx(due)
    [work] = b.take(due)
    assert work.not_before == pytest.approx(due - 15.0), "a contact of the last half interval will do"
    assert 130.0 <= due < 133.0


def test_the_jitter_is_drawn_anew_after_every_run() -> None:
    draws = iter([0.0, 0.5, 1.0])
    b = FeedBook(jitter=0.1, random=lambda: next(draws))
    first_run(b, sub(interval=10.0), now=0.0)  # subscribe drew 0.0, the completion 0.5
    assert b.take(10.4) == [] and len(b.take(10.5)) == 1


def test_the_shortest_interval_of_a_feed_decides() -> None:
    b = book()
    first_run(b, sub("slow", interval=60.0), sub("fast", interval=10.0), now=100.0)
    assert b.take(109.9) == [] and len(b.take(110.0)) == 1


def test_the_timer_starts_from_the_mirrors_last_contact() -> None:
    b = book()
    b.subscribe(sub())
    [work] = b.take(100.0)
    finish(b, work, 100.5, refreshed_at=95.0)  # the run reused a contact made by a feed sharing the mirror
    assert b.take(124.9) == [] and len(b.take(125.0)) == 1


def test_a_failed_run_times_from_its_start() -> None:
    b = book()
    b.subscribe(sub())
    [work] = b.take(100.0)
    finish(b, work, 100.5, {("ns", "a"): SourceResult(Outcome(False, "RepositoryUnreachable", "timed out"))})
    assert b.take(129.9) == [] and len(b.take(130.0)) == 1


def test_a_joining_release_is_checked_at_once_against_the_last_contact() -> None:
    b = book()
    first_run(b, sub("a"), now=100.0)
    b.subscribe(sub("b"))
    [work] = b.take(105.0)
    assert work.not_before == 100.0, "no remote contact just because a release joined"
    assert {s.release for s in work.subscriptions} == {("ns", "a"), ("ns", "b")}
    assert finish(b, work, 105.1, refreshed_at=100.0) == {("ns", "b")}, "the joiner hears of its first result"


def test_a_new_feed_contacts_the_remote() -> None:
    b = book()
    b.subscribe(sub())
    [work] = b.take(100.0)
    assert work.not_before == 100.0


# ---- forced checks and coalescing -------------------------------------------------------------------
def test_a_forced_check_runs_at_once_no_older_than_the_request() -> None:
    b = book()
    first_run(b, sub("a"), sub("b"), now=100.0)
    assert b.request(("ns", "a"), 103.0)
    [work] = b.take(103.2)
    assert work.not_before == 103.0
    assert finish(b, work, 103.3, refreshed_at=103.2) == {("ns", "a")}, "the one that asked hears back, unchanged"
    assert b.take(103.4) == [] and b.take(130.0) == [], "the timer restarts from the forced contact"
    assert b.take(133.2) != []


def test_requests_during_a_run_coalesce_into_one_more_run() -> None:
    b = book()
    first_run(b, sub("a"), sub("b"), now=100.0)
    b.request(("ns", "a"), 110.0)
    [work] = b.take(110.0)
    for n in range(10):
        b.request(("ns", "b"), 110.1 + n / 100)
    assert b.take(110.2) == [], "never two runs of one feed"
    assert finish(b, work, 110.5, refreshed_at=110.0) == {("ns", "a")}, "b asked after the run began"
    [again] = b.take(110.5)
    assert again.not_before == pytest.approx(110.19), "the latest request decides"
    assert finish(b, again, 110.6, refreshed_at=110.5) == {("ns", "b")}
    assert b.take(110.7) == []


def test_a_request_for_an_unknown_release_is_ignored() -> None:
    b = book()
    assert not b.request(("ns", "ghost"), 1.0)
    assert b.take(1.0) == []


def test_forced_checks_go_first() -> None:
    b = book(workers=1, max_threads=2)
    a, forced = sub("a", url="https://h/a"), sub("b", url="https://h/b")
    settled(b, a, forced, now=100.0)
    b.request(forced.release, 130.0)
    [work] = b.take(130.0)  # both due, one fresh place: the forced one starts, the timed one waits
    assert work.feed == feed_key(forced) and work.lane is Lane.FAST


# ---- what a finished run tells ----------------------------------------------------------------------
def test_only_releases_whose_result_changed_are_notified() -> None:
    b = book()
    first_run(b, sub("a"), sub("b", path="other.yaml"), now=100.0)
    [work] = b.take(130.0)
    new = {("ns", "a"): ok("b" * 40), ("ns", "b"): ok()}
    assert finish(b, work, 130.1, new, refreshed_at=130.0) == {("ns", "a")}
    assert b.result(("ns", "a")) == ok("b" * 40)


@pytest.mark.parametrize(("before", "after", "told"), [
    pytest.param(ok(), ok(), False, id="unchanged"),
    pytest.param(ok(), SourceResult(ok().source, ok().commit, ok().template, checked_at=9.0), False, id="later"),
    pytest.param(ok(), ok("b" * 40), True, id="new-commit"),
    pytest.param(ok(), SourceResult(ok().source, ok().commit, ok().template, Outcome(True, "Signed", "by a")), True,
                 id="verdict"),
    pytest.param(ok(), SourceResult(ok().source, ok().commit, checked_at=9.0), True, id="template-gone"),
    pytest.param(ok(), SourceResult(Outcome(False, "RepositoryUnreachable", "timed out")), True, id="new-error"),
    pytest.param(SourceResult(Outcome(False, "RepositoryUnreachable", "timed out")), ok(), True, id="recovery"),
    pytest.param(SourceResult(Outcome(False, "RepositoryUnreachable", "timed out"), checked_at=1.0),
                 SourceResult(Outcome(False, "RepositoryUnreachable", "timed out"), checked_at=2.0), False,
                 id="same-error-later"),
    pytest.param(SourceResult(Outcome(False, "RefNotFound", "no main")),
                 SourceResult(Outcome(False, "RefNotFound", "no main either")), True, id="other-message"),
])
def test_change_detection(before: SourceResult, after: SourceResult, told: bool) -> None:
    b = book()
    b.subscribe(sub())
    [work] = b.take(100.0)
    finish(b, work, 100.1, {("ns", "a"): before})
    [work] = b.take(200.0)
    assert finish(b, work, 200.1, {("ns", "a"): after}) == ({("ns", "a")} if told else set())
    assert b.result(("ns", "a")) == after


def test_a_subscription_changed_during_its_run_takes_no_stale_result() -> None:
    b = book()
    b.subscribe(sub("a"))
    [work] = b.take(100.0)
    b.subscribe(sub("a", path="new.yaml"))
    assert finish(b, work, 100.1) == set()
    assert b.result(("ns", "a")) is None
    [again] = b.take(100.1)
    assert again.subscriptions == (sub("a", path="new.yaml"),)


def test_a_run_finishing_after_everyone_left_changes_nothing() -> None:
    b = book()
    b.subscribe(sub())
    [work] = b.take(100.0)
    b.unsubscribe(("ns", "a"))
    assert b.feeds == {}
    assert finish(b, work, 100.1) == set() and b.results == {}


# ---- subscriptions ----------------------------------------------------------------------------------
def test_an_interval_change_keeps_the_result_a_source_change_drops_it() -> None:
    b = book()
    first_run(b, sub(), now=100.0)
    assert not b.subscribe(sub()), "the same subscription again changes nothing"
    assert b.subscribe(sub(interval=10.0))
    assert b.result(("ns", "a")) == ok() and b.take(105.0) == []
    assert len(b.take(110.0)) == 1


def test_moving_to_another_repository_leaves_the_old_feed() -> None:
    b = book()
    first_run(b, sub(), now=100.0)
    b.subscribe(sub(url="https://git.example.com/team/other.git"))
    assert list(b.feeds) == [feed_key(sub(url="https://git.example.com/team/other.git"))]
    assert b.result(("ns", "a")) is None


def test_unsubscribing_forgets_the_result_and_the_requests() -> None:
    b = book()
    first_run(b, sub("a"), sub("b"), now=100.0)
    b.request(("ns", "a"), 101.0)
    b.unsubscribe(("ns", "a"))
    assert b.result(("ns", "a")) is None and b.due_at(("ns", "a")) is None
    assert b.take(101.0) == [], "the request left with its release"


# ---- lanes ------------------------------------------------------------------------------------------
def urls(count: int) -> list[Subscription]:
    return [sub(f"r{n}", url=f"https://h/{n}.git") for n in range(count)]


def test_at_most_workers_fresh_runs_then_a_stuck_one_frees_its_place() -> None:
    b = book(workers=2, max_threads=10, stuck_after=2.0)
    settled(b, *urls(2), now=70.0)
    settled(b, *urls(3)[2:], now=71.0)  # due a second later than the others
    assert [w.lane for w in b.take(100.0)] == [Lane.FAST, Lane.FAST]
    assert b.wake_at(100.5) == pytest.approx(101.0), "when the third is due"
    assert b.take(101.9) == []
    assert b.wake_at(101.5) == pytest.approx(102.0), "when the fresh runs turn stuck"
    [work] = b.take(102.0)
    assert work.lane is Lane.FAST


def test_a_feed_whose_last_run_was_slow_runs_in_the_slow_lane() -> None:
    b = book(workers=1, max_threads=4, stuck_after=2.0)
    hanging, healthy = urls(2)
    b.subscribe(hanging)
    [work] = b.take(100.0)
    finish(b, work, 130.0, {hanging.release: SourceResult(Outcome(False, "RepositoryUnreachable", "timed out"))})
    b.subscribe(healthy)
    lanes = {w.feed: w.lane for w in b.take(130.0)}
    assert lanes == {feed_key(hanging): Lane.SLOW, feed_key(healthy): Lane.FAST}, "the slow one takes no fresh place"


def test_a_first_check_does_not_wait_for_a_fresh_place() -> None:
    b = book(workers=1, max_threads=3)
    busy, joining = urls(2)
    b.subscribe(busy)
    b.take(100.0)
    b.subscribe(joining)
    [work] = b.take(100.1)
    assert work.lane is Lane.SLOW and work.feed == feed_key(joining)


def test_a_timed_check_waits_for_a_fresh_place_at_most_stuck_after() -> None:
    b = book(workers=1, max_threads=3, stuck_after=2.0)
    busy, timed = urls(2)
    first_run(b, timed, now=70.0)  # due at 100
    b.subscribe(busy)
    [running] = b.take(101.0)
    assert running.feed == feed_key(busy), "the first check goes before the timed one"
    assert b.take(101.1) == []
    assert b.wake_at(101.1) == pytest.approx(102.0)
    assert b.take(101.9) == []
    [late] = b.take(102.0)
    assert late.feed == feed_key(timed) and late.lane is Lane.SLOW


def test_a_slow_feed_stays_slow_until_a_check_that_contacts_the_remote_is_quick() -> None:
    b = book(workers=1, max_threads=4, stuck_after=2.0)
    hanging = urls(1)[0]
    b.subscribe(hanging)
    [work] = b.take(100.0)
    finish(b, work, 110.0)  # hung for ten seconds
    b.subscribe(sub("joiner", url=hanging.url))
    [join] = b.take(110.0)
    assert not join.contacts and join.lane is Lane.SLOW
    finish(b, join, 110.1)  # answered from the mirror at once
    [timed] = b.take(130.0)
    assert timed.contacts and timed.lane is Lane.SLOW, "still slow"
    finish(b, timed, 130.1)
    [quick] = b.take(160.1)
    assert quick.lane is Lane.FAST, "a quick contact makes it fast again"


def test_a_forced_check_does_not_wait_for_a_fresh_place() -> None:
    b = book(workers=1, max_threads=3)
    busy, forced = urls(2)
    first_run(b, forced, now=90.0)
    b.subscribe(busy)
    [running] = b.take(100.0)
    assert running.feed == feed_key(busy)
    b.request(forced.release, 100.1)
    [work] = b.take(100.1)
    assert work.lane is Lane.SLOW and work.feed == feed_key(forced)


def test_the_slow_lane_has_its_own_budget() -> None:
    b = book(workers=2, max_threads=4, stuck_after=1.0)
    settled(b, *urls(6), now=70.0)
    first = b.take(100.0)
    assert len(first) == 2
    assert len(b.take(101.0)) == 2, "two stuck runs make room in the slow budget for two that waited"
    assert b.take(102.0) == [], "stuck runs fill the slow budget (max_threads - workers): no more starts"
    assert b.take(102.0, unlimited=True) != []


@pytest.mark.parametrize(("workers", "max_threads"), [(0, 4), (4, 4), (5, 4)])
def test_lane_sizes_are_checked(workers: int, max_threads: int) -> None:
    with pytest.raises(ValueError):
        book(workers=workers, max_threads=max_threads)


def test_unlimited_takes_everything_due() -> None:
    b = book(workers=1, max_threads=2)
    for s in urls(5):
        b.subscribe(s)
    assert len(b.take(100.0, unlimited=True)) == 5


def test_nothing_to_wake_for_without_feeds() -> None:
    assert book().wake_at(1.0) is None


def test_a_feed_keeps_its_latest_signature_verdicts_only() -> None:
    b = book()
    b.subscribe(sub())
    [work] = b.take(100.0)
    for n in range(VERDICTS_KEPT + 4):
        work.verdicts[(f"{n:040d}", "keys")] = Outcome(True, "Signed", str(n))
    finish(b, work, 100.1)
    [again] = b.take(200.0)
    kept = [outcome.message for outcome in again.verdicts.values()]
    assert kept == [str(n) for n in range(4, VERDICTS_KEPT + 4)]


def test_the_latest_request_of_any_release_decides() -> None:
    b = book()
    first_run(b, sub("a"), sub("b"), now=100.0)
    b.request(("ns", "b"), 104.0)
    b.request(("ns", "a"), 103.0)
    [work] = b.take(104.5)
    assert work.not_before == 104.0


def test_one_take_starts_no_more_fresh_runs_than_workers() -> None:
    b = book(workers=2, max_threads=10)
    settled(b, *urls(5), now=70.0)
    assert len(b.take(100.0)) == 2


def test_wake_at_names_the_next_due_feed_when_nothing_is_held_back() -> None:
    b = book(workers=1, max_threads=4, stuck_after=2.0)
    later, running = urls(2)
    settled(b, later, now=100.0)  # due at 130
    b.subscribe(running)
    assert len(b.take(100.0)) == 1
    assert b.wake_at(100.5) == pytest.approx(130.0), "no run is held back: the fresh run turning stuck is no news"


def test_wake_at_waits_for_a_lone_run_to_finish() -> None:
    b = book()
    b.subscribe(sub())
    b.take(100.0)
    assert b.wake_at(100.5) is None


def test_wake_at_for_a_check_held_back_from_the_moment_it_is_due() -> None:
    b = book(workers=1, max_threads=4, stuck_after=2.0)
    timed, busy = urls(2)
    settled(b, timed, now=71.0)  # due at 101
    b.subscribe(busy)
    b.take(100.0)
    assert b.take(101.0) == []
    assert b.wake_at(101.0) == pytest.approx(102.0), "when the busy one turns stuck (before the 103 overflow)"


def test_a_run_of_exactly_stuck_after_is_not_slow() -> None:
    b = book(workers=1, max_threads=4, stuck_after=2.0)
    b.subscribe(sub())
    [work] = b.take(100.0)
    finish(b, work, 102.0)
    [timed] = b.take(200.0)
    assert timed.lane is Lane.FAST


def test_a_run_without_a_result_for_someone_leaves_their_result_alone() -> None:
    b = book()
    first_run(b, sub("a"), sub("b"), now=100.0)
    [work] = b.take(130.0)
    assert finish(b, work, 130.1, {("ns", "a"): ok("c" * 40)}) == {("ns", "a")}
    assert b.result(("ns", "b")) == ok()


def test_one_take_starts_no_more_slow_runs_than_the_slow_budget() -> None:
    b = book(workers=1, max_threads=3, stuck_after=1.0)
    feeds = urls(4)
    for s in feeds:
        b.subscribe(s)
    for work in b.take(100.0, unlimited=True):
        finish(b, work, 110.0)  # every one took ten seconds: all slow now
    assert [w.lane for w in b.take(140.0)] == [Lane.SLOW, Lane.SLOW]


# ---- backoff: a feed that keeps failing is checked less and less often ---------------------------------
def failed(sha: str | None = None) -> SourceResult:
    """A check that reached no commit (sha None: the remote failed) or a bad file at a good commit."""
    if sha is None:
        return SourceResult(Outcome(False, "FetchFailed", "unreachable"))
    commit = CommitInfo(sha, "release", "Dev <dev@example.com>", datetime(2024, 5, 1, tzinfo=UTC))
    return SourceResult(Outcome(False, "InvalidManifest", "bad", sha), commit)


def test_failing_checks_back_off_to_ten_intervals_and_a_success_resets() -> None:
    b, s = book(), sub(interval=10.0)
    b.subscribe(s)
    now, gaps = 100.0, []
    for _ in range(7):
        [work] = b.take(now)
        finish(b, work, now, {s.release: failed()})
        due = b.due_at(s.release)
        assert due is not None
        gaps.append(due - now)
        now = due
    assert gaps == [10.0, 20.0, 40.0, 80.0, 100.0, 100.0, 100.0]
    [work] = b.take(now)
    finish(b, work, now, refreshed_at=now)
    assert b.due_at(s.release) == now + 10.0, "one success: back to the interval"


def test_a_bad_file_at_a_good_commit_is_not_a_failing_remote() -> None:
    b, s = book(), sub(interval=10.0)
    b.subscribe(s)
    now = 100.0
    for _ in range(3):
        [work] = b.take(now)
        finish(b, work, now, {s.release: failed("b" * 40)})
        assert b.due_at(s.release) == now + 10.0
        now += 10.0


def test_a_forced_check_is_never_held_back_by_the_backoff() -> None:
    b, s = book(), sub(interval=10.0)
    b.subscribe(s)
    now = 100.0
    for _ in range(4):
        [work] = b.take(now)
        finish(b, work, now, {s.release: failed()})
        now = b.due_at(s.release) or now
    assert b.due_at(s.release) == now  # the next timed check is 80 s away from the last run
    b.request(s.release, now - 50.0)
    assert b.due_at(s.release) == float("-inf"), "a webhook or reconcile-at runs at once"
