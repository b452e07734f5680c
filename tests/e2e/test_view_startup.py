"""kopf holds every event back until each indexed resource is fully listed: the operator's handlers, run in
process by kopf against the real API server, hand the controller its first release only once the view holds
every release Deployment and every Service of the namespace (an empty view would read as "nothing exists")."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes import client
from kubernetes.config import kube_config

import bluegreen.runtime.handlers as handlers
from bluegreen.kube.view import ClusterView
from bluegreen.runtime.controller import Controller
from conftest import GROUP, PLURAL, VERSION, GitRepo

DEPLOYMENTS = 120
SERVICES = 120


def test_the_first_release_reaches_the_controller_after_the_view_is_fully_listed(
        kubeconfig: str, kube_client: client.ApiClient, crd: None, namespace: str, repo: GitRepo, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # kopf's login and the kubernetes client read the default kubeconfig location fixed at import time.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    for i in range(DEPLOYMENTS):  # labelled for releases that do not exist; 0 replicas: no pods to run
        labels = {"bluegreen.dev/release": f"other-{i}", "bluegreen.dev/color": "blue", "app": f"other-{i}"}
        apps.create_namespaced_deployment(namespace, {
            "metadata": {"name": f"other-{i}-blue", "labels": labels},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": "registry.local/x:v1"}]}}}})
    apps.create_namespaced_deployment(namespace, {  # not ours: not in the view
        "metadata": {"name": "legacy", "labels": {"app": "legacy"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "legacy"}},
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "web", "image": "registry.local/x:v1"}]}}}})
    for i in range(SERVICES):
        core.create_namespaced_service(namespace, {"metadata": {"name": f"s{i}"},
                                                   "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    repo.release("registry.local/shop:v1")
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": "shop"},
        "spec": {"source": {"url": repo.url, "path": repo.manifest_path, "interval": "1h"}, "service": "s0"}})

    views: list[ClusterView] = []
    first: list[tuple[int, int]] = []

    class RecordedView(ClusterView):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            views.append(self)

    original_upsert = Controller.upsert

    def upsert(self: Controller, body: Any) -> None:
        if not first:
            first.append(views[0].sizes())
        original_upsert(self, body)

    monkeypatch.setattr(handlers, "ClusterView", RecordedView)
    monkeypatch.setattr(Controller, "upsert", upsert)
    monkeypatch.setenv("BLUEGREEN_CACHE_DIR", str(tmp_path / "cache"))

    async def run() -> None:
        stop = asyncio.Event()
        operator = asyncio.create_task(kopf.operator(
            registry=kopf.get_default_registry(), standalone=True, clusterwide=False, namespaces=[namespace],
            memo=kopf.Memo(webhook_config=None), stop_flag=stop))
        for _ in range(600):
            if first or operator.done():
                break
            await asyncio.sleep(0.05)
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, timeout=30)

    asyncio.run(run())
    assert first == [(DEPLOYMENTS, SERVICES)], "the view was complete when the first release arrived"
