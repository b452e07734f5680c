"""Zero downtime with real requests: the real web app (tests/app/webapp.py) released as ``local/python:3`` pods,
and a bounded load of real HTTP requests (80/s, a new connection each, 5 s timeout) sent to the Service's
ClusterIP from the moment it first answers to the end of the test, without a gap. Through the first release, a
cut-over, a warm rollback (``git revert``), an abandoned release whose readiness really fails, the scale-down of
the previous colour and a cold rollback, every request must succeed and the version in the answers must change
exactly once per switch, never back and forth. Each phase prints how many requests it sent and how many failed.
The Endpoints recorder runs as well: the Service never had a moment without a ready address. In the second
test, slow requests (answered after 10 s, 2/s) run alongside: some are in flight on a colour when its pods begin
terminating, and every one of them must be answered (preStop, then the app's drain; appmanifest.py says why
those values).

Two releases, so that each phase follows the previous one naturally: the first keeps the previous colour warm
(scaleDownDelaySeconds 300) for the warm rollback; the second scales it down after 5 s for the cold one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nodepods import get
from waiting import wait_until
from zerodowntime import (
    SLOW_SECONDS,
    PhasedLoad,
    answers,
    in_flight,
    service_url,
    slow_load,
    wait_answering,
    zero_downtime_problems,
)

from conftest import Cluster, EndpointsRecorder, GitRepo, Operator

EndpointsFactory = Callable[..., EndpointsRecorder]


def _cluster_ip(cluster: Cluster) -> str:
    return str(cluster.core.read_namespaced_service("shop", cluster.namespace).spec.cluster_ip)


def _pods(cluster: Cluster, color: str) -> list[object]:
    return list(cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector=f"bluegreen.dev/release=shop,bluegreen.dev/color={color}").items)


def _scaled_down_and_gone(cluster: Cluster, color: str) -> bool:
    deployment = cluster.deployment(color)
    return deployment is not None and deployment.spec.replicas == 0 and not _pods(cluster, color)


def _wait_scaled_down(cluster: Cluster, color: str, timeout: float = 40) -> float | None:
    """Wait until ``color`` is at 0 replicas and its pods are gone; return when (wall clock) its pods were
    first seen terminating (None: never seen)."""
    seen: list[float] = []

    def done() -> bool:
        if not seen and any(p.metadata.deletion_timestamp for p in _pods(cluster, color)):  # type: ignore[attr-defined]
            seen.append(time.time())
        return _scaled_down_and_gone(cluster, color)
    wait_until(done, timeout=timeout, interval=0.05,
               what=f"{color} scaled to 0 after scaleDownDelaySeconds and its pods gone")
    return seen[0] if seen else None


def _switches(recorded: EndpointsRecorder, *sets: frozenset[str]) -> list[frozenset[str]]:
    """The distinct ready-address sets from the first time ``sets[0]`` was complete on."""
    seen = recorded.distinct_sets()
    return seen[seen.index(sets[0]):] if sets[0] in seen else seen


def test_first_release_cut_over_and_warm_rollback_serve_every_request(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints: EndpointsFactory) -> None:
    cluster.create_service()
    ip = _cluster_ip(cluster)
    with endpoints() as recorded:
        v1 = repo.release_app("v1")
        cluster.create_release(repo)  # scaleDownDelaySeconds 300: blue, then green, stay warm
        wait_answering(ip)  # the first pod is ready: load from the first answer on
        with PhasedLoad(service_url(ip)) as load:
            load.phase("first release", ["v1"])
            cluster.wait_serving(v1, "blue", timeout=60)
            load.wait_more("v1", 100)
            blue = cluster.pod_ips("blue")

            load.phase("cut-over", ["v1", "v2"])
            v2 = repo.release_app("v2")
            cluster.check_now()
            wait_until(lambda: (d := cluster.deployment("green")) is not None and d.status.replicas, timeout=30,
                       what="green being brought up")
            cluster.wait_serving(v2, "green", timeout=60)
            load.wait_more("v2", 150)
            green = cluster.pod_ips("green")

            load.phase("warm rollback", ["v2", "v1"])
            reverted = repo.revert()
            cluster.check_now()
            cluster.wait_serving(reverted, "blue", timeout=30)
            load.wait_more("v1", 150)
    load.verdict()

    first_ready = next(i for i, (_, ips) in enumerate(recorded.history) if ips)
    assert all(ips for _, ips in recorded.history[first_ready:]), \
        f"no ready endpoint at some moment after the first: {recorded.distinct_sets()}"
    # The versions in the responses (load.verdict) prove each switch; the Endpoints watch has once been seen to
    # miss a switch on a loaded machine, so it must only never show a moment with no pod or with other pods.
    assert set(_switches(recorded, frozenset(blue))) <= {frozenset(blue), frozenset(green)}, \
        f"traffic went {recorded.distinct_sets()}"
    assert cluster.pod_ips("blue") == blue, "the warm rollback went back to the very pods that served v1"
    assert cluster.status()["history"][0]["outcome"] == "RolledBack"


def test_abandoned_release_scale_down_and_cold_rollback_serve_every_request(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints: EndpointsFactory) -> None:
    cluster.create_service()
    ip = _cluster_ip(cluster)
    v1 = repo.release_app("v1")
    cluster.create_release(repo, scaleDownDelaySeconds=5, progressDeadlineSeconds=15)
    cluster.wait_serving(v1, "blue", timeout=60)
    blue = cluster.pod_ips("blue")

    # Besides the load, slow requests (10 s each) are in flight while each colour is scaled down: they must finish.
    with endpoints() as recorded, PhasedLoad(service_url(ip)) as load, slow_load(service_url(ip)) as slow:
        load.phase("abandoned release", ["v1"])
        load.wait_more("v1", 50)
        broken = repo.release_app("v2", failing_health=True, message="release v2 (its health check fails)")
        cluster.check_now()
        # Green really runs v2 and really fails its readiness probe: the app answers 503 on /healthz.
        green_ip = wait_until(lambda: next((p.status.pod_ip for p in _pods(cluster, "green") if p.status.pod_ip
                                            and answers(p.status.pod_ip, 8080) == (200, "v2")), None),
                              timeout=30, what="a v2 pod answering")
        status, body = get(green_ip, "/healthz")
        assert (status, body.strip()) == (503, "unhealthy: flag file /etc/hosts exists")
        wait_until(lambda: (d := cluster.deployment("green")) is not None and d.spec.replicas == 0
                   and (d.metadata.annotations or {}).get("bluegreen.dev/failed-commit") == broken,
                   timeout=40, what="v2 abandoned after progressDeadlineSeconds")
        assert cluster.color() == "blue"
        # The status patch with the history entry follows the scale-down that the watch above saw.
        wait_until(lambda: cluster.status()["history"][0]["outcome"] == "Abandoned", timeout=10,
                   what="the abandoned release in the history")
        wait_until(lambda: _scaled_down_and_gone(cluster, "green"), timeout=30, what="the v2 pods gone")
        fixed = repo.revert()  # the team reverts the broken commit: v1's manifest again, which blue runs
        cluster.check_now()
        cluster.wait_serving(fixed, "blue", timeout=30)
        load.wait_more("v1", 50)

        load.phase("cut-over", ["v1", "v3"])
        v3 = repo.release_app("v3")
        cluster.check_now()
        cluster.wait_serving(v3, "green", timeout=60)
        load.wait_more("v3", 100)
        green = cluster.pod_ips("green")

        load.phase("scale-down of blue", ["v3"])
        blue_terminating = _wait_scaled_down(cluster, "blue")
        load.wait_more("v3", 50)

        load.phase("cold rollback", ["v3", "v1"])
        rolled_back = repo.revert()  # back to v1, whose colour (blue) is at 0 replicas
        cluster.check_now()
        wait_until(lambda: (d := cluster.deployment("blue")) is not None and d.spec.replicas == 2, timeout=30,
                   what="blue scaled back up")
        assert cluster.color() == "green", "no switch before blue is ready"
        cluster.wait_serving(rolled_back, "blue", timeout=60)
        load.wait_more("v1", 100)
        blue_again = cluster.pod_ips("blue")

        load.phase("scale-down of green", ["v1"])
        green_terminating = _wait_scaled_down(cluster, "green")
        load.wait_more("v1", 50)
    load.verdict()
    slow_report = slow.report
    assert blue_terminating and green_terminating, "the pods of each colour were seen terminating"
    draining = {"blue": in_flight(slow_report, blue_terminating, "v1"),
                "green": in_flight(slow_report, green_terminating, "v3")}
    print(f"zero-downtime slow requests ({SLOW_SECONDS}s each): {slow_report.sent} requests, {slow_report.failed} "
          f"failed, {'→'.join(slow_report.versions_in_order)}; in flight when the pods began terminating: "
          f"{len(draining['blue'])} on blue, {len(draining['green'])} on green")
    problems = zero_downtime_problems(slow_report, ["v1", "v3", "v1"])
    assert not problems, f"slow requests: {problems}"
    assert draining["blue"] and draining["green"], "each scale-down had requests in flight to finish"

    recorded.assert_never_empty()
    assert set(_switches(recorded, frozenset(blue))) <= {frozenset(s) for s in (blue, green, blue_again)}, \
        f"traffic went {recorded.distinct_sets()}"
    assert cluster.status()["history"][0]["outcome"] == "RolledBack"
