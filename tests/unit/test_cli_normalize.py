"""The normalization ``bluegreen diff`` compares with (bluegreen.cli.normalize): server-set fields and API
server defaults dropped on both sides, everything else kept."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
import yaml

from bluegreen.cli.diff import unchanged, unified
from bluegreen.cli.normalize import (
    CONTAINER_DEFAULTS,
    DEPLOYMENT_DEFAULTS,
    IGNORED_ANNOTATIONS,
    POD_DEFAULTS,
    PROBE_DEFAULTS,
    align_quantities,
    default_pull_policy,
    normalize_deployment,
    quantity_value,
)
from bluegreen.core.desired import parse_manifest

SOURCE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, labels: {app: d}}
spec:
  replicas: 0
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      initContainers: [{name: init, image: "local/python:3"}]
      containers:
      - name: web
        image: local/python:3
        ports: [{containerPort: 8080}]
        env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}},
              {name: A, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}}
        livenessProbe: {exec: {command: ["true"]}}
        startupProbe: {tcpSocket: {port: 8080}}
        volumeMounts: [{name: s, mountPath: /s}, {name: c, mountPath: /c}, {name: e, mountPath: /e},
                       {name: p, mountPath: /p}]
        lifecycle: {preStop: {httpGet: {path: /x, port: 8080}}}
      - {name: other, image: nginx}
      volumes:
      - {name: s, secret: {secretName: x}}
      - {name: c, configMap: {name: "y"}}
      - {name: e, emptyDir: {}}
      - {name: p, projected: {sources: [{secret: {name: x}}]}}
      - {name: h, hostPath: {path: /tmp}}
      - {name: d, downwardAPI: {items: [{path: a, fieldRef: {fieldPath: metadata.name}}]}}
"""
LIVE: dict[str, Any] = {  # what kube-apiserver v1.20.2 returned for SOURCE (kubectl apply --server-side), verbatim
    "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}, "creationTimestamp": "2026-12-01T20:18:58Z",
                 "generation": 1, "labels": {"app": "d"}, "name": "d", "namespace": "probe-defaults",
                 "resourceVersion": "341", "uid": "dc6361cf-980d-4c36-91b7-f9f8731ae93a"},
    "spec": {"progressDeadlineSeconds": 600, "replicas": 0, "revisionHistoryLimit": 10,
             "selector": {"matchLabels": {"app": "d"}},
             "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
             "template": {"metadata": {"creationTimestamp": None, "labels": {"app": "d"}}, "spec": {
                 "containers": [
                     {"env": [{"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.name"}}},
                              {"name": "A", "valueFrom": {"resourceFieldRef": {"divisor": "0",
                                                                               "resource": "limits.cpu"}}}],
                      "image": "local/python:3", "imagePullPolicy": "IfNotPresent",
                      "lifecycle": {"preStop": {"httpGet": {"path": "/x", "port": 8080, "scheme": "HTTP"}}},
                      "livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 3, "periodSeconds": 10,
                                        "successThreshold": 1, "timeoutSeconds": 1},
                      "name": "web", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                      "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": 8080,
                                                                            "scheme": "HTTP"},
                                         "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
                      "resources": {},
                      "startupProbe": {"failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1,
                                       "tcpSocket": {"port": 8080}, "timeoutSeconds": 1},
                      "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                      "volumeMounts": [{"mountPath": "/s", "name": "s"}, {"mountPath": "/c", "name": "c"},
                                       {"mountPath": "/e", "name": "e"}, {"mountPath": "/p", "name": "p"}]},
                     {"image": "nginx", "imagePullPolicy": "Always", "name": "other", "resources": {},
                      "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                 "dnsPolicy": "ClusterFirst",
                 "initContainers": [{"image": "local/python:3", "imagePullPolicy": "IfNotPresent", "name": "init",
                                     "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File"}],
                 "restartPolicy": "Always", "schedulerName": "default-scheduler", "securityContext": {},
                 "terminationGracePeriodSeconds": 30,
                 "volumes": [{"name": "s", "secret": {"defaultMode": 420, "secretName": "x"}},
                             {"configMap": {"defaultMode": 420, "name": "y"}, "name": "c"},
                             {"emptyDir": {}, "name": "e"},
                             {"name": "p", "projected": {"defaultMode": 420, "sources": [{"secret": {"name": "x"}}]}},
                             {"hostPath": {"path": "/tmp", "type": ""}, "name": "h"},
                             {"downwardAPI": {"defaultMode": 420, "items": [
                                 {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}, "path": "a"}]},
                              "name": "d"}]}}},
    "status": {"observedGeneration": 1},
}


def source() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(SOURCE)
    return body


def test_the_api_servers_defaults_normalize_away() -> None:
    assert normalize_deployment(LIVE) == normalize_deployment(source())


def test_normalizing_copies() -> None:
    live = copy.deepcopy(LIVE)
    normalize_deployment(live)
    assert live == LIVE


def test_nothing_is_an_empty_deployment() -> None:
    assert normalize_deployment(None) == {} == normalize_deployment({})


def test_only_labels_annotations_and_spec_are_kept() -> None:
    result = normalize_deployment(LIVE)
    assert set(result) == {"metadata", "spec"}
    assert result["metadata"] == {"labels": {"app": "d"}}


def test_the_colour_label_is_dropped_everywhere_and_the_release_label_kept() -> None:
    ours = {"app": "d", "bluegreen.dev/release": "d", "bluegreen.dev/color": "blue"}
    body = {"metadata": {"labels": dict(ours)}, "spec": {"selector": {"matchLabels": dict(ours)},
                                                         "template": {"metadata": {"labels": dict(ours)}}}}
    kept = {"app": "d", "bluegreen.dev/release": "d"}
    assert normalize_deployment(body) == {"metadata": {"labels": kept}, "spec": {
        "selector": {"matchLabels": kept}, "template": {"metadata": {"labels": kept}}}}


def test_bookkeeping_annotations_are_dropped_and_the_template_hash_kept() -> None:
    annotations = {key: "x" for key in IGNORED_ANNOTATIONS} | {"bluegreen.dev/template-hash": "h", "team": "a"}
    result = normalize_deployment({"metadata": {"annotations": annotations}, "spec": {}})
    assert result == {"metadata": {"annotations": {"bluegreen.dev/template-hash": "h", "team": "a"}}, "spec": {}}
    assert {"bluegreen.dev/commit", "bluegreen.dev/rollout-started-at", "bluegreen.dev/abandoned-commit",
            "deployment.kubernetes.io/revision"} <= IGNORED_ANNOTATIONS


def pod(**fields: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": fields}}}


def container(**fields: Any) -> dict[str, Any]:
    return pod(containers=[{"name": "c", "image": "i:1", **fields}])


def other_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, dict):
        return {"x": 1}
    return f"{value}-other"


@pytest.mark.parametrize(("table", "wrap"), [
    (DEPLOYMENT_DEFAULTS, lambda f: {"spec": f}),
    (POD_DEFAULTS, lambda f: pod(**f)),
    (CONTAINER_DEFAULTS, lambda f: container(**f)),
    (PROBE_DEFAULTS, lambda f: container(readinessProbe=f, livenessProbe=f, startupProbe=f)),
], ids=["deployment", "pod", "container", "probe"])
def test_each_default_is_dropped_and_any_other_value_kept(table: dict[str, Any], wrap: Any) -> None:
    bare = normalize_deployment(wrap({}))
    for key, value in table.items():
        assert normalize_deployment(wrap({key: value})) == bare, key
        assert normalize_deployment(wrap({key: other_value(value)})) != bare, key


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"), ("host:5000/nginx", "Always"),
    ("host:5000/team/nginx:2", "IfNotPresent"), ("nginx@sha256:" + "0" * 64, "IfNotPresent"),
])
def test_the_default_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy
    assert normalize_deployment(container(image=image, imagePullPolicy=policy)) == \
        normalize_deployment(container(image=image))
    other = "Never"
    assert normalize_deployment(container(image=image, imagePullPolicy=other)) != \
        normalize_deployment(container(image=image))


@pytest.mark.parametrize("strategy", [{"type": "Recreate"}, {"rollingUpdate": {"maxSurge": 1}},
                                      {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}])
def test_a_strategy_other_than_the_default_is_kept(strategy: dict[str, Any]) -> None:
    result = normalize_deployment({"spec": {"strategy": copy.deepcopy(strategy)}})
    assert result["spec"]["strategy"]
    assert "type" not in result["spec"]["strategy"] or result["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("strategy", [{}, {"type": "RollingUpdate"},
                                      {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}])
def test_the_default_strategy_is_dropped(strategy: dict[str, Any]) -> None:
    assert normalize_deployment({"spec": {"strategy": strategy}}) == {"spec": {}}


@pytest.mark.parametrize("fields", [
    {"ports": [{"containerPort": 53, "protocol": "UDP"}]},
    {"readinessProbe": {"httpGet": {"path": "/", "port": 1, "scheme": "HTTPS"}}},
    {"lifecycle": {"preStop": {"httpGet": {"path": "/", "port": 1, "scheme": "HTTPS"}}}},
    {"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}]},
])
def test_non_default_container_details_are_kept(fields: dict[str, Any]) -> None:
    assert normalize_deployment(container(**fields)) == container(**fields)


@pytest.mark.parametrize("volume", [
    {"name": "s", "secret": {"secretName": "x", "defaultMode": 256}},
    {"name": "h", "hostPath": {"path": "/tmp", "type": "Directory"}},
    {"name": "d", "downwardAPI": {"items": [{"path": "a", "fieldRef": {"apiVersion": "v2", "fieldPath": "x"}}]}},
])
def test_non_default_volume_details_are_kept(volume: dict[str, Any]) -> None:
    assert normalize_deployment(pod(volumes=[volume])) == pod(volumes=[volume])


def test_a_template_timestamp_that_is_set_is_kept() -> None:
    body = {"spec": {"template": {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}}}
    assert normalize_deployment(body) == body


# ---- the diff's shortcut and output ------------------------------------------------------------------------
MANIFEST = SOURCE.replace("replicas: 0", "replicas: 2")


def test_the_hash_shortcut_needs_the_same_hash_and_replicas() -> None:
    desired = parse_manifest(MANIFEST, namespace="shop")
    live = {"metadata": {"annotations": {"bluegreen.dev/template-hash": desired.template_hash}},
            "spec": {"replicas": 2}}
    assert unchanged(live, desired)
    assert not unchanged({**live, "spec": {"replicas": 3}}, desired)
    assert not unchanged({**live, "metadata": {"annotations": {"bluegreen.dev/template-hash": "other"}}}, desired)
    assert not unchanged(None, desired)


def test_the_unified_diff_is_empty_for_equal_objects_and_labels_its_sides() -> None:
    assert unified({"spec": {"a": 1}}, {"spec": {"a": 1}}, "live", "git") == ""
    text = unified({"spec": {"a": 1, "b": 2}}, {"spec": {"a": 1, "b": 3}}, "live x", "git y")
    assert text.splitlines() == ["--- live x", "+++ git y", "@@ -1,3 +1,3 @@", " spec:", "   a: 1", "-  b: 2",
                                 "+  b: 3"]
    everything = unified({}, {"spec": {"a": 1}}, "live", "git")
    assert everything.splitlines()[3:] == ["+spec:", "+  a: 1"]


@pytest.mark.parametrize(("text", "amount"), [
    ("500m", "0.5"), ("0.5", "0.5"), ("1Gi", "1073741824"), ("1024Mi", "1073741824"), ("1e3", "1000"),
    ("1k", "1000"), (2, "2"), ("1.5", "1.5"), ("100u", "0.0001"), (".5", "0.5"), ("3E2", "300"),
])
def test_quantities_are_read_as_amounts(text: Any, amount: str) -> None:
    value = quantity_value(text)
    assert value is not None and value == Decimal(amount)


@pytest.mark.parametrize("text", ["", "abc", "1Zi", "1.2.3", True, None, "5 m"])
def test_what_is_no_quantity_has_no_amount(text: Any) -> None:
    assert quantity_value(text) is None


def resources(**sections: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": "web", "resources": sections}]}}}}


def test_the_rendered_side_takes_the_live_spelling_of_an_equal_amount() -> None:
    live = resources(requests={"cpu": "500m", "memory": "1Gi"}, limits={"cpu": "1"})
    rendered = resources(requests={"cpu": "0.5", "memory": "2Gi"}, limits={"cpu": 1})
    align_quantities(live, rendered)
    assert rendered == resources(requests={"cpu": "500m", "memory": "2Gi"}, limits={"cpu": "1"})


def test_quantities_are_aligned_per_container_and_section() -> None:
    live = {"spec": {"template": {"spec": {"containers": [{"name": "other", "resources": {"limits": {"cpu": "1"}}}],
                                           "initContainers": [{"name": "web",
                                                               "resources": {"limits": {"cpu": "1"}}}]}}}}
    rendered = resources(limits={"cpu": "1000m"}, requests={"cpu": "1000m"})
    align_quantities(live, rendered)
    assert rendered == resources(limits={"cpu": "1000m"}, requests={"cpu": "1000m"})
