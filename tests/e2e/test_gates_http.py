"""Release gates on the real local cluster with the real web app under load (80 requests/s through the
Service, a new connection each): HTTP pre-promotion checks that pass and fail, the manual gate with a refused
and an accepted promote, abort before and after the switch, a post-promotion failure rolled back at once, and
a retry. Requests are annotations on the release (what ``bluegreen promote|abort|retry`` write).

Every load phase must be zero downtime with exactly the expected versions; a failed pre-promotion check and
every rollback leave the Service's Endpoints on pods that serve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gates import ABORT, PROMOTE, RETRY, SelectorWatch, annotations, reasons, request
from waiting import wait_until
from zerodowntime import PhasedLoad, service_url, wait_answering

from conftest import Cluster, EndpointsRecorder, GitRepo, Operator

GOOD, BROKEN = "smoke-ok", "smoke-broken"


def _cluster_ip(cluster: Cluster, name: str = "shop") -> str:
    return str(cluster.core.read_namespaced_service(name, cluster.namespace).spec.cluster_ip)


def _replicas(cluster: Cluster, color: str) -> int | None:
    deployment = cluster.deployment(color)
    return deployment.spec.replicas if deployment is not None else None


def _mark(cluster: Cluster, color: str) -> tuple[str | None, str | None]:
    deployment = cluster.deployment(color)
    found = (deployment.metadata.annotations or {}) if deployment is not None else {}
    return found.get("bluegreen.dev/failed-commit"), found.get("bluegreen.dev/failed-reason")


def _stalled(cluster: Cluster) -> dict[str, str]:
    return cluster.condition("Stalled")


def test_http_pre_checks_pass_and_a_failing_one_leaves_traffic_untouched(
        cluster: Cluster, repo: GitRepo, operator: Operator, endpoints: Callable[..., EndpointsRecorder]) -> None:
    cluster.create_service()
    cluster.create_service("shop-preview")
    ip = _cluster_ip(cluster)
    v1 = repo.release_app("v1", app_message=GOOD)
    cluster.create_release(repo, previewService="shop-preview", checks={"prePromotion": [
        {"name": "smoke", "http": {"service": "shop-preview", "path": "/", "bodyContains": GOOD},
         "attempts": 3, "intervalSeconds": 1, "timeoutSeconds": 3}]})
    cluster.wait_serving(v1, "blue", timeout=90)
    assert cluster.status()["checks"][0]["verdict"] == "Passed"
    wait_answering(ip)
    with PhasedLoad(service_url(ip)) as load:
        load.phase("cut-over after a passing check", ["v1", "v2"])
        v2 = repo.release_app("v2", app_message=GOOD)
        cluster.check_now()
        cluster.wait_serving(v2, "green", timeout=90)
        [check] = cluster.status()["checks"]
        assert (check["commit"], check["color"], check["verdict"]) == (v2, "green", "Passed")
        load.wait_more("v2", 100)
        green = frozenset(cluster.pod_ips("green"))

        load.phase("failing pre-promotion check", ["v2"])
        with endpoints() as recorded:
            broken = repo.release_app("v3", app_message=BROKEN)
            cluster.check_now()
            wait_until(lambda: _mark(cluster, "blue") == (broken, "PrePromotionCheckFailed"), timeout=90,
                       what="v3 marked failed by its pre-promotion check")
            wait_until(lambda: _stalled(cluster).get("reason") == "PrePromotionCheckFailed", timeout=10,
                       what="Stalled=True PrePromotionCheckFailed")
            assert _replicas(cluster, "blue") == 0
            load.wait_more("v2", 100)
        assert cluster.color() == "green"
    load.verdict("gates")
    assert recorded.distinct_sets() == [green], f"the Service's Endpoints moved: {recorded.distinct_sets()}"
    stalled = _stalled(cluster)
    assert stalled["status"] == "True" and "'smoke'" in stalled["message"] and BROKEN in stalled["message"], stalled
    status = cluster.status()
    [check] = status["checks"]
    assert (check["commit"], check["verdict"], check["reason"]) == (broken, "Failed", "BodyMismatch")
    assert (status["history"][0]["revision"], status["history"][0]["outcome"]) == (broken, "Failed")
    assert any(t == "Warning" and r == "PrePromotionCheckFailed" for t, r, _ in reasons(cluster))
    print(f"gates pre-check failure: {stalled['message']}")


def test_manual_promotion_refuses_another_commit_abort_and_retry(
        cluster: Cluster, repo: GitRepo, operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release_app("v1")
    cluster.create_release(repo, promotion={"mode": "Manual"})
    wait_until(lambda: cluster.status().get("phase") == "AwaitingPromotion", timeout=90, what="v1 waiting")
    status = cluster.status()
    assert status["awaitingPromotion"]["revision"] == v1 and status["awaitingPromotion"]["color"] == "blue"
    assert cluster.condition("Reconciling")["reason"] == "AwaitingPromotion"
    assert cluster.color() is None, "no traffic before the promote"

    request(cluster, PROMOTE, "f" * 40)
    wait_until(lambda: PROMOTE not in annotations(cluster), timeout=20, what="the refused promote removed")
    refusal = wait_until(lambda: next((m for t, r, m in reasons(cluster) if r == "PromoteRefused"), None),
                         timeout=10, what="a PromoteRefused Event")
    assert v1[:12] in refusal, refusal
    assert cluster.color() is None and cluster.status()["phase"] == "AwaitingPromotion"
    assert any("promote of commit ffffffffffff refused" in str(line.get("event")) for line in operator.lines())

    request(cluster, PROMOTE, v1)
    cluster.wait_serving(v1, "blue", timeout=30)
    wait_until(lambda: PROMOTE not in annotations(cluster), timeout=20, what="the promote removed")

    v2 = repo.release_app("v2")
    cluster.check_now()
    wait_until(lambda: (cluster.status().get("awaitingPromotion") or {}).get("revision") == v2, timeout=90,
               what="v2 waiting")
    request(cluster, ABORT, v2)
    wait_until(lambda: _mark(cluster, "green") == (v2, "Aborted") and _replicas(cluster, "green") == 0,
               timeout=30, what="v2 aborted")
    assert cluster.color() == "blue"
    wait_until(lambda: cluster.status()["history"][0]["outcome"] == "Aborted", timeout=10, what="history Aborted")
    assert _stalled(cluster)["reason"] == "Aborted"

    request(cluster, RETRY, v2)
    wait_until(lambda: (cluster.status().get("awaitingPromotion") or {}).get("revision") == v2, timeout=90,
               what="v2 waiting again after the retry")
    assert _mark(cluster, "green") == (None, None)
    request(cluster, PROMOTE, v2)
    cluster.wait_serving(v2, "green", timeout=30)


def test_a_failing_post_check_rolls_back_at_once_then_retry_and_abort_after_the_switch(
        cluster: Cluster, repo: GitRepo, operator: Operator, tmp_path: Path) -> None:
    cluster.create_service()
    ip = _cluster_ip(cluster)
    fail_file = tmp_path / "v2-unhealthy"
    v1 = repo.release_app("v1")
    cluster.create_release(repo, checks={"postPromotion": [
        {"name": "healthz", "http": {"service": "shop", "path": "/healthz"}, "intervalSeconds": 1,
         "durationSeconds": 25, "timeoutSeconds": 2}]})
    cluster.wait_serving(v1, "blue", timeout=90)
    wait_answering(ip)
    with SelectorWatch(cluster.api, cluster.namespace) as selector, PhasedLoad(service_url(ip)) as load:
        load.phase("cut-over", ["v1", "v2"])
        v2 = repo.release_app("v2", health_fail_file=str(fail_file))
        cluster.check_now()
        wait_until(lambda: cluster.color() == "green", timeout=90, what="the switch to v2")
        wait_until(lambda: cluster.condition("Reconciling").get("reason") == "PostPromotionChecks", timeout=10,
                   what="the post-promotion checks running")
        load.wait_more("v2", 80)

        load.phase("v2 fails its health check: rolled back", ["v2", "v1"])
        fail_file.touch()  # v2's /healthz answers 503 from now on (its readiness follows after 3 probes)
        failed_at = time.monotonic()
        wait_until(lambda: cluster.color() == "blue", timeout=20, what="the automatic rollback")
        switched = selector.first_after(failed_at, "blue")
        load.wait_more("v1", 80)
        wait_until(lambda: _replicas(cluster, "green") == 0, timeout=20, what="the failed colour scaled to 0")
        status = cluster.status()
        entry = status["history"][0]
        assert (entry["revision"], entry["outcome"], entry["reason"]) == (v2, "RolledBack", "PostPromotionCheckFailed")
        stalled = _stalled(cluster)
        assert stalled["reason"] == "PostPromotionCheckFailed"
        assert f"Git's head (commit {v2[:12]}) is not what serves" in stalled["message"], stalled
        assert status["activeRevision"] == v1 and status["activeColor"] == "blue"
        assert _mark(cluster, "green") == (v2, "PostPromotionCheckFailed")

        load.phase("retry", ["v1", "v2"])
        fail_file.unlink()
        request(cluster, RETRY, v2)
        wait_until(lambda: cluster.color() == "green", timeout=90, what="v2 switched to again after the retry")
        load.wait_more("v2", 80)

        load.phase("abort after the switch", ["v2", "v1"])
        request(cluster, ABORT, v2)
        aborted_at = time.monotonic()
        wait_until(lambda: cluster.color() == "blue", timeout=20, what="the switch back on abort")
        load.wait_more("v1", 80)
    load.verdict("gates")
    assert switched is not None
    print(f"gates rollback: /healthz failing -> selector back on blue in {switched - failed_at:.2f}s "
          f"(check interval 1s); abort -> blue in {(selector.first_after(aborted_at, 'blue') or 0) - aborted_at:.2f}s")
    entry = cluster.status()["history"][0]
    assert (entry["outcome"], entry["reason"]) == ("RolledBack", "Aborted")
    assert _mark(cluster, "green")[1] == "Aborted"
