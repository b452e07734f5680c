"""The writes of a colour's copies as the API server receives them (kube/companions.py), over scripted API
objects: server-side apply by the operator's field manager, the colour's own ConfigMaps found by label, a
same-named object that is not ours refused and never written, refusals of the API server turned into reasons,
and the twin apiVersion used when the cluster does not serve the one in git."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from bluegreen.core.errors import ClusterError
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.kube.companions import KubeCompanions, not_served
from bluegreen.kube.view import ClusterView

APPLY = "application/apply-patch+yaml"
RELEASE = ReleaseRef("shop", "shop")
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body).encode()


def api_error(status: int, message: str = "", name: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason="Failure")
    exc.body = json.dumps({"kind": "Status", "message": message, "details": {"name": name} if name else {}})
    return exc


NOT_FOUND = api_error(404, "not found", name="x")
NOT_SERVED = api_error(404, "the server could not find the requested resource")


class ScriptedApi:
    """Records every call; answers from ``script[method]`` (a list, one per call: a body, or an exception to
    raise), else echoes the body of a write."""

    def __init__(self, calls: list[Call], script: dict[str, list[Any]]) -> None:
        self.calls, self.script = calls, script

    def __getattr__(self, method: str) -> Callable[..., Response]:
        def call(*args: Any, **kwargs: Any) -> Response:
            self.calls.append((method, args, kwargs))
            answers = self.script.get(method)
            answer = answers.pop(0) if answers else {"metadata": {}}
            if isinstance(answer, Exception):
                raise answer
            return Response(answer)
        return call


def kube(**script: list[Any]) -> tuple[KubeCompanions, list[Call]]:
    calls: list[Call] = []
    companions = KubeCompanions.__new__(KubeCompanions)
    companions.core = companions.custom = ScriptedApi(calls, script)  # type: ignore[assignment]
    companions.view = ClusterView()
    return companions, calls


def config_map(name: str, labels: dict[str, str] | None = None, uid: str = "") -> dict[str, Any]:
    labels = {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"} if labels is None else labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop", "labels": labels,
                                                                 **({"uid": uid} if uid else {})},
            "data": {"k": "v"}}


def test_configmap_copies_are_applied_and_the_stale_ones_returned() -> None:
    listing = {"items": [config_map("settings-green", uid="u-1"), config_map("old-green", uid="u-2")]}
    companions, calls = kube(list_namespaced_config_map=[listing], read_namespaced_config_map=[NOT_FOUND])
    stale = companions.apply_config_maps(RELEASE, Color.GREEN, [config_map("settings-green"),
                                                                config_map("features-green")])
    assert stale == ["old-green"]
    (listed, first, read, second) = calls
    assert listed[0] == "list_namespaced_config_map" and listed[1] == ("shop",)
    assert listed[2]["label_selector"] == "bluegreen.dev/release=shop,bluegreen.dev/color=green"
    assert read[:2] == ("read_namespaced_config_map", ("features-green", "shop")), "a new name is read once"
    for call, name, uid in ((first, "settings-green", "u-1"), (second, "features-green", None)):
        method, args, kwargs = call
        assert (method, args[:2]) == ("patch_namespaced_config_map", (name, "shop"))
        assert args[2]["metadata"].get("uid") == uid, "a known copy carries its uid as a precondition"
        assert (kwargs["field_manager"], kwargs["force"], kwargs["_content_type"]) == ("bluegreen-operator", True,
                                                                                       APPLY)


def test_nothing_to_copy_still_finds_the_stale_copies() -> None:
    companions, calls = kube(list_namespaced_config_map=[{"items": [config_map("old-green")]}])
    assert companions.apply_config_maps(RELEASE, Color.GREEN, []) == ["old-green"]
    assert [c[0] for c in calls] == ["list_namespaced_config_map"]


@pytest.mark.parametrize("labels", [{}, {"bluegreen.dev/release": "other", "bluegreen.dev/color": "green"},
                                    {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "blue"}],
                         ids=["unlabelled", "another-release", "the-other-colour"])
def test_a_same_named_configmap_that_is_not_the_colours_is_refused(labels: dict[str, str]) -> None:
    companions, calls = kube(list_namespaced_config_map=[{"items": []}],
                             read_namespaced_config_map=[config_map("settings-green", labels=labels)])
    with pytest.raises(ClusterError) as caught:
        companions.apply_config_maps(RELEASE, Color.GREEN, [config_map("settings-green")])
    assert caught.value.reason == "ConfigMapConflict"
    assert caught.value.message == (
        "ConfigMap 'settings-green' exists but is not the green copy of release 'shop' (no bluegreen.dev/release=shop,"
        " bluegreen.dev/color=green labels); rename or delete it")
    assert "patch_namespaced_config_map" not in [c[0] for c in calls], "never written"


def test_a_copy_the_listing_missed_but_labelled_ours_is_applied_with_its_uid() -> None:
    companions, calls = kube(list_namespaced_config_map=[{"items": []}],
                             read_namespaced_config_map=[config_map("settings-green", uid="u-9")])
    companions.apply_config_maps(RELEASE, Color.GREEN, [config_map("settings-green")])
    assert calls[-1][1][2]["metadata"]["uid"] == "u-9"


def test_a_configmap_the_api_server_refuses_is_reported_with_its_message() -> None:
    companions, _ = kube(list_namespaced_config_map=[{"items": []}], read_namespaced_config_map=[NOT_FOUND],
                         patch_namespaced_config_map=[api_error(422, "data[bad key]: Invalid value")])
    with pytest.raises(ClusterError) as caught:
        companions.apply_config_maps(RELEASE, Color.GREEN, [config_map("settings-green")])
    assert (caught.value.reason, caught.value.message) == (
        "InvalidConfigMap", "the API server refused ConfigMap 'settings-green': data[bad key]: Invalid value")


def test_other_api_failures_propagate() -> None:
    companions, _ = kube(list_namespaced_config_map=[{"items": []}], read_namespaced_config_map=[NOT_FOUND],
                         patch_namespaced_config_map=[api_error(500, "etcd down")])
    with pytest.raises(ApiException):
        companions.apply_config_maps(RELEASE, Color.GREEN, [config_map("settings-green")])


def test_deleting_configmaps_tolerates_absent_ones_only() -> None:
    companions, calls = kube(delete_namespaced_config_map=[NOT_FOUND, {}])
    companions.delete_config_maps("shop", ["a-green", "b-green"])
    assert [(c[0], c[1]) for c in calls] == [("delete_namespaced_config_map", ("a-green", "shop")),
                                             ("delete_namespaced_config_map", ("b-green", "shop"))]
    companions, _ = kube(delete_namespaced_config_map=[api_error(403, "forbidden")])
    with pytest.raises(ApiException):
        companions.delete_config_maps("shop", ["a-green"])


def hpa(api_version: str = "autoscaling/v2beta2") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web-green", "namespace": "shop",
                         "labels": {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"}},
            "spec": {"maxReplicas": 4}}


def test_a_known_copy_is_applied_without_a_read() -> None:
    companions, calls = kube()
    companions.apply_object(hpa(), known=True)
    ((method, args, kwargs),) = calls
    assert (method, args[:5]) == ("patch_namespaced_custom_object",
                                  ("autoscaling", "v2beta2", "shop", "horizontalpodautoscalers", "web-green"))
    assert args[5] == hpa()
    assert (kwargs["field_manager"], kwargs["force"], kwargs["_content_type"]) == ("bluegreen-operator", True, APPLY)


def test_a_new_copy_is_read_first() -> None:
    companions, calls = kube(get_namespaced_custom_object=[NOT_FOUND])
    companions.apply_object(hpa(), known=False)
    assert [c[0] for c in calls] == ["get_namespaced_custom_object", "patch_namespaced_custom_object"]


def test_a_same_named_hpa_that_is_not_ours_is_refused() -> None:
    theirs = {**hpa(), "metadata": {"name": "web-green", "labels": {"app": "web"}}}
    companions, calls = kube(get_namespaced_custom_object=[theirs])
    with pytest.raises(ClusterError) as caught:
        companions.apply_object(hpa(), known=False)
    assert caught.value.reason == "HorizontalPodAutoscalerConflict"
    assert [c[0] for c in calls] == ["get_namespaced_custom_object"]


def test_an_unserved_version_is_written_as_its_twin() -> None:
    companions, calls = kube(get_namespaced_custom_object=[NOT_SERVED, NOT_FOUND],
                             patch_namespaced_custom_object=[NOT_SERVED, {}])
    companions.apply_object(hpa("autoscaling/v2"), known=False)
    versions = [(c[0], c[1][1]) for c in calls]
    assert versions == [("get_namespaced_custom_object", "v2"), ("get_namespaced_custom_object", "v2beta2"),
                        ("patch_namespaced_custom_object", "v2"), ("patch_namespaced_custom_object", "v2beta2")]
    assert calls[-1][1][5]["apiVersion"] == "autoscaling/v2beta2"


def test_a_pdb_falls_back_from_policy_v1_to_v1beta1() -> None:
    pdb = {**hpa("policy/v1"), "kind": "PodDisruptionBudget"}
    companions, calls = kube(patch_namespaced_custom_object=[NOT_SERVED, {}])
    companions.apply_object(pdb, known=True)
    assert [(c[1][0], c[1][1], c[1][3]) for c in calls] == [("policy", "v1", "poddisruptionbudgets"),
                                                            ("policy", "v1beta1", "poddisruptionbudgets")]


def test_a_version_without_a_twin_is_not_retried() -> None:
    companions, calls = kube(patch_namespaced_custom_object=[NOT_SERVED])
    with pytest.raises(ApiException):
        companions.apply_object(hpa("autoscaling/v1"), known=True)
    assert len(calls) == 1


def test_an_object_missing_is_not_a_version_missing() -> None:
    assert not_served(NOT_SERVED) and not not_served(NOT_FOUND) and not not_served(api_error(403))


def test_an_hpa_the_api_server_refuses_is_reported() -> None:
    companions, _ = kube(patch_namespaced_custom_object=[api_error(422, "spec.metrics: Required value")])
    with pytest.raises(ClusterError) as caught:
        companions.apply_object(hpa(), known=True)
    assert (caught.value.reason, caught.value.message) == (
        "InvalidAutoscaler", "the API server refused HorizontalPodAutoscaler 'web-green': spec.metrics: Required value")


def test_deleting_a_copy_tolerates_its_absence() -> None:
    companions, calls = kube(delete_namespaced_custom_object=[NOT_FOUND])
    companions.delete_object("shop", "autoscaling/v1", "HorizontalPodAutoscaler", "web-green")
    assert calls[0][1] == ("autoscaling", "v1", "shop", "horizontalpodautoscalers", "web-green")
    companions, calls = kube(delete_namespaced_custom_object=[NOT_SERVED, {}])
    companions.delete_object("shop", "policy/v1", "PodDisruptionBudget", "web-green")
    assert [c[1][1] for c in calls] == ["v1", "v1beta1"]
