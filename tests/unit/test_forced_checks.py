"""A changed ``bluegreen.dev/reconcile-at`` asks the fetch scheduler for a check as soon as the watch event
arrives (``Controller.upsert``), and the pass that follows does not ask again (one remote contact)."""

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
    assert asked == [], "first sight (a start, a new release): the first check comes anyway"
    controller.upsert(body("1", generation=2))
    assert asked == [], "a spec change is not a forced check"
    controller.upsert(body("2", generation=2))
    assert asked == [("ns", "web")]
    controller.upsert(body("2", generation=2))
    controller.upsert(body(None, generation=2))
    assert asked == [("ns", "web")], "the same token again, or none, asks nothing"
    controller.upsert(body("3", generation=2))
    assert asked == [("ns", "web")] * 2
