"""The service proxy's routing table (pure, no I/O): Services and EndpointSlices in, listeners out.

For every TCP port of every Service that has a ClusterIP (not headless, not ExternalName) the table gives a
``Route``: the address to listen on (``spec.clusterIP:port``) and the ready backends, taken from the
Service's EndpointSlices (label ``kubernetes.io/service-name``) whose port has the Service port's name, as
kube-proxy does. An endpoint is ready when ``conditions.ready`` is true or unset. Only loopback backends
are routable from this machine; other addresses (such as simulated pod IPs) are left out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

Obj = dict[str, Any]
ObjKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class Route:
    """One Service port: where it listens and which ready endpoints new connections go to."""

    service: ObjKey
    port_name: str
    cluster_ip: str
    port: int
    backends: tuple[Backend, ...]

    @property
    def address(self) -> tuple[str, int]:
        return self.cluster_ip, self.port

    def label(self) -> str:
        namespace, name = self.service
        return f"{namespace}/{name}:{self.port_name or self.port}"


@dataclass(frozen=True)
class Slice:
    """What the proxy needs of one EndpointSlice."""

    service: ObjKey
    ports: tuple[tuple[str, int], ...]  # (name, port) of its TCP ports
    ready_ips: tuple[str, ...]


def key_of(obj: Obj) -> ObjKey:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def routable(ip: str) -> bool:
    """Whether this machine can reach ``ip`` (loopback only: no traffic leaves the host)."""
    try:
        return ipaddress.ip_address(ip) in LOOPBACK
    except ValueError:
        return False


def parse_slice(obj: Obj) -> Slice | None:
    """The TCP ports and ready IPv4 addresses of an EndpointSlice; None if it belongs to no Service."""
    namespace = obj["metadata"].get("namespace", "")
    service = (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service or obj.get("addressType", "IPv4") != "IPv4":
        return None
    ports = tuple(
        (p.get("name") or "", int(p["port"]))
        for p in obj.get("ports") or []
        if p.get("port") is not None and (p.get("protocol") or "TCP") == "TCP"
    )
    ready: list[str] = []
    for endpoint in obj.get("endpoints") or []:
        if (endpoint.get("conditions") or {}).get("ready") is False:
            continue
        ready.extend(ip for ip in endpoint.get("addresses") or [] if routable(ip))
    return Slice((namespace, service), ports, tuple(ready))


def service_ports(service: Obj) -> list[tuple[str, str, int]]:
    """(port name, cluster IP, port) of each TCP port a Service exposes on its ClusterIP."""
    spec = service.get("spec") or {}
    cluster_ip = spec.get("clusterIP") or ""
    if spec.get("type") == "ExternalName" or cluster_ip in ("", "None") or not routable(cluster_ip):
        return []
    return [
        (p.get("name") or "", cluster_ip, int(p["port"]))
        for p in spec.get("ports") or []
        if (p.get("protocol") or "TCP") == "TCP"
    ]


@dataclass
class ServiceTable:
    """Services and EndpointSlices as last seen; ``routes`` derives a Service's listeners from them."""

    services: dict[ObjKey, Obj] = field(default_factory=dict)
    slices: dict[ObjKey, Slice] = field(default_factory=dict)
    _slices_of: dict[ObjKey, set[ObjKey]] = field(default_factory=dict)  # service -> its slice keys

    def apply_service(self, kind: str, obj: Obj) -> set[ObjKey]:
        """Apply one watch event (ADDED, MODIFIED, DELETED); return the Services whose routes may change."""
        key = key_of(obj)
        if kind == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = obj
        return {key}

    def apply_slice(self, kind: str, obj: Obj) -> set[ObjKey]:
        key = key_of(obj)
        affected: set[ObjKey] = set()
        old = self.slices.pop(key, None)
        if old is not None:
            self._slices_of.get(old.service, set()).discard(key)
            affected.add(old.service)
        parsed = None if kind == "DELETED" else parse_slice(obj)
        if parsed is not None:
            self.slices[key] = parsed
            self._slices_of.setdefault(parsed.service, set()).add(key)
            affected.add(parsed.service)
        return affected

    def replace_services(self, items: Iterable[Obj]) -> set[ObjKey]:
        """A fresh listing replaces everything known; return every Service that was or is known."""
        before = set(self.services)
        self.services = {key_of(obj): obj for obj in items}
        return before | set(self.services)

    def replace_slices(self, items: Iterable[Obj]) -> set[ObjKey]:
        before = {s.service for s in self.slices.values()}
        self.slices.clear()
        self._slices_of.clear()
        for obj in items:
            self.apply_slice("ADDED", obj)
        return before | {s.service for s in self.slices.values()}

    def routes(self, service: ObjKey) -> list[Route]:
        """The listeners of one Service, each with its ready backends in a stable order."""
        obj = self.services.get(service)
        if obj is None:
            return []
        slices = [self.slices[k] for k in sorted(self._slices_of.get(service, ()))]
        result = []
        for port_name, cluster_ip, port in service_ports(obj):
            backends: set[Backend] = set()
            for piece in slices:
                for name, target in piece.ports:
                    if name == port_name:
                        backends.update(Backend(ip, target) for ip in piece.ready_ips)
            ordered = tuple(sorted(backends, key=lambda b: (ipaddress.ip_address(b.ip), b.port)))
            result.append(Route(service, port_name, cluster_ip, port, ordered))
        return result
