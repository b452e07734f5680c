"""A container's environment as kubelet builds it (``kubelet_pods.go: makeEnvironmentVariables``).

``envFrom`` first, then ``env`` in order (values expanded against what is declared so far and the Service
variables; ``valueFrom`` resolved), then the Service variables not already set. A missing ConfigMap,
Secret or key that is not ``optional`` raises :class:`ConfigError`: the container does not start and is
reported waiting with reason ``CreateContainerConfigError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

from kubelet.expansion import expand, mapping_for

Obj = dict[str, Any]
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
MASTER_NAMESPACE = "default"
NODE_ALLOCATABLE = {"cpu": 32, "memory": 128 * 1024**3, "ephemeral-storage": 500 * 1024**3}


class ConfigError(Exception):
    """The container's configuration cannot be resolved (kubelet: CreateContainerConfigError)."""


class Sources(Protocol):
    """Where ConfigMaps and Secrets come from; None means not found (other errors raise)."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


# ---- Service variables ---------------------------------------------------------------------------
def _var_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_variables(services: list[Obj]) -> dict[str, str]:
    """``<SVC>_SERVICE_HOST``/``_PORT``/``_PORT_<NAME>`` and the docker-link ``<SVC>_PORT...`` variables."""
    env: dict[str, str] = {}
    for service in services:
        spec = service.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = _var_name(service["metadata"]["name"])
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_var_name(port['name'])}"] = str(port["port"])
        for index, port in enumerate(ports):
            protocol = (port.get("protocol") or "TCP").upper()
            url = f"{protocol.lower()}://{ip}:{port['port']}"
            if index == 0:
                env[f"{prefix}_PORT"] = url
            base = f"{prefix}_PORT_{port['port']}_{protocol}"
            env[base] = url
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def services_for_pod(pod: Obj, namespace_services: list[Obj], master_services: list[Obj]) -> list[Obj]:
    """The Services a pod's containers get variables for: ``kubernetes`` from the default namespace, and
    (unless ``enableServiceLinks: false``) every Service of the pod's namespace, which win on a name clash."""
    chosen: dict[str, Obj] = {}
    for service in master_services:
        if service["metadata"]["name"] == "kubernetes":
            chosen["kubernetes"] = service
    if pod["spec"].get("enableServiceLinks", True) is not False:
        for service in namespace_services:
            chosen[service["metadata"]["name"]] = service
    return [chosen[name] for name in sorted(chosen)]


# ---- downward API ----------------------------------------------------------------------------------
def format_map(values: Mapping[str, str]) -> str:
    """Labels or annotations as a downward API file shows them: ``key="value"`` lines, sorted."""
    return "\n".join(f"{k}={json.dumps(values[k])}" for k in sorted(values))


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Obj, path: str) -> str:
    """The value of a ``fieldRef.fieldPath`` for this pod (the paths kubelet accepts)."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]) or {})
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldPath {path!r}")


_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 1000**2, "G": 1000**3,
          "T": 1000**4, "m": 0.001}


def quantity(text: str | int | float) -> float:
    """A resource quantity (``250m``, ``64Mi``, ``2``) as a number."""
    value = str(text)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * _UNITS[suffix]
    return float(value)


def resource_value(pod: Obj, container_name: str, ref: Obj) -> str:
    """A ``resourceFieldRef``: the container's limit or request, or the node's allocatable when unset."""
    kind, _, resource = ref["resource"].partition(".")
    container = next((c for c in pod["spec"]["containers"] if c["name"] == (ref.get("containerName") or
                                                                          container_name)), {})
    resources = (container.get("resources") or {}).get(kind) or {}
    value = quantity(resources[resource]) if resource in resources else float(NODE_ALLOCATABLE.get(resource, 0))
    divisor = quantity(ref.get("divisor") or 1)
    return str(math.ceil(value / divisor))


# ---- the whole environment -------------------------------------------------------------------------
def _lookup(sources: Sources, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
    return sources.config_map(namespace, name) if kind == "ConfigMap" else sources.secret(namespace, name)


def container_environment(pod: Obj, container: Obj, sources: Sources, service_env: Mapping[str, str]) -> dict[str, str]:
    """The variables kubelet gives ``container`` (not the image's own, not HOSTNAME), in kubelet's order."""
    namespace = pod["metadata"]["namespace"]
    declared: dict[str, str] = {}
    cache: dict[tuple[str, str], Mapping[str, str] | None] = {}

    def source(kind: str, name: str) -> Mapping[str, str] | None:
        if (kind, name) not in cache:
            cache[(kind, name)] = _lookup(sources, kind, namespace, name)
        return cache[(kind, name)]

    for env_from in container.get("envFrom") or []:
        ref, kind = (env_from["configMapRef"], "ConfigMap") if env_from.get("configMapRef") else (
            env_from.get("secretRef"), "Secret")
        if not ref:
            continue
        data = source(kind, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        for key, value in data.items():
            name = (env_from.get("prefix") or "") + key
            if ENV_NAME.match(name):
                declared[name] = value

    lookup = mapping_for(declared, service_env)
    for var in container.get("env") or []:
        value = var.get("value") or ""
        value_from = var.get("valueFrom")
        if value:
            value = expand(value, lookup)
        elif value_from:
            if value_from.get("fieldRef"):
                value = field_value(pod, value_from["fieldRef"]["fieldPath"])
            elif value_from.get("resourceFieldRef"):
                value = resource_value(pod, container["name"], value_from["resourceFieldRef"])
            else:
                ref, kind = (value_from["configMapKeyRef"], "ConfigMap") if value_from.get("configMapKeyRef") else (
                    value_from.get("secretKeyRef"), "Secret")
                if not ref:
                    continue
                data = source(kind, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    if data is None:
                        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
                    raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
                value = data[ref["key"]]
        declared[var["name"]] = value

    result = dict(declared)
    for name, value in service_env.items():
        result.setdefault(name, value)
    return result
