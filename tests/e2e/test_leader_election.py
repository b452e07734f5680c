"""Two operator processes, one leader (``bluegreen run --leader-elect``), on the local control plane.

The leader is SIGKILLed in the middle of a release (its idle colour applied, not yet available): the standby
takes the Lease over once the leader's last renewal is a lease duration old and finishes that release with
exactly one switch, while real requests through the Service all succeed. The API server's audit log shows
that the two never wrote at the same time: every write of the killed leader came before the standby's
first, and the standby wrote nothing (but its Lease claim and its own pod's label) while it stood by. Then a
graceful handover: a SIGTERMed leader releases the Lease and a fresh standby takes over within a retry period,
not a lease duration.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from appmanifest import app_manifest
from kubernetes import client, watch
from test_reads_from_watches import audit_log, require_audit_log
from waiting import wait_until
from zerodowntime import PhasedLoad, service_url, wait_answering

from conftest import ROOT, Cluster, GitRepo, Operator, operator_kubeconfig

LEASE = ["--leader-elect", "--leader-election-lease-duration", "6s", "--leader-election-renew-deadline", "4s",
         "--leader-election-retry-period", "1s"]
LEASE_DURATION = 6.0
RETRY_PERIOD = 1.0
WRITES = ("create", "patch", "update", "delete")


def grant_leader_election(api: client.ApiClient, namespace: str) -> None:
    """manifests/leader-election.yaml, in the test namespace (where the operator's ServiceAccount is)."""
    rbac = client.RbacAuthorizationV1Api(api)
    role, binding = yaml.safe_load_all((ROOT / "manifests" / "leader-election.yaml").read_text())
    role["metadata"]["namespace"] = binding["metadata"]["namespace"] = namespace
    binding["subjects"][0]["namespace"] = namespace
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, binding)


def slow_start(version: str) -> str:
    """The web app's manifest whose pods take 4 s to become ready: the release is under way for that long."""
    text = app_manifest("shop", version)
    return text.replace('        - {name: APP_SHUTDOWN_DELAY, value: "1"}\n',
                        '        - {name: APP_SHUTDOWN_DELAY, value: "1"}\n'
                        '        - {name: APP_STARTUP_DELAY, value: "4"}\n')


def acquired_at(operator: Operator) -> float | None:
    """Wall-clock time of the operator's "leader Lease acquired" log line."""
    for line in operator.lines():
        if line.get("event") == "leader Lease acquired":
            return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()
    return None


def identity_of(operator: Operator) -> str:
    return str(next(line["identity"] for line in operator.lines() if line.get("identity")))


def writes_by_agent(namespace: str, since: datetime) -> dict[str, list[tuple[float, str, str]]]:
    """Per operator process (its User-Agent names its identity): (time, verb, resource) of each write since
    ``since``, but those of the election itself (the Lease, and the leader label on the process's own pod)."""
    found: dict[str, list[tuple[float, str, str]]] = {}
    for line in audit_log().read_text().splitlines():
        entry = json.loads(line)
        if entry.get("stage") != "ResponseComplete" or entry.get("verb") not in WRITES:
            continue
        if (entry.get("objectRef") or {}).get("namespace") != namespace:
            continue
        agent = str(entry.get("userAgent", ""))
        if not agent.startswith("bluegreen-operator/"):
            continue
        at = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
        resource = entry["objectRef"].get("resource", "")
        if at < since or resource in ("leases", "pods"):
            continue
        found.setdefault(agent, []).append((at.timestamp(), entry["verb"], resource))
    return found


class SelectorRecorder:
    """Every colour the Service selects, in order, from a watch (started before the release)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.colors: list[str | None] = []
        self.watch = watch.Watch()

    def run(self) -> None:
        for event in self.watch.stream(self.core.list_namespaced_service, self.namespace,
                                       field_selector="metadata.name=shop", timeout_seconds=120):
            color = (event["object"].spec.selector or {}).get("bluegreen.dev/color")
            if not self.colors or self.colors[-1] != color:
                self.colors.append(color)


def test_the_standby_takes_over_a_release_from_a_killed_leader_with_one_switch(
        kube_client: client.ApiClient, crd: None, namespace: str, tmp_path: Path, cluster: Cluster,
        repo: GitRepo) -> None:
    import threading

    kubeconfig = operator_kubeconfig(kube_client, namespace, tmp_path)
    grant_leader_election(kube_client, namespace)
    lease = [*LEASE, "--leader-election-namespace", namespace]
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for directory in dirs:
        directory.mkdir()
    # Each process is told its pod (as the downward API does): the leader labels its own pod bluegreen.dev/leader.
    for name in ("op-a", "op-b", "op-c"):
        cluster.core.create_namespaced_pod(namespace, {
            "metadata": {"name": name, "labels": {"app": "operator"}},
            "spec": {"containers": [{"name": "operator", "image": "registry.local/bluegreen-operator:test"}]}})
    a, b, c = (Operator(namespace, kubeconfig, d, lease, {"POD_NAME": f"op-{d.name}", "POD_NAMESPACE": namespace})
               for d in dirs)
    coordination = client.CoordinationV1Api(kube_client)

    def leader_label(pod: str) -> str | None:
        labels = cluster.core.read_namespaced_pod(pod, namespace).metadata.labels or {}
        return labels.get("bluegreen.dev/leader")

    try:
        a.start()
        wait_until(lambda: acquired_at(a), timeout=30, what="the first operator to take the Lease")
        wait_until(lambda: leader_label("op-a") == "true", timeout=10, what="the leader labelling its pod")
        since = datetime.now(UTC)
        b.start()
        wait_until(lambda: any(line.get("event") == "waiting for the leader Lease" for line in b.lines()),
                   timeout=30, what="the second operator standing by")

        cluster.create_service()
        recorder = SelectorRecorder(kube_client, namespace)
        threading.Thread(target=recorder.run, daemon=True).start()
        v1 = repo.release_app("v1")
        cluster.create_release(repo)
        ip = str(cluster.core.read_namespaced_service("shop", namespace).spec.cluster_ip)
        wait_answering(ip)
        with PhasedLoad(service_url(ip)) as load:
            load.phase("release by the leader", ["v1"])
            cluster.wait_serving(v1, "blue", timeout=60)
            load.wait_more("v1", 50)

            load.phase("failover in the middle of a release", ["v1", "v2"])
            v2 = repo.write(slow_start("v2"), message="release v2")
            cluster.check_now()
            wait_until(lambda: (d := cluster.deployment("green")) is not None
                       and (d.metadata.annotations or {}).get("bluegreen.dev/commit") == v2,
                       timeout=30, what="the leader applying v2 to green")
            assert cluster.color() == "blue", "green takes 4 s to start: the switch cannot have happened yet"
            killed = time.time()
            a.kill()
            took_over = wait_until(lambda: acquired_at(b), timeout=LEASE_DURATION + 10,
                                   what="the standby taking the Lease over")
            cluster.wait_serving(v2, "green", timeout=60)
            switched = time.time()
            load.wait_more("v2", 100)
        load.verdict()

        failover = took_over - killed
        print(f"leader election: SIGKILL -> standby leads {failover:.2f} s (lease duration {LEASE_DURATION:g} s, "
              f"retry period {RETRY_PERIOD:g} s), SIGKILL -> switched {switched - killed:.2f} s")
        assert failover <= LEASE_DURATION + 2.4 * RETRY_PERIOD + 2.0, failover  # retries are jittered by up to 1.2x
        assert failover >= LEASE_DURATION - RETRY_PERIOD - 1.0, "the standby waited out the lease duration"
        held = coordination.read_namespaced_lease("bluegreen-operator", namespace).spec
        assert held.holder_identity == identity_of(b) and held.lease_transitions == 1
        assert held.holder_identity.startswith("op-b_") and leader_label("op-b") == "true"
        assert recorder.colors[-2:] == ["blue", "green"] and recorder.colors.count("green") == 1, recorder.colors
        assert [e["action"] for e in b.actions("Switch")] == ["Switch"], "the standby switched once"
        assert not a.actions("Switch")[1:], "the leader switched only v1's first colour, if at all"

        require_audit_log()
        time.sleep(1)  # the audit log is written when a request completes
        writes = writes_by_agent(namespace, since)
        agents = {identity_of(op): op for op in (a, b)}
        by = {name: next((w for agent, w in writes.items() if f"({ident})" in agent), [])
              for name, ident in (("a", identity_of(a)), ("b", identity_of(b)))}
        assert set(writes) <= {agent for agent in writes if any(f"({ident})" in agent for ident in agents)}, writes
        assert by["a"] and by["b"], "each process wrote while it led"
        assert max(t for t, _, _ in by["a"]) < killed + 0.5, "nothing from the killed leader after the SIGKILL"
        assert min(t for t, _, _ in by["b"]) >= took_over - 0.5, "the standby wrote nothing before it led"
        assert max(t for t, _, _ in by["a"]) < min(t for t, _, _ in by["b"]), "the two never wrote at once"
        print(f"leader election: writes by the killed leader {len(by['a'])}, by the new leader {len(by['b'])}; "
              f"none overlapping")

        # A graceful handover: a new standby, then the leader is stopped (SIGTERM) and releases the Lease.
        c.start()
        wait_until(lambda: any(line.get("event") == "waiting for the leader Lease" for line in c.lines()),
                   timeout=30, what="a new standby")
        stopped = time.time()
        b.stop(signal.SIGTERM)
        handed = wait_until(lambda: acquired_at(c), timeout=LEASE_DURATION + 10, what="the new standby leading")
        assert any(line.get("event") == "leader Lease released" for line in b.lines())
        wait_until(lambda: leader_label("op-c") == "true", timeout=10, what="the new leader labelling its pod")
        assert leader_label("op-b") is None, "a leader that stepped down removes its label"
        print(f"leader election: SIGTERM -> the standby leads {handed - stopped:.2f} s (Lease released)")
        assert handed - stopped < LEASE_DURATION - 1.0, "a released Lease is taken without waiting it out"
        v3 = repo.release_app("v3")
        cluster.check_now()
        cluster.wait_serving(v3, "blue", timeout=60)
    finally:
        for op in (a, b, c):
            op.stop()
