"""The service proxy's routing table (tests/cluster/proxytable.py): Services and EndpointSlices to routes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from proxytable import Backend, Route, ServiceTable, parse_slice, routable

NS = "shop"


def service(name: str = "web", *, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"clusterIP": "127.96.0.10", "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}]}
    return {"metadata": {"namespace": NS, "name": name}, "spec": {**body, **spec}}


def endpoint(ip: str, ready: bool | None = True) -> dict[str, Any]:
    return {"addresses": [ip], **({} if ready is None else {"conditions": {"ready": ready}})}


def endpoint_slice(
    name: str = "web-abc",
    *,
    service: str | None = "web",
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": service} if service else {}
    return {
        "metadata": {"namespace": NS, "name": name, "labels": labels},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        **extra,
    }


def table(*objects: dict[str, Any]) -> ServiceTable:
    result = ServiceTable()
    for obj in objects:
        if "spec" in obj:
            result.apply_service("ADDED", obj)
        else:
            result.apply_slice("ADDED", obj)
    return result


def backends(result: ServiceTable, name: str = "web") -> list[tuple[tuple[str, int], tuple[Backend, ...]]]:
    return [(r.address, r.backends) for r in result.routes((NS, name))]


def test_a_service_port_routes_to_the_ready_endpoints_at_the_port_of_the_same_name() -> None:
    ports = [{"name": "http", "port": 80}, {"name": "metrics", "port": 81}]
    slice_ports = [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}]
    result = table(
        service(ports=ports),
        endpoint_slice(endpoints=[endpoint("127.0.0.5"), endpoint("127.0.0.4")], ports=slice_ports),
    )
    assert result.routes((NS, "web")) == [
        Route((NS, "web"), "http", "127.96.0.10", 80, (Backend("127.0.0.4", 8080), Backend("127.0.0.5", 8080))),
        Route((NS, "web"), "metrics", "127.96.0.10", 81, (Backend("127.0.0.4", 9090), Backend("127.0.0.5", 9090))),
    ]


def test_unnamed_single_port_matches_the_unnamed_endpoint_port() -> None:
    result = table(
        service(ports=[{"port": 80, "targetPort": 8080}]),
        endpoint_slice(endpoints=[endpoint("127.0.0.4")], ports=[{"port": 8080}]),
    )
    assert backends(result) == [(("127.96.0.10", 80), (Backend("127.0.0.4", 8080),))]


def test_not_ready_endpoints_are_left_out_and_unknown_readiness_counts_as_ready() -> None:
    endpoints = [endpoint("127.0.0.4", ready=False), endpoint("127.0.0.5", ready=None), endpoint("127.0.0.6")]
    result = table(service(), endpoint_slice(endpoints=endpoints))
    assert backends(result) == [(("127.96.0.10", 80), (Backend("127.0.0.5", 8080), Backend("127.0.0.6", 8080)))]


def test_addresses_this_machine_cannot_reach_are_left_out() -> None:
    result = table(service(), endpoint_slice(endpoints=[endpoint("10.244.0.7"), endpoint("127.244.0.7")]))
    assert backends(result) == [(("127.96.0.10", 80), (Backend("127.244.0.7", 8080),))]
    assert not routable("10.96.0.1") and not routable("not-an-ip") and routable("127.96.0.1")


@pytest.mark.parametrize(
    "spec",
    [
        {"clusterIP": "None"},
        {"clusterIP": ""},
        {"type": "ExternalName", "externalName": "example.com"},
        {"clusterIP": "10.96.0.10"},
        {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
    ],
    ids=["headless", "no-cluster-ip", "external-name", "not-loopback", "udp-only"],
)
def test_services_without_a_loopback_tcp_cluster_port_get_no_route(spec: dict[str, Any]) -> None:
    result = table(service(**spec), endpoint_slice(endpoints=[endpoint("127.0.0.4")]))
    assert result.routes((NS, "web")) == []


def test_slices_of_one_service_are_merged_and_other_services_slices_ignored() -> None:
    result = table(
        service(),
        endpoint_slice("web-1", endpoints=[endpoint("127.0.0.4"), endpoint("127.0.0.5")]),
        endpoint_slice("web-2", endpoints=[endpoint("127.0.0.5"), endpoint("127.0.0.6")]),
        endpoint_slice("other-1", service="other", endpoints=[endpoint("127.0.0.9")]),
        endpoint_slice("orphan", service=None, endpoints=[endpoint("127.0.0.8")]),
        endpoint_slice("web-udp", endpoints=[endpoint("127.0.0.7")], ports=[{"name": "http", "port": 8080,
                                                                              "protocol": "UDP"}]),
    )
    assert [str(b) for b in result.routes((NS, "web"))[0].backends] == [
        "127.0.0.4:8080", "127.0.0.5:8080", "127.0.0.6:8080"]


def test_watch_events_change_the_routes_and_name_the_services_they_affect() -> None:
    result = table(service(), service("other"))
    first = endpoint_slice(endpoints=[endpoint("127.0.0.4")])
    assert result.apply_slice("ADDED", first) == {(NS, "web")}
    moved = endpoint_slice(service="other", endpoints=[endpoint("127.0.0.4")])
    assert result.apply_slice("MODIFIED", moved) == {(NS, "web"), (NS, "other")}
    assert backends(result) == [(("127.96.0.10", 80), ())]
    assert backends(result, "other") == [(("127.96.0.10", 80), (Backend("127.0.0.4", 8080),))]
    assert result.apply_slice("DELETED", moved) == {(NS, "other")}
    assert backends(result, "other") == [(("127.96.0.10", 80), ())]
    assert result.apply_service("DELETED", service("other")) == {(NS, "other")}
    assert result.routes((NS, "other")) == []


def test_a_new_listing_replaces_everything_and_names_what_was_or_is_known() -> None:
    result = table(service(), service("gone"), endpoint_slice(endpoints=[endpoint("127.0.0.4")]))
    assert result.replace_services([service(), service("new")]) == {(NS, "web"), (NS, "gone"), (NS, "new")}
    fresh = endpoint_slice("new-1", service="new", endpoints=[endpoint("127.0.0.5")])
    assert result.replace_slices([fresh]) == {(NS, "web"), (NS, "new")}
    assert backends(result) == [(("127.96.0.10", 80), ())]
    assert backends(result, "new") == [(("127.96.0.10", 80), (Backend("127.0.0.5", 8080),))]
    assert result.routes((NS, "gone")) == []


def test_parse_slice_ignores_other_address_families() -> None:
    assert parse_slice(endpoint_slice(endpoints=[endpoint("::1")], addressType="IPv6")) is None
    parsed = parse_slice(endpoint_slice(endpoints=[endpoint("127.0.0.4")]))
    assert parsed is not None and parsed.ready_ips == ("127.0.0.4",) and parsed.ports == (("http", 8080),)
