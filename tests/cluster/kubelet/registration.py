"""The Node object and its heartbeat: registered Ready, status and the ``kube-node-lease`` Lease kept
fresh so the node-lifecycle controller never marks it NotReady."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

LEASE_SECONDS = 40


def now_iso() -> str:
    """The current time as the API server writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registration:
    def __init__(self, node_name: str, node_api: client.ApiClient, kubelet_port: int = 0) -> None:
        self.node_name = node_name
        self.core = client.CoreV1Api(node_api)
        self.coordination = client.CoordinationV1Api(node_api)
        self.kubelet_port = kubelet_port

    def node_status(self) -> dict[str, Any]:
        stamp = now_iso()
        conditions = [
            ("Ready", "True", "KubeletReady", "simulated kubelet is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "simulated"),
        ]
        capacity = {"cpu": "32", "memory": "128Gi", "pods": "500", "ephemeral-storage": "500Gi"}
        return {
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": stamp,
                 "lastTransitionTime": stamp}
                for t, s, r, m in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "capacity": capacity,
            "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "simulated://1",
                "kernelVersion": "",
                "osImage": "bluegreen simulated node",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "simulated",
                },
            },
            "spec": {},
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.core.patch_node_status(self.node_name, {"status": self.node_status()})
        self.renew_lease()

    def renew_lease(self) -> None:
        namespace = "kube-node-lease"
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew}
        try:
            self.coordination.patch_namespaced_lease(self.node_name, namespace, {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": namespace},
                "spec": spec,
            }
            self.coordination.create_namespaced_lease(namespace, body)
