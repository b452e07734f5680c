"""The controller's work queue on a real event loop with passes in worker threads: dirty while active, backoff,
timers and jitter, deletion mid-pass, and the release write-through."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bluegreen.runtime.controller import Controller, Key, Timing

KEY = ("ns", "web")


def body(name: str = "web", *, rv: str = "1", generation: int = 1, uid: str | None = None,
         status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid or name, "generation": generation,
                         "resourceVersion": rv},
            "spec": {"source": {"url": "https://git.example.com/deploy.git", "path": "d.yaml"}, "service": "svc"},
            "status": status or {}}


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def sequence(*values: float) -> Callable[[], float]:
    numbers: Iterator[float] = iter(values)
    return lambda: next(numbers)


# ---- dirty while active ---------------------------------------------------------------------------
@pytest.mark.parametrize("events_during_pass", [0, 1, 3])
def test_events_during_a_pass_cause_exactly_one_more_pass(events_during_pass: int) -> None:
    started, finish = threading.Event(), threading.Event()
    passes: list[int] = []
    concurrent: list[int] = []
    running = [0]

    def reconcile(b: Any, spec: Any) -> None:
        running[0] += 1
        concurrent.append(running[0])
        passes.append(len(passes))
        if len(passes) == 1:
            started.set()
            finish.wait(5)
        running[0] -= 1

    async def scenario() -> None:
        controller = Controller(reconcile, workers=3, timing=Timing(resync=3600))
        controller.start()
        controller.upsert(body())
        await asyncio.to_thread(started.wait, 5)
        for _ in range(events_during_pass):
            controller.enqueue(KEY)
            controller.service_changed("ns", "svc")
        await asyncio.sleep(0.1)  # idle workers are free to (wrongly) run it again now
        assert len(passes) == 1, "never two passes of one release at once"
        finish.set()
        await asyncio.sleep(0.3)
        await controller.stop()

    asyncio.run(scenario())
    assert len(passes) == 1 + (1 if events_during_pass else 0)
    assert max(concurrent) == 1


def test_an_event_between_passes_queues_one_pass_and_duplicates_collapse() -> None:
    passes: list[int] = []

    async def scenario() -> None:
        controller = Controller(lambda b, s: passes.append(1), workers=2, timing=Timing(resync=3600))
        controller.upsert(body())  # queued before the workers start: one pass
        controller.enqueue(KEY)
        controller.enqueue(KEY)
        controller.start()
        await asyncio.sleep(0.2)
        controller.enqueue(("ns", "unknown"))  # not a release: ignored
        await asyncio.sleep(0.1)
        await controller.stop()

    asyncio.run(scenario())
    assert len(passes) == 1


# ---- backoff --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("failures", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 32.0), (8, 60.0),
                                                 (30, 60.0)])
def test_backoff_doubles_from_half_a_second_up_to_a_minute(failures: int, delay: float) -> None:
    assert Timing().backoff(failures) == delay


class RecordingController(Controller):
    """Records each requeue delay and queues the release again at once while ``replay`` says so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delays: list[float] = []
        self.replay = True

    def enqueue_after(self, key: Key, delay: float) -> None:
        self.delays.append(delay)
        if self.replay:
            asyncio.get_running_loop().call_soon(self.enqueue, key)


def test_failures_back_off_exponentially_capped_and_a_success_resets_it() -> None:
    outcomes: list[float | Exception] = [RuntimeError("1"), RuntimeError("2"), RuntimeError("3"), RuntimeError("4"),
                                         5.0, RuntimeError("5"), 7.0]

    def reconcile(b: Any, spec: Any) -> float:
        outcome = outcomes.pop(0)
        controller.replay = bool(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    controller = RecordingController(reconcile, workers=1, rand=constant(0.0),
                                     timing=Timing(backoff_first=0.5, backoff_max=2.0, resync=3600))

    async def scenario() -> list[float]:
        controller.start()
        controller.upsert(body())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not outcomes:
                break
        await asyncio.sleep(0.05)
        await controller.stop()
        assert controller._failures == {}
        return controller.delays

    assert asyncio.run(scenario()) == [0.5, 1.0, 2.0, 2.0, 5.0, 0.5, 7.0]


@pytest.mark.parametrize(("failures", "rand", "delay"), [
    (1, 0.0, 0.5), (1, 1.0, 0.55), (3, 0.5, 2.1), (10, 1.0, 65.0),  # +10 % at most, and at most 5 s
])
def test_retries_are_jittered_within_bounds(failures: int, rand: float, delay: float) -> None:
    controller = Controller(lambda b, s: None, rand=constant(rand))
    assert controller.retry_delay(failures) == pytest.approx(delay)


# ---- timers and jitter ----------------------------------------------------------------------------
@pytest.mark.parametrize(("requested", "rand", "delay"), [
    (10.0, 0.0, 10.0),
    (10.0, 1.0, 11.0),  # +10 %
    (10.0, 0.5, 10.5),
    (100.0, 1.0, 105.0),  # at most 5 s late for a pass's own deadline
    (0.0, 1.0, 0.0),  # due now
    (-3.0, 1.0, 0.0),  # overdue
])
def test_a_requested_delay_is_late_by_at_most_ten_percent_and_five_seconds(requested: float, rand: float,
                                                                           delay: float) -> None:
    controller = Controller(lambda b, s: None, rand=constant(rand))
    assert controller.next_delay(KEY, requested) == pytest.approx(delay)


@pytest.mark.parametrize(("requested", "rands", "first", "second"), [
    (None, (0.25, 0.0, 0.0), 150.0, 600.0),  # the first resync after a start: anywhere in the interval
    (None, (1.0, 1.0, 1.0), 660.0, 660.0),  # +10 % (not capped: the point is to spread)
    (None, (0.5, 0.5, 0.5), 315.0, 630.0),
    (700.0, (0.5, 0.0, 0.0), 300.0, 600.0),  # beyond the resync: the resync comes first
])
def test_the_resync_is_spread_over_its_first_interval_then_jittered(
        requested: float | None, rands: tuple[float, ...], first: float, second: float) -> None:
    controller = Controller(lambda b, s: None, rand=sequence(*rands), timing=Timing(resync=600.0))
    assert controller.next_delay(KEY, requested) == pytest.approx(first)
    assert controller.next_delay(KEY, requested) == pytest.approx(second)


def test_after_a_start_the_first_resyncs_of_many_releases_spread_over_the_interval() -> None:
    controller = Controller(lambda b, s: None, timing=Timing(resync=600.0))
    delays = sorted(controller.next_delay(("ns", f"r{i}"), None) for i in range(200))
    assert 0 <= delays[0] < 60 and 540 < delays[-1] <= 660
    later = [controller.next_delay(("ns", f"r{i}"), None) for i in range(200)]
    assert all(600 <= d <= 660 for d in later)


def test_enqueue_after_replaces_the_earlier_timer() -> None:
    passes: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        controller = Controller(lambda b, s: passes.append(loop.time()) and None, workers=1,
                                timing=Timing(resync=3600))
        controller.start()
        controller.upsert(body())
        await asyncio.sleep(0.05)
        assert len(passes) == 1
        controller.enqueue_after(KEY, 0.05)
        controller.enqueue_after(KEY, 0.25)  # replaces the 0.05 s timer
        set_at = loop.time()
        await asyncio.sleep(0.15)
        assert len(passes) == 1, "the replaced timer did not fire"
        await asyncio.sleep(0.25)
        assert len(passes) == 2 and passes[1] - set_at >= 0.24
        controller.enqueue_after(KEY, 0.05)
        controller.enqueue_after(KEY, 10)  # a later one replaces an earlier one too
        await asyncio.sleep(0.2)
        await controller.stop()

    asyncio.run(scenario())
    assert len(passes) == 2


def test_a_pass_requeues_itself_at_the_delay_it_asks_for() -> None:
    passes: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def reconcile(b: Any, s: Any) -> float | None:
            passes.append(loop.time())
            return 0.1 if len(passes) < 3 else None

        controller = Controller(reconcile, workers=1, rand=constant(0.5), timing=Timing(resync=3600))
        controller.start()
        controller.upsert(body())
        await asyncio.sleep(0.5)
        await controller.stop()

    asyncio.run(scenario())
    assert len(passes) == 3
    assert all(0.09 <= b - a < 0.3 for a, b in itertools.pairwise(passes))


# ---- deletion mid-pass ----------------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["fails", "succeeds"])
def test_a_release_deleted_during_its_pass_is_forgotten_and_never_retried(outcome: str) -> None:
    started, finish = threading.Event(), threading.Event()
    passes: list[str] = []
    forgotten: list[Key] = []

    def reconcile(b: Any, spec: Any) -> float:
        passes.append(b["metadata"]["name"])
        started.set()
        finish.wait(5)
        if outcome == "fails":
            raise RuntimeError("failed after the deletion")
        return 0.05

    async def scenario() -> None:
        controller = Controller(reconcile, forget=lambda ns, n: forgotten.append((ns, n)), workers=1,
                                rand=constant(0.0))
        controller.start()
        controller.upsert(body())
        await asyncio.to_thread(started.wait, 5)
        controller.remove(*KEY)
        controller.enqueue(KEY)  # a late event of the deleted release
        finish.set()
        await asyncio.sleep(0.7)  # a retry (0.5 s) or the requeue (0.05 s) would come within this
        assert controller.releases() == []
        assert controller._failures == {} and controller._timers == {} and controller._queued == set()
        await controller.stop()

    asyncio.run(scenario())
    assert passes == ["web"]
    assert forgotten == [KEY, KEY]


# ---- the release write-through --------------------------------------------------------------------
def test_a_pass_starts_from_the_status_the_previous_pass_wrote() -> None:
    seen: list[dict[str, Any]] = []

    def reconcile(b: Any, spec: Any) -> None:
        seen.append(dict(b.get("status") or {}))
        if len(seen) == 1:
            controller.written_from_thread(body(rv="5", status={"phase": "Healthy"}))  # the patch's response

    controller = Controller(reconcile, workers=1, timing=Timing(resync=3600))

    async def scenario() -> None:
        controller.start()
        controller.upsert(body(rv="4"))
        await asyncio.sleep(0.1)
        controller.enqueue(KEY)  # e.g. a Deployment event, before the release's own watch event arrives
        await asyncio.sleep(0.1)
        controller.upsert(body(rv="4"))  # the watch, late, with an older version: ignored
        controller.enqueue(KEY)
        await asyncio.sleep(0.1)
        await controller.stop()

    asyncio.run(scenario())
    assert seen == [{}, {"phase": "Healthy"}, {"phase": "Healthy"}]


@pytest.mark.parametrize(("written", "kept_rv"), [
    (body(rv="7"), "7"),  # newer: kept
    (body(rv="3"), "5"),  # older than the watch's: ignored
    (body(rv="9", uid="other"), "5"),  # a new release of that name (the old one was deleted): not ours to set
])
def test_release_written_keeps_only_a_newer_body_of_the_same_release(written: dict[str, Any], kept_rv: str) -> None:
    controller = Controller(lambda b, s: None)
    controller.upsert(body(rv="5"))
    controller.release_written(written)
    assert controller._releases[KEY]["metadata"]["resourceVersion"] == kept_rv


def test_a_status_written_after_the_deletion_does_not_bring_the_release_back() -> None:
    controller = Controller(lambda b, s: None)
    controller.upsert(body(rv="5"))
    controller.remove(*KEY)
    controller.release_written(body(rv="6"))
    assert controller.releases() == [] and controller._specs == {}


def test_a_written_body_with_a_new_generation_queues_a_pass() -> None:
    async def scenario() -> list[Key]:
        controller = Controller(lambda b, s: None)
        controller.upsert(body(rv="5"))
        queued: list[Key] = []
        controller.enqueue = queued.append  # type: ignore[method-assign]
        controller.release_written(body(rv="6"))  # our status, same generation: nothing to do
        controller.release_written(body(rv="8", generation=2))  # the spec changed meanwhile
        return queued

    assert asyncio.run(scenario()) == [KEY]


def test_a_failed_pass_is_logged_as_a_warning_naming_the_release_the_error_and_the_retry() -> None:
    from structlog.testing import capture_logs

    failed = threading.Event()

    def reconcile(b: Any, spec: Any) -> float:
        failed.set()
        raise RuntimeError("the API server said no")

    controller = Controller(reconcile, workers=1, rand=constant(0.0),
                            timing=Timing(backoff_first=0.5, backoff_max=2.0, resync=3600))

    async def scenario() -> None:
        controller.start()
        controller.upsert(body())
        await asyncio.to_thread(failed.wait, 5)
        await asyncio.sleep(0.05)
        await controller.stop()

    with capture_logs() as logs:
        asyncio.run(scenario())
    [line] = [entry for entry in logs if entry.get("action") == "Reconcile"]
    assert line == {"event": "reconcile failed; retrying", "log_level": "warning", "release": "web",
                    "namespace": "ns", "action": "Reconcile", "error": "RuntimeError: the API server said no",
                    "retry_in": 0.5}


@pytest.mark.parametrize("annotation", ["bluegreen.dev/promote", "bluegreen.dev/abort", "bluegreen.dev/retry"])
def test_a_promote_abort_or_retry_request_queues_a_pass_and_so_does_its_removal(annotation: str) -> None:
    def annotated(rv: str, value: str | None) -> dict[str, Any]:
        release = body(rv=rv)
        release["metadata"]["annotations"] = {annotation: value} if value else {}
        return release

    async def scenario() -> list[Key]:
        controller = Controller(lambda b, s: None)
        controller.upsert(annotated("5", None))
        queued: list[Key] = []
        controller.enqueue = queued.append  # type: ignore[method-assign]
        controller.upsert(annotated("6", None))  # our status patch: nothing to do
        controller.upsert(annotated("7", "a" * 40))  # the request
        controller.upsert(annotated("8", "a" * 40))  # our status again
        controller.upsert(annotated("9", None))  # the operator removed it: one more (idle) pass
        return queued

    assert asyncio.run(scenario()) == [KEY, KEY]
