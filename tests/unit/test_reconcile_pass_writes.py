"""The writes of a pass as the API server receives them: the real ``KubeWrites`` over recording API objects.

The recording fake cluster of test_reconcile_pass.py stops at the ``Cluster`` port; this pins what the port's
Kubernetes side sends: the selector patch names only ``bluegreen.dev/color``, a scale carries its bookkeeping
annotations (the abandoned commit), and both are merge patches by the operator's field manager.
"""

from __future__ import annotations

import json
from typing import Any

from recording_cluster import Harness

from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.kube.view import ClusterView
from bluegreen.kube.writes import KubeWrites


class Response:
    """What ``_preload_content=False`` gives: the object the API server returned, as JSON bytes."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body).encode()


class RecordingApi:
    """Any method call is recorded as (method, args, keyword args) and answers with the patched object (its
    name, namespace and the patch's body: what the view is fed with)."""

    def __init__(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        self.calls = calls

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Response:
            self.calls.append((method, args, kwargs))
            name, namespace, patch = args[0], args[1], args[2]
            meta = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                    "resourceVersion": str(len(self.calls)),
                    "labels": {"bluegreen.dev/release": name.rsplit("-", 1)[0]}}
            return Response({"metadata": meta, **{k: v for k, v in patch.items() if k != "metadata"}})
        return call


def writes() -> tuple[KubeWrites, list[tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    kube = KubeWrites.__new__(KubeWrites)  # no ApiClient: the typed APIs are replaced by recorders
    kube.apps = kube.core = kube.custom = RecordingApi(calls)  # type: ignore[assignment]
    kube.view = ClusterView()
    return kube, calls


def test_the_selector_patch_names_only_the_colour_key() -> None:
    kube, calls = writes()
    kube.switch_selector("shop", "web", Color.GREEN)
    ((method, args, kwargs),) = calls
    assert (method, args[:2]) == ("patch_namespaced_service", ("web", "shop"))
    assert args[2] == {"spec": {"selector": {"bluegreen.dev/color": "green"}}}
    assert kwargs["_content_type"] == "application/merge-patch+json", "a merge patch keeps the user's keys"
    assert kwargs["field_manager"] == "bluegreen-operator"


def test_a_scale_carries_its_annotations() -> None:
    kube, calls = writes()
    kube.scale(ReleaseRef("shop", "web"), Color.BLUE, 0, {"bluegreen.dev/abandoned-commit": "a" * 40,
                                                         "bluegreen.dev/rollout-started-at": None})
    ((method, args, kwargs),) = calls
    assert (method, args[:2]) == ("patch_namespaced_deployment", ("web-blue", "shop"))
    assert args[2] == {"metadata": {"annotations": {"bluegreen.dev/abandoned-commit": "a" * 40,
                                                    "bluegreen.dev/rollout-started-at": None}},
                       "spec": {"replicas": 0}}
    assert kwargs["_content_type"] == "application/merge-patch+json"


def test_a_pass_through_the_real_writes_switches_the_colour_key() -> None:
    """A whole first release whose switch goes through ``KubeWrites``: the Service patch it sends."""
    release = Harness()
    kube, calls = writes()
    recorded = release.cluster.switch_selector

    def switch(namespace: str, service: str, color: Color) -> None:
        kube.switch_selector(namespace, service, color)
        recorded(namespace, service, color)

    release.cluster.switch_selector = switch  # type: ignore[method-assign]
    release.source.commit("v1")
    release.run()
    release.cluster.roll_out()
    release.run()
    assert [(m, a) for m, a, _ in calls] == [
        ("patch_namespaced_service", ("shop", "shop", {"spec": {"selector": {"bluegreen.dev/color": "blue"}}}))]
