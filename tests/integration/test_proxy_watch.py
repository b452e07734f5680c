"""The service proxy's list-and-watch loop (tests/cluster/serviceproxy.py) against a scripted HTTP server.

A real API server cannot be made to answer 410 Gone on demand, so a small aiohttp server on loopback plays
one: it serves a listing, then watch responses from a script, and records every request. The loop must
watch on from the last resourceVersion when a watch ends normally, and list again when the watch cannot
resume (an ERROR event with code 410, or a 410 response).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import serviceproxy
from serviceproxy import ApiClient, list_and_watch


def service(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
    }))
    return path


def test_watch_resumes_from_the_last_version_and_lists_again_when_gone(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(serviceproxy, "RETRY_SECONDS", 0.01)
    listings = [[service("one", "5")], [service("two", "9")], [service("three", "12")]]
    watches: list[list[dict[str, Any]] | int] = [
        [{"type": "ADDED", "object": service("one-b", "6")}, {"type": "BOOKMARK", "object": service("", "7")}],
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}],
        410,  # after the second listing: the watch request itself is refused with 410
    ]
    requests: list[str] = []
    done, release = asyncio.Event(), asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        assert request.headers["Authorization"] == "Bearer secret-token"
        if "watch" not in request.query:
            requests.append("list")
            items = listings.pop(0)
            return web.json_response({"items": items, "metadata": {"resourceVersion": items[0]["metadata"][
                "resourceVersion"]}})
        requests.append(f"watch@{request.query['resourceVersion']}")
        if not watches:
            done.set()
            await release.wait()  # an open watch with nothing to say, until the test ends
            return web.StreamResponse()
        script = watches.pop(0)
        if isinstance(script, int):
            return web.Response(status=script)
        response = web.StreamResponse()
        await response.prepare(request)
        for event in script:
            await response.write(json.dumps(event).encode() + b"\n")
        return response

    replaced: list[list[str]] = []
    applied: list[tuple[str, str]] = []

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/api/v1/services", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        stopping = asyncio.Event()
        async with ApiClient(kubeconfig(tmp_path, f"http://127.0.0.1:{port}")) as api:
            task = asyncio.create_task(list_and_watch(
                api, "/api/v1/services", lambda items: replaced.append([i["metadata"]["name"] for i in items]),
                lambda kind, obj: applied.append((kind, obj["metadata"]["name"])), stopping))
            await asyncio.wait_for(done.wait(), 10)
            stopping.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        release.set()
        await runner.cleanup()

    asyncio.run(scenario())
    assert requests == ["list", "watch@5", "watch@7", "list", "watch@9", "list", "watch@12"]
    assert replaced == [["one"], ["two"], ["three"]]
    assert applied == [("ADDED", "one-b")]  # bookmarks only move the version on
