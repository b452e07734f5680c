"""The conditions as tools read them: the real ``kubectl wait --for=condition=Ready`` returns only once the new
colour serves; Reconciling is True while a release is under way and False once settled; a commit that never
becomes ready ends Stalled with its reason (and Ready never True meanwhile)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from waiting import wait_until

from conftest import Cluster, GitRepo, Operator


def kubectl_wait(kubeconfig: str, namespace: str, condition: str, timeout: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "wait", f"--for=condition={condition}", f"--timeout={timeout}",
                           "--namespace", namespace, "bgr/shop"],
                          env={**os.environ, "KUBECONFIG": kubeconfig}, capture_output=True, text=True, timeout=120)


def statuses(cluster: Cluster) -> dict[str, str]:
    return {c["type"]: c["status"] for c in cluster.status().get("conditions") or []}


def assert_settled(cluster: Cluster) -> None:
    release = cluster.release()
    status = release["status"]
    assert {k: statuses(cluster)[k] for k in ("Ready", "Reconciling", "Stalled", "SourceReady")} == \
        {"Ready": "True", "Reconciling": "False", "Stalled": "False", "SourceReady": "True"}, status["conditions"]
    generation = release["metadata"]["generation"]
    assert status["observedGeneration"] == generation
    assert {c["observedGeneration"] for c in status["conditions"]} == {generation}


def force_check(cluster: Cluster) -> str:
    token = f"{time.time_ns()}"
    cluster.patch_release({"metadata": {"annotations": {"bluegreen.dev/reconcile-at": token}}})
    return token


def test_kubectl_wait_for_ready_returns_once_the_new_colour_serves(
        cluster: Cluster, repo: GitRepo, operator: Operator, kubeconfig: str) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", delay=0)
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    wait_until(lambda: statuses(cluster).get("Reconciling") == "False", timeout=10, what="Reconciling=False")
    assert_settled(cluster)
    assert "Progressing" not in statuses(cluster), "the kstatus name is Reconciling"

    v2 = repo.release("registry.local/shop:v2", delay=4)  # green takes ~4 s to become ready
    token = force_check(cluster)
    seen: dict[str, Any] = wait_until(
        lambda: (s := statuses(cluster)).get("Ready") == "False" and s.get("Reconciling") == "True" and s,
        timeout=20, what="Ready=False and Reconciling=True while green rolls out")
    assert cluster.color() == "blue", f"traffic is still on blue while {seen}"

    waited = kubectl_wait(kubeconfig, cluster.namespace, "Ready", "60s")
    selector = cluster.selector()  # read at once: the switch must already have happened
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
    assert selector.get("bluegreen.dev/color") == "green", f"kubectl wait returned before the switch: {selector}"
    status = cluster.status()
    assert (status["activeColor"], status["activeRevision"]) == ("green", v2)
    assert status["lastHandledReconcileAt"] == token, "the forced check is reported as handled"
    assert_settled(cluster)  # the previous colour stays warm, and that is settled: Reconciling=False
    blue = cluster.deployment("blue")
    assert blue is not None and blue.spec.replicas == 2, "blue is still warm"
    reconciling = cluster.condition("Reconciling")
    assert reconciling["reason"] == "PreviousColorWarm"


def test_a_never_ready_commit_ends_stalled_with_its_reason(
        cluster: Cluster, repo: GitRepo, operator: Operator, kubeconfig: str) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", delay=0)
    cluster.create_release(repo, progressDeadlineSeconds=6)
    cluster.wait_serving(v1, "blue")

    v2 = repo.release("registry.local/shop:v2-never-ready")
    force_check(cluster)
    wait_until(lambda: cluster.condition("Reconciling").get("reason") == "WaitingForAvailability" and
               statuses(cluster)["Reconciling"] == "True", timeout=20, what="Reconciling=True while green comes up")
    assert kubectl_wait(kubeconfig, cluster.namespace, "Ready", "2s").returncode != 0, \
        "Ready is not True while the new colour is not serving"

    waited = kubectl_wait(kubeconfig, cluster.namespace, "Stalled", "30s")
    assert waited.returncode == 0, waited.stderr
    stalled = cluster.condition("Stalled")
    assert stalled["reason"] == "ProgressDeadlineExceeded" and v2[:12] in stalled["message"]
    assert statuses(cluster)["Reconciling"] == "False", "a stalled release is not in progress"
    assert statuses(cluster)["Ready"] == "False"
    assert cluster.color() == "blue"
    assert cluster.release()["status"]["observedGeneration"] == cluster.release()["metadata"]["generation"]
