"""A changed ``bluegreen.dev/reconcile-at`` asks the fetch scheduler for a check as soon as the watch event
arrives (``Controller.upsert``); when nothing else changed, the release is queued by the check's end, not now."""

from __future__ import annotations

from typing import Any

from bluegreen.runtime.controller import Controller


def body(token: str | None, generation: int = 1) -> dict[str, Any]:
    annotations = {"bluegreen.dev/reconcile-at": token} if token is not None else {}
    return {"metadata": {"namespace": "ns", "name": "web", "uid": "u", "generation": generation,
                         "annotations": annotations},
            "spec": {"source": {"url": "https://git.example.com/deploy.git"}, "service": "web"}}


def test_a_new_reconcile_at_token_asks_for_a_check_at_once() -> None:
    asked: list[tuple[str, str]] = []
    controller = Controller(lambda b, spec: None, request_check=lambda ns, name, at: asked.append((ns, name)))
    controller.upsert(body("1"))
    assert asked == [] and controller._queued == {("ns", "web")}, "first sight: queued, the first check comes anyway"
    controller._queued.clear()
    controller.upsert(body("1", generation=2))
    assert asked == [] and controller._queued == {("ns", "web")}, "a spec change is queued, not a forced check"
    controller._queued.clear()
    controller.upsert(body("2", generation=2))
    assert asked == [("ns", "web")] and controller._queued == set(), "the check queues the release when done"
    controller.upsert(body("2", generation=2))
    controller.upsert(body(None, generation=2))
    assert asked == [("ns", "web")], "the same token again, or none, asks nothing"
    controller._queued.clear()
    controller.upsert(body("3", generation=3))
    assert asked == [("ns", "web")] * 2 and controller._queued == {("ns", "web")}, "a new spec too: queued as well"


def test_without_a_fetch_scheduler_the_pass_handles_the_token() -> None:
    controller = Controller(lambda b, spec: None)
    controller.upsert(body("1"))
    controller._queued.clear()
    controller.upsert(body("2"))
    assert controller._queued == {("ns", "web")}
