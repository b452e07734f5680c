"""The in-memory view of the release Deployments and the Services: what it keeps, newest version wins
(watch events and write responses in any order), deletions with tombstones, and the planner's reads from it
without any API request."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from bluegreen.core.errors import ClusterError
from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.kube.cluster import KubeCluster
from bluegreen.kube.states import deployment_record, service_record
from bluegreen.kube.view import ClusterView, older


def deployment(rv: str, *, name: str = "shop-blue", release: str | None = "shop", replicas: int = 3,
               ready: int = 3) -> dict[str, Any]:
    labels = {"app": "shop"}
    if release is not None:
        labels |= {"bluegreen.dev/release": release, "bluegreen.dev/color": name.rsplit("-", 1)[-1]}
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": rv, "generation": 4,
                     "labels": labels,
                     "annotations": {"bluegreen.dev/template-hash": "h1", "bluegreen.dev/commit": "c1",
                                     "bluegreen.dev/rollout-started-at": "2026-01-02T03:04:05Z",
                                     "bluegreen.dev/abandoned-commit": "c0"},
                     "managedFields": [{"manager": "x" * 1000}]},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": "shop:v1"}]}}},
        "status": {"observedGeneration": 4, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready,
                   "availableReplicas": ready},
    }


def service(rv: str, color: str | None = "blue", name: str = "shop") -> dict[str, Any]:
    selector = {"app": "shop"} | ({"bluegreen.dev/color": color} if color else {})
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": rv},
            "spec": {"selector": selector}}


def test_the_failure_mark_with_its_reason_wins_over_the_older_one() -> None:
    body = deployment("18")
    body["metadata"]["annotations"] |= {"bluegreen.dev/failed-commit": "c2", "bluegreen.dev/failed-reason": "Aborted",
                                        "bluegreen.dev/failed-message": "aborted by hand"}
    record = deployment_record(body)
    assert record is not None
    state = record.state
    assert (state.failed_commit, state.failed_reason, state.failed_message) == ("c2", "Aborted", "aborted by hand")
    del body["metadata"]["annotations"]["bluegreen.dev/failed-commit"]
    legacy = deployment_record(body)
    assert legacy is not None and (legacy.state.failed_commit, legacy.state.failed_reason) == \
        ("c0", "ProgressDeadlineExceeded")


def test_the_copies_a_colour_names_are_kept() -> None:
    body = deployment("19")
    record = deployment_record(body)
    assert record is not None and (record.state.autoscaler, record.state.disruption_budget) == (None, None)
    body["metadata"]["annotations"] |= {"bluegreen.dev/autoscaler": "web-blue",
                                        "bluegreen.dev/disruption-budget": "budget-blue"}
    record = deployment_record(body)
    assert record is not None and (record.state.autoscaler, record.state.disruption_budget) == ("web-blue",
                                                                                                "budget-blue")


def test_a_service_keeps_its_cluster_ip_and_ports_for_http_checks() -> None:
    body = service("5")
    body["spec"] |= {"clusterIP": "10.0.0.7", "ports": [{"port": 80, "targetPort": 8080}, {"port": 9090}]}
    record = service_record(body)
    assert (record.address(None), record.address(9090), record.address(81)) == \
        (("10.0.0.7", 80), ("10.0.0.7", 9090), None)
    headless = service_record({**body, "spec": {**body["spec"], "clusterIP": "None"}})
    assert headless.address(None) is None
    view = ClusterView()
    view.observe_service(body)
    assert view.service("ns", "shop") == record
    kube = KubeCluster(client.ApiClient(), view)
    assert kube.service_address("ns", "shop", 9090) == ("10.0.0.7", 9090)
    assert kube.service_address("ns", "nope", None) is None


def test_a_deployment_is_kept_as_the_planners_state_only() -> None:
    record = deployment_record(deployment("17", ready=2))
    assert record is not None
    assert (record.release, record.uid, record.resource_version) == ("shop", "uid-shop-blue", "17")
    assert record.state == ColorState(
        color=Color.BLUE, exists=True, template_hash="h1", commit="c1", replicas=3, generation=4,
        observed_generation=4, status_replicas=3, updated_replicas=3, ready_replicas=2, available_replicas=2,
        rollout_started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), failed_commit="c0")
    assert not hasattr(record, "__dict__"), "slots: no room for a body"


@pytest.mark.parametrize(("body", "expected"), [
    ({"metadata": {"name": "shop-green", "labels": {"bluegreen.dev/release": "shop"}}},
     ColorState(color=Color.GREEN, exists=True, replicas=1)),  # no status yet; replicas defaults to 1
    ({"metadata": {"name": "odd", "labels": {"bluegreen.dev/release": "shop", "bluegreen.dev/color": "green"}},
      "spec": {"replicas": 0}},
     ColorState(color=Color.GREEN, exists=True, replicas=0)),  # the colour from the label when the name lacks it
])
def test_sparse_deployments_parse(body: dict[str, Any], expected: ColorState) -> None:
    record = deployment_record(body)
    assert record is not None and record.state == expected


def test_a_deployment_without_the_release_label_is_not_kept() -> None:
    view = ClusterView()
    assert deployment_record(deployment("1", release=None)) is None
    assert view.observe_deployment(deployment("1", release=None)) is False
    assert view.sizes() == (0, 0)


@pytest.mark.parametrize(("versions", "expected"), [
    ("9 10", False), ("10 9", True), ("10 10", False), ("", False), ("abc 1", False), ("1 abc", False),
])
def test_resource_versions_compare_as_numbers_and_opaque_ones_never_count_as_older(versions: str,
                                                                                   expected: bool) -> None:
    later, earlier = ([*versions.split(), "", ""])[:2]
    assert older(earlier, later) is expected


# Each step: ("seen", rv) a watch event or a write's response; ("gone", rv) a deletion; ("unlabelled", rv) the
# Deployment without our label (it left the selector); ("later", seconds) time passes.
@pytest.mark.parametrize(("steps", "kept"), [
    ([("seen", "5"), ("seen", "3")], "5"),  # a stale event after a newer write response: ignored
    ([("seen", "3"), ("seen", "5")], "5"),
    ([("seen", "5"), ("seen", "5")], "5"),
    ([("seen", "5"), ("gone", "6")], None),
    ([("seen", "5"), ("gone", "6"), ("seen", "5")], None),  # a write's response after the deletion: stays gone
    ([("seen", "5"), ("gone", "6"), ("seen", "6")], None),
    ([("seen", "5"), ("gone", "6"), ("seen", "9")], "9"),  # created again
    ([("gone", "6"), ("seen", "4")], None),
    ([("seen", "5"), ("gone", "4")], "5"),  # a deletion older than what we know: not this object's
    ([("seen", "5"), ("unlabelled", "6")], None),  # the label was removed: not ours any more
    ([("seen", "5"), ("unlabelled", "4")], "5"),
    ([("seen", "5"), ("gone", "6"), ("later", 301.0), ("seen", "5")], "5"),  # tombstones do not last forever
    ([("seen", "5"), ("gone", "6"), ("later", 299.0), ("seen", "5")], None),
    ([("seen", "a"), ("seen", "b")], "b"),  # opaque versions: the latest news wins
])
def test_the_newest_version_wins_whatever_the_order(steps: list[tuple[str, Any]], kept: str | None) -> None:
    now = [1000.0]
    view = ClusterView(clock=lambda: now[0], tombstone_seconds=300.0)
    for kind, value in steps:
        if kind == "seen":
            view.observe_deployment(deployment(value))
        elif kind == "gone":
            view.deployment_gone(deployment(value))
        elif kind == "unlabelled":
            view.observe_deployment(deployment(value, release=None))
        else:
            now[0] += value
    record = view.deployment("ns", "shop-blue")
    assert (record.resource_version if record else None) == kept


def test_tombstones_are_dropped_once_expired() -> None:
    now = [0.0]
    view = ClusterView(clock=lambda: now[0], tombstone_seconds=10.0)
    for i in range(50):
        view.observe_deployment(deployment("5", name=f"r{i}-blue"))
        view.deployment_gone(deployment("6", name=f"r{i}-blue"))
        now[0] += 1.0
    assert len(view._deployments._gone) <= 11


def test_a_deletion_reports_the_release_the_deployment_belonged_to() -> None:
    view = ClusterView()
    view.observe_deployment(deployment("5"))
    gone = view.deployment_gone(deployment("6", release=None))  # a DELETED event that no longer has the label
    assert gone is not None and gone.release == "shop"
    assert view.deployment_gone(deployment("7")) is None


@pytest.mark.parametrize(("steps", "expected"), [
    ([service("5", "blue")], ServiceState("shop", exists=True, color=Color.BLUE)),
    ([service("5", "blue"), service("7", "green")], ServiceState("shop", exists=True, color=Color.GREEN)),
    ([service("7", "green"), service("5", "blue")], ServiceState("shop", exists=True, color=Color.GREEN)),
    ([service("5", None)], ServiceState("shop", exists=True, color=None)),
    ([service("5", "purple")], ServiceState("shop", exists=True, color=None)),
    ([service("5", "blue"), ("gone", "6")], ServiceState("shop")),
    ([service("5", "blue"), ("gone", "6"), service("5", "blue")], ServiceState("shop")),
    ([], ServiceState("shop")),
])
def test_service_states_from_the_view(steps: list[Any], expected: ServiceState) -> None:
    cluster = offline_cluster()
    for step in steps:
        if isinstance(step, tuple):
            cluster.view.service_gone(service(step[1]))
        else:
            cluster.view.observe_service(step)
    assert cluster.service_state("ns", "shop") == expected


def offline_cluster() -> KubeCluster:
    """A KubeCluster whose API server cannot be reached: any request would fail the test."""
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"
    return KubeCluster(client.ApiClient(configuration), ClusterView())


def test_colour_states_come_from_the_view_without_a_request() -> None:
    cluster = offline_cluster()
    release = ReleaseRef("ns", "shop", "u")
    assert cluster.color_state(release, Color.GREEN) == ColorState(color=Color.GREEN)
    cluster.view.observe_deployment(deployment("5", name="shop-green", ready=1))
    state = cluster.color_state(release, Color.GREEN)
    assert state.exists and state.color is Color.GREEN and state.ready_replicas == 1
    assert cluster.color_state(release, Color.BLUE) == ColorState(color=Color.BLUE)


def test_a_deployment_of_another_release_under_our_name_is_a_conflict() -> None:
    cluster = offline_cluster()
    cluster.view.observe_deployment(deployment("5", name="shop-blue", release="cart"))
    with pytest.raises(ClusterError) as raised:
        cluster.color_state(ReleaseRef("ns", "shop", "u"), Color.BLUE)
    assert raised.value.reason == "DeploymentConflict" and "shop-blue" in raised.value.message


def test_events_and_write_responses_from_many_threads_leave_the_newest() -> None:
    view = ClusterView()
    barrier = threading.Barrier(4)

    def feed(offset: int) -> None:
        barrier.wait()
        for rv in range(offset, 2000, 4):
            view.observe_deployment(deployment(str(rv)))
            view.observe_service(service(str(rv)))

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deployed, served = view.deployment("ns", "shop-blue"), view.service("ns", "shop")
    assert deployed is not None and deployed.resource_version == "1999"
    assert served is not None and served.resource_version == "1999"
