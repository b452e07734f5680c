"""The work queue forgets a deleted release completely, even when it is deleted in the middle of a pass."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from bluegreen.runtime.controller import Controller


def body(name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": name, "generation": 1},
            "spec": {"source": {"url": "https://git.example.com/deploy.git"}, "service": "svc"}}


def test_release_deleted_during_its_pass_leaves_nothing_behind() -> None:
    started, release_pass = threading.Event(), threading.Event()
    passes: list[str] = []
    forgotten: list[tuple[str, str]] = []

    def reconcile(b: dict[str, Any], spec: object) -> float:
        passes.append(b["metadata"]["name"])
        started.set()
        release_pass.wait(5)
        raise RuntimeError("the pass failed after the release was deleted")

    async def scenario() -> None:
        controller = Controller(reconcile, forget=lambda ns, name: forgotten.append((ns, name)), workers=1)
        controller.start()
        controller.upsert(body("web"))
        await asyncio.to_thread(started.wait, 5)
        controller.remove("ns", "web")  # while the pass runs
        forgotten_during_pass = len(forgotten)
        release_pass.set()
        await asyncio.sleep(0.8)  # a retry (first backoff: 0.5 s) would come within this
        await controller.stop()
        assert forgotten_during_pass == 1
        assert controller.releases() == []
        assert controller._failures == {} and controller._timers == {}  # the leak checked here

    asyncio.run(scenario())
    assert passes == ["web"]  # no retry of a deleted release
    assert forgotten == [("ns", "web"), ("ns", "web")]  # again after the pass, whatever it re-created
