"""Where the recorder hears from (``core.recorder.Recorder``, a no-op by default): a pass timed around the
controller's call, the selector switch once the API server accepted it, the commits a git check finds, and
every answer of the webhook receiver. Each is checked with a recorder that writes the calls down."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import ClusterError
from bluegreen.core.recorder import Recorder
from bluegreen.core.spec import Color, GitRef, ReleaseSpec, SpecError
from bluegreen.kube.writes import KubeWrites
from bluegreen.runtime.feeds import Subscription
from bluegreen.runtime.fetcher import FetchScheduler
from bluegreen.runtime.metering import MeteredCluster, timed_passes
from bluegreen.verify.verifier import CommitVerifier
from bluegreen.webhook.server import WebhookServer

SECRET = "s3cret"
MANIFEST = b"""apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: web, image: "shop:v1"}]}
"""


class Calls(Recorder):
    """Every call, as (method, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def reconcile_pass(self, result: str, seconds: float) -> None:
        self.calls.append(("reconcile_pass", result, seconds))

    def service_switched(self, namespace: str, service: str, color: Color) -> None:
        self.calls.append(("service_switched", namespace, service, color))

    def commit_seen(self, namespace: str, release: str, commit: str) -> None:
        self.calls.append(("commit_seen", namespace, release, commit))

    def webhook_request(self, provider: str, code: int) -> None:
        self.calls.append(("webhook_request", provider, code))


# ---- passes ---------------------------------------------------------------------------------------------
def test_a_pass_is_reported_with_its_result_and_duration_and_passes_through() -> None:
    calls, moments = Calls(), iter([10.0, 10.25, 20.0, 20.5])

    def reconcile(body: Mapping[str, Any], spec: ReleaseSpec | SpecError) -> float | None:
        if body.get("fail"):
            raise ClusterError("DeploymentConflict", "in the way")
        return 30.0

    timed = timed_passes(reconcile, calls, clock=lambda: next(moments))
    assert timed({}, SpecError("spec", "x")) == 30.0
    with pytest.raises(ClusterError):
        timed({"fail": True}, SpecError("spec", "x"))
    assert calls.calls == [("reconcile_pass", "success", 0.25), ("reconcile_pass", "error", 0.5)]


# ---- the selector switch ------------------------------------------------------------------------------
def test_a_switch_is_reported_once_the_api_server_accepted_it(monkeypatch: pytest.MonkeyPatch) -> None:
    patched: list[tuple[str, str, Color]] = []

    def switch_selector(self: KubeWrites, namespace: str, service: str, color: Color) -> None:
        if service == "refused":
            raise ClusterError("Conflict", "the API server refused the patch")
        patched.append((namespace, service, color))

    monkeypatch.setattr(KubeWrites, "switch_selector", switch_selector)
    calls = Calls()
    cluster = MeteredCluster(client.ApiClient(), recorder=calls)
    cluster.switch_selector("ns", "shop", Color.GREEN)
    with pytest.raises(ClusterError):
        cluster.switch_selector("ns", "refused", Color.BLUE)
    assert patched == [("ns", "shop", Color.GREEN)]
    assert calls.calls == [("service_switched", "ns", "shop", Color.GREEN)], "a refused switch is no switch"
    assert isinstance(MeteredCluster(client.ApiClient()).recorder, Recorder), "a no-op recorder by default"


# ---- git checks ------------------------------------------------------------------------------------------
class Source:
    def __init__(self, clock: list[float]) -> None:
        self.sha = "a" * 40
        self.fail = False
        self.clock = clock

    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot:
        from bluegreen.core.errors import SourceError

        if self.fail:
            raise SourceError("RepositoryUnreachable", "down")
        return Snapshot(CommitInfo(self.sha, "s", "a <a@b>", datetime.now(UTC), refreshed_at=self.clock[0]),
                        path, MANIFEST)

    def read(self, url: str, commit_sha: str, path: str, *, credentials: Credentials | None = None) -> Snapshot:
        raise AssertionError("no Job manifests here")

    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None:
        return None


class NoSecrets:
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return None


def test_every_commit_a_check_finds_is_reported_for_each_release_it_found_it_for() -> None:
    clock = [100.0]
    calls, source = Calls(), Source(clock)
    fetcher = FetchScheduler(source, NoSecrets(), CommitVerifier(), inline=True, monotonic=lambda: clock[0],
                             random=lambda: 0.0, recorder=calls)
    for name in ("a", "b"):
        fetcher.subscribe(Subscription(("ns", name), "https://git.example.com/d.git", GitRef("branch", "main"),
                                       "d.yaml", interval=30.0))
    fetcher.run_due()
    assert sorted(calls.calls) == [("commit_seen", "ns", "a", "a" * 40), ("commit_seen", "ns", "b", "a" * 40)]
    calls.calls.clear()
    source.fail = True
    clock[0] += 31
    fetcher.run_due()
    assert calls.calls == [], "a check that reached no commit saw none"
    source.fail, source.sha = False, "b" * 40
    clock[0] += 300
    fetcher.run_due()
    assert sorted(calls.calls) == [("commit_seen", "ns", "a", "b" * 40), ("commit_seen", "ns", "b", "b" * 40)]


# ---- webhooks ------------------------------------------------------------------------------------------
def test_every_answer_of_the_webhook_receiver_is_reported_by_provider_and_code() -> None:
    calls = Calls()
    body = json.dumps({"repository": "https://git.example.com/d.git", "ref": "refs/heads/main"}).encode()
    signed = {"X-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
              "Content-Type": "application/json"}

    async def main() -> None:
        server = WebhookServer("127.0.0.1", 0, lambda: SECRET.encode(), lambda urls, ref: 1, recorder=calls)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{server.port}"
                unsigned = {**signed, "X-Signature-256": "x"}
                for path, headers in (("/hooks/generic", signed), ("/hooks/generic", unsigned),
                                      ("/hooks/github", {"Content-Type": "text/plain"}),
                                      ("/hooks/" + "evil" * 30, signed)):
                    async with session.post(base + path, data=body, headers=headers) as response:
                        await response.read()
                async with session.get(base + "/healthz") as response:
                    assert response.status == 200
        finally:
            await server.stop()

    asyncio.run(main())
    assert calls.calls == [("webhook_request", "generic", 202), ("webhook_request", "generic", 401),
                           ("webhook_request", "github", 415), ("webhook_request", "unknown", 404)], \
        "any other path is 'unknown' (bounded labels); /healthz is not a webhook"
