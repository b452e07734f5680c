"""The local node's kubelet rules that are pure: $(VAR) expansion and the container environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from kubelet.envvars import (
    ConfigError,
    container_environment,
    field_value,
    format_map,
    quantity,
    resource_value,
    service_variables,
    services_for_pod,
)
from kubelet.expansion import expand, mapping_for
from kubelet.images import ImageConfig, command_line

CONTEXT = {"A": "alpha", "B": "beta", "EMPTY": ""}


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(A)", "alpha"),
    ("x$(A)y$(B)z", "xalphaybetaz"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$alpha"),
    ("$$", "$"),
    ("$", "$"),
    ("a$", "a$"),
    ("$A", "$A"),
    ("$(A", "$(A"),
    ("$()", "$()"),
    ("$(EMPTY)!", "!"),
    ("100$", "100$"),
    ("$(A)$(A)", "alphaalpha"),
])
def test_expansion_follows_kubelet(text: str, expanded: str) -> None:
    assert expand(text, mapping_for(CONTEXT)) == expanded


def test_mapping_looks_in_each_context_in_turn() -> None:
    lookup = mapping_for({"X": "first"}, {"X": "second", "Y": "only"})
    assert (lookup("X"), lookup("Y"), lookup("Z")) == ("first", "only", "$(Z)")


SERVICE = {"metadata": {"name": "backend-api"}, "spec": {"clusterIP": "10.96.0.9", "ports": [
    {"name": "http", "port": 80}, {"name": "metrics", "port": 9100, "protocol": "UDP"}]}}


def test_service_variables_have_kubelets_names() -> None:
    env = service_variables([SERVICE])
    assert env == {
        "BACKEND_API_SERVICE_HOST": "10.96.0.9", "BACKEND_API_SERVICE_PORT": "80",
        "BACKEND_API_SERVICE_PORT_HTTP": "80", "BACKEND_API_SERVICE_PORT_METRICS": "9100",
        "BACKEND_API_PORT": "tcp://10.96.0.9:80",
        "BACKEND_API_PORT_80_TCP": "tcp://10.96.0.9:80", "BACKEND_API_PORT_80_TCP_PROTO": "tcp",
        "BACKEND_API_PORT_80_TCP_PORT": "80", "BACKEND_API_PORT_80_TCP_ADDR": "10.96.0.9",
        "BACKEND_API_PORT_9100_UDP": "udp://10.96.0.9:9100", "BACKEND_API_PORT_9100_UDP_PROTO": "udp",
        "BACKEND_API_PORT_9100_UDP_PORT": "9100", "BACKEND_API_PORT_9100_UDP_ADDR": "10.96.0.9",
    }


def test_headless_services_and_services_without_ports_give_nothing() -> None:
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    portless = {"metadata": {"name": "p"}, "spec": {"clusterIP": "10.96.0.2", "ports": []}}
    assert service_variables([headless, portless]) == {}


def _svc(name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": [{"port": 443}]}}


def test_services_for_a_pod_honour_enable_service_links() -> None:
    master = [_svc("kubernetes", "10.96.0.1"), _svc("other", "10.96.0.3")]
    local = [_svc("web", "10.96.0.4")]
    pod: dict[str, Any] = {"spec": {}}
    assert [s["metadata"]["name"] for s in services_for_pod(pod, local, master)] == ["kubernetes", "web"]
    pod["spec"]["enableServiceLinks"] = False
    assert [s["metadata"]["name"] for s in services_for_pod(pod, local, master)] == ["kubernetes"]
    clash = [_svc("kubernetes", "10.96.0.77")]
    pod["spec"]["enableServiceLinks"] = True
    assert services_for_pod(pod, clash, master)[0]["spec"]["clusterIP"] == "10.96.0.77"


POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"b": "2", "a": "1"},
                 "annotations": {"note": 'say "hi"'}},
    "spec": {"nodeName": "node-a", "serviceAccountName": "robot",
             "containers": [{"name": "app", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}]},
    "status": {"podIP": "127.244.0.9", "podIPs": [{"ip": "127.244.0.9"}], "hostIP": "127.0.0.1"},
}


@pytest.mark.parametrize(("path", "value"), [
    ("metadata.name", "web-1"), ("metadata.namespace", "shop"), ("metadata.uid", "u-1"),
    ("spec.nodeName", "node-a"), ("spec.serviceAccountName", "robot"), ("status.podIP", "127.244.0.9"),
    ("status.hostIP", "127.0.0.1"), ("status.podIPs", "127.244.0.9"), ("metadata.labels['b']", "2"),
    ("metadata.annotations['note']", 'say "hi"'), ("metadata.labels['none']", ""),
    ("metadata.labels", 'a="1"\nb="2"'), ("metadata.annotations", 'note="say \\"hi\\""'),
])
def test_field_values(path: str, value: str) -> None:
    assert field_value(POD, path) == value


def test_unknown_field_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        field_value(POD, "spec.hostname")


def test_format_map_sorts() -> None:
    assert format_map({"z": "1", "m": "x"}) == 'm="x"\nz="1"'


@pytest.mark.parametrize(("text", "value"), [("250m", 0.25), ("64Mi", 64 * 1024**2), ("2", 2.0), ("1k", 1000.0)])
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == value


def test_resource_field_refs_round_up_and_default_to_the_node() -> None:
    assert resource_value(POD, "app", {"resource": "limits.cpu"}) == "1"
    assert resource_value(POD, "app", {"resource": "limits.cpu", "divisor": "1m"}) == "250"
    assert resource_value(POD, "app", {"resource": "limits.memory", "divisor": "1Mi"}) == "64"
    assert resource_value(POD, "app", {"resource": "requests.cpu"}) == "32"


class Sources:
    def __init__(self) -> None:
        self.maps = {"cm": {"colour": "blue", "bad key": "x", "size": "L"}}
        self.secrets = {"sec": {"password": "pw"}}
        self.reads: list[str] = []

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads.append(f"cm/{name}")
        return self.maps.get(name)

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads.append(f"secret/{name}")
        return self.secrets.get(name)


def _env(container: dict[str, Any], sources: Sources | None = None,
         services: dict[str, str] | None = None) -> dict[str, str]:
    return container_environment(POD, {"name": "app", **container}, sources or Sources(), services or {})


def test_env_from_then_env_then_service_variables() -> None:
    env = _env({
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "sec"}}],
        "env": [{"name": "CM_colour", "value": "red"},
                {"name": "URL", "value": "http://$(SVC_HOST)/$(CM_colour)/$(LATER)"},
                {"name": "LATER", "value": "x"},
                {"name": "SVC_HOST", "value": "mine"}],
    }, services={"SVC_HOST": "10.0.0.1", "OTHER": "o"})
    assert env["CM_colour"] == "red", "env overrides envFrom"
    assert env["CM_size"] == "L" and env["password"] == "pw" and "CM_bad key" not in env
    assert env["URL"] == "http://10.0.0.1/red/$(LATER)", "only variables declared before, then Service vars"
    assert env["SVC_HOST"] == "mine" and env["OTHER"] == "o", "declared wins; other Service vars are added"


def test_key_refs_and_optional() -> None:
    env = _env({"env": [
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "colour"}}},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "O1", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope", "optional": True}}},
        {"name": "O2", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}},
        {"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ], "envFrom": [{"configMapRef": {"name": "gone", "optional": True}}]})
    assert env == {"C": "blue", "S": "pw", "F": "127.244.0.9"}


def test_each_source_is_read_once() -> None:
    sources = Sources()
    _env({"env": [{"name": n, "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "colour"}}} for n in "XYZ"]},
         sources)
    assert sources.reads == ["cm/cm"]


@pytest.mark.parametrize(("var", "message"), [
    ({"configMapKeyRef": {"name": "cm", "key": "nope"}}, "couldn't find key nope in ConfigMap shop/cm"),
    ({"secretKeyRef": {"name": "sec", "key": "nope"}}, "couldn't find key nope in Secret shop/sec"),
    ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
    ({"secretKeyRef": {"name": "gone", "key": "k"}}, 'secret "gone" not found'),
])
def test_missing_required_sources_are_config_errors(var: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _env({"env": [{"name": "V", "valueFrom": var}]})
    assert str(error.value) == message


def test_missing_env_from_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match='secret "gone" not found'):
        _env({"envFrom": [{"secretRef": {"name": "gone"}}]})


PYTHON = ImageConfig((), ("python3",), {})
NOTHING = ImageConfig(("/entry",), (), {})


@pytest.mark.parametrize(("image", "command", "args", "argv"), [
    (PYTHON, None, None, ["python3"]),
    (PYTHON, None, ["python3", "-V"], ["python3", "-V"]),
    (PYTHON, ["sh"], None, ["sh"]),
    (PYTHON, ["sh"], ["-c", "x"], ["sh", "-c", "x"]),
    (NOTHING, None, ["a"], ["/entry", "a"]),
    (NOTHING, ["b"], None, ["b"]),
])
def test_command_line_follows_docker(image: ImageConfig, command: list[str] | None, args: list[str] | None,
                                     argv: list[str]) -> None:
    assert command_line(image, command, args) == argv
