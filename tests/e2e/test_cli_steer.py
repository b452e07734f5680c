"""``bluegreen promote|abort|retry|reconcile`` against a real API server: each writes exactly its annotation,
refuses up front (non-zero exit, a clear message, nothing written) when the status shows nothing to do, and
``--wait`` returns once the annotation is gone. The operator's handling is played by the test (it lands
separately): it writes the status the operator would write and removes the annotation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from clirunner import (
    allow_awaiting_promotion,
    bluegreen,
    bluegreen_background,
    kubectl,
    release_annotations,
    remove_annotation,
    set_status,
)
from kubernetes import client
from waiting import wait_until

from conftest import Cluster, GitRepo

WAITING = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SERVING = "0f1e2d3c4b5a69788796a5b4c3d2e1f0abcdef01"
OTHER = "ffffeeeeddddccccbbbbaaaa9999888877776666"
STEER_KEYS = {"bluegreen.dev/promote", "bluegreen.dev/abort", "bluegreen.dev/retry"}


def condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message or reason,
            "lastTransitionTime": "2026-12-01T10:00:00Z"}


HEALTHY = {"phase": "Healthy", "message": "blue serves", "activeColor": "blue", "activeRevision": SERVING,
           "lastAttemptedRevision": SERVING,
           "conditions": [condition("Ready", "True", "Serving"), condition("Stalled", "False", "Serving")]}
AWAITING = {**HEALTHY, "phase": "AwaitingPromotion", "message": "green waits for a promote",
            "lastAttemptedRevision": WAITING,
            "awaitingPromotion": {"revision": WAITING, "color": "green", "since": "2026-12-01T10:00:00Z"},
            "conditions": [condition("Ready", "False", "AwaitingPromotion"),
                           condition("Reconciling", "True", "AwaitingPromotion")]}
FAILED_CHECK = {**HEALTHY, "phase": "Degraded", "message": "smoke failed", "lastAttemptedRevision": WAITING,
                "conditions": [condition("Ready", "False", "PrePromotionCheckFailed"),
                               condition("Stalled", "True", "PrePromotionCheckFailed")]}


@pytest.fixture
def release(kube_client: client.ApiClient, crd: None, cluster: Cluster, repo: GitRepo) -> Cluster:
    """A release with no operator running: the test writes its status."""
    allow_awaiting_promotion(kube_client)
    repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    return cluster


def steer_annotations(api: client.ApiClient, namespace: str) -> dict[str, str]:
    return {k: v for k, v in release_annotations(api, namespace).items() if k in STEER_KEYS}


def test_promote_writes_the_full_sha_of_the_waiting_commit(
        kube_client: client.ApiClient, kubeconfig: str, namespace: str, release: Cluster) -> None:
    set_status(kube_client, namespace, AWAITING)
    result = bluegreen(kubeconfig, "promote", "shop", "-n", namespace, "--commit", WAITING[:7].upper())
    assert result.returncode == 0, result.stderr
    assert steer_annotations(kube_client, namespace) == {"bluegreen.dev/promote": WAITING}
    assert f"bluegreen.dev/promote={WAITING}" in result.stdout


@pytest.mark.parametrize(("status", "args", "message"), [
    (HEALTHY, [], "nothing waits for promotion"),
    (AWAITING, ["--commit", OTHER[:10]], f"commit {OTHER[:10]} does not wait for promotion"),
], ids=["nothing-waits", "another-commit"])
def test_promote_is_refused_up_front(kube_client: client.ApiClient, kubeconfig: str, namespace: str,
                                     release: Cluster, status: dict[str, Any], args: list[str], message: str) -> None:
    set_status(kube_client, namespace, status)
    result = bluegreen(kubeconfig, "promote", "shop", "-n", namespace, *args)
    assert result.returncode == 1
    assert message in result.stderr
    if status is AWAITING:
        assert WAITING[:12] in result.stderr, "the refusal names the commit that does wait"
    assert steer_annotations(kube_client, namespace) == {}


def test_abort_names_the_commit_under_way_and_is_refused_when_healthy(
        kube_client: client.ApiClient, kubeconfig: str, namespace: str, release: Cluster) -> None:
    set_status(kube_client, namespace, HEALTHY)
    refused = bluegreen(kubeconfig, "abort", "shop", "-n", namespace)
    assert refused.returncode == 1 and "nothing to abort" in refused.stderr, refused.stderr
    assert steer_annotations(kube_client, namespace) == {}

    set_status(kube_client, namespace, AWAITING)
    wrong = bluegreen(kubeconfig, "abort", "shop", "-n", namespace, "--commit", SERVING[:8])
    assert wrong.returncode == 1 and "is not the release under way" in wrong.stderr, wrong.stderr
    assert steer_annotations(kube_client, namespace) == {}

    result = bluegreen(kubeconfig, "abort", "shop", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert steer_annotations(kube_client, namespace) == {"bluegreen.dev/abort": WAITING}


def test_retry_clears_a_failure_mark_and_is_refused_when_the_commit_serves(
        kube_client: client.ApiClient, kubeconfig: str, namespace: str, release: Cluster) -> None:
    set_status(kube_client, namespace, HEALTHY)
    refused = bluegreen(kubeconfig, "retry", "shop", "-n", namespace)
    assert refused.returncode == 1 and "nothing to retry" in refused.stderr, refused.stderr
    assert steer_annotations(kube_client, namespace) == {}

    set_status(kube_client, namespace, FAILED_CHECK)
    result = bluegreen(kubeconfig, "retry", "shop", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert "clear the PrePromotionCheckFailed mark" in result.stdout
    assert steer_annotations(kube_client, namespace) == {"bluegreen.dev/retry": WAITING}


def test_wait_returns_once_the_operator_removed_the_annotation(
        kube_client: client.ApiClient, kubeconfig: str, namespace: str, release: Cluster) -> None:
    set_status(kube_client, namespace, AWAITING)
    waiting = bluegreen_background(kubeconfig, "promote", "shop", "-n", namespace, "--wait=60s")
    try:
        wait_until(lambda: "bluegreen.dev/promote" in release_annotations(kube_client, namespace), timeout=30,
                   what="the promote annotation")
        time.sleep(1)
        assert waiting.poll() is None, "--wait returned while the annotation was still there"
        set_status(kube_client, namespace, {**HEALTHY, "activeColor": "green", "activeRevision": WAITING,
                                            "lastAttemptedRevision": WAITING, "awaitingPromotion": None,
                                            "message": "green serves after a promote"})
        remove_annotation(kube_client, namespace, "bluegreen.dev/promote")
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert "handled: shop: Healthy (green serves commit a1b2c3d4e5f6): green serves after a promote" in out


def test_wait_gives_up_after_its_timeout(kube_client: client.ApiClient, kubeconfig: str, namespace: str,
                                         release: Cluster) -> None:
    set_status(kube_client, namespace, AWAITING)
    started = time.monotonic()
    result = bluegreen(kubeconfig, "promote", "shop", "-n", namespace, "--wait=2s")
    assert result.returncode == 1
    assert "timed out after 2s waiting for the operator to handle bluegreen.dev/promote" in result.stderr
    assert time.monotonic() - started >= 2
    assert steer_annotations(kube_client, namespace) == {"bluegreen.dev/promote": WAITING}, "the request stays"


def test_reconcile_wait_returns_once_git_was_checked(kube_client: client.ApiClient, kubeconfig: str,
                                                     namespace: str, release: Cluster) -> None:
    set_status(kube_client, namespace, HEALTHY)
    waiting = bluegreen_background(kubeconfig, "reconcile", "shop", "-n", namespace, "--wait")
    try:
        stamp = wait_until(lambda: release_annotations(kube_client, namespace).get("bluegreen.dev/reconcile-at"),
                           timeout=30, what="the reconcile-at annotation")
        time.sleep(1)
        assert waiting.poll() is None, "--wait returned before status.lastHandledReconcileAt said so"
        set_status(kube_client, namespace, {"lastHandledReconcileAt": stamp})
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert "git checked: shop: Healthy" in out


def test_kubectl_runs_the_plugin_found_on_path(kube_client: client.ApiClient, kubeconfig: str, namespace: str,
                                               release: Cluster) -> None:
    set_status(kube_client, namespace, AWAITING)
    listed = kubectl(kubeconfig, "plugin", "list")
    assert "kubectl-bluegreen" in listed.stdout, listed.stdout + listed.stderr
    result = kubectl(kubeconfig, "bluegreen", "status", "shop", "-n", namespace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "ACTIVE", "REVISION", "PHASE", "READY", "MESSAGE"]
    assert lines[1].split()[:6] == [namespace, "shop", "blue", SERVING[:12], "AwaitingPromotion", "False"]
    assert f"awaiting promotion: commit {WAITING[:12]} on green" in result.stdout
    usage = kubectl(kubeconfig, "bluegreen", "promote", "--help")
    assert usage.stdout.startswith("usage: kubectl bluegreen promote"), usage.stdout
    refused = kubectl(kubeconfig, "bluegreen", "abort", "shop", "-n", namespace, "--commit", "zz")
    assert refused.returncode == 1 and "'zz' is not a commit" in refused.stderr
