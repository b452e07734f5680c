"""The local control plane's node: a kubelet and a scheduler in one process (in the spirit of kwok).

Against a real kube-apiserver it registers one Node (default ``bluegreen-node``) and keeps it Ready with a
fresh Lease; binds every pending, unscheduled pod to it (as ``system:kube-scheduler``); gives each pod a
loopback pod IP (``--pod-cidr``, default 127.244.0.0/16); and runs the pods bound to it, in two ways:

- a pod with a ``local/`` image (e.g. ``local/python:3``) runs for real: its containers are processes on
  this machine, with kubelet's environment, volumes bind-mounted in a private mount namespace, real probes,
  restarts with back-off, exit codes and phases, and kubelet's termination (``kubelet/podworker.py``);
- any other pod is simulated, as fast as before: Running at once, Ready after the readiness probe's
  ``initialDelaySeconds``; ``never-ready`` and ``crashloop`` image tags (``kubelet/simulated.py``).

Pods being deleted are deleted once their processes are gone. Pod, node and lease writes use the node's
identity (``system:node:<name>``, authorised by the Node authorizer); bindings the scheduler's. State is
re-derived from the API on every event, so restarting this process is harmless (process-backed pods whose
processes are gone are restarted). See ``tests/cluster/README.md``.

Run: ``python simnode.py --node-kubeconfig node.kubeconfig --scheduler-kubeconfig scheduler.kubeconfig
[--state-dir DIR] [--pod-cidr CIDR] [--backoff-base SECONDS]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubelet.cleanup import clean_node, node_dir
from kubelet.images import is_local_pod
from kubelet.ipam import DEFAULT_POD_CIDR, IPAllocator
from kubelet.launchspec import LaunchBuilder
from kubelet.logserver import serve as serve_logs
from kubelet.mountpoints import MountPoints
from kubelet.nodeapi import NodeAPI
from kubelet.podworker import NodeContext, PodWorker
from kubelet.registration import Registration
from kubelet.simulated import SimulatedPods, pod_key
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("simnode")

HEARTBEAT_SECONDS = 10.0
Pod = dict[str, Any]


class SimulatedNode:
    """The node: a heartbeat thread, a pod watch thread, one worker thread applying pod events (and the
    simulated pods' timers), and one supervising thread per process-backed pod."""

    def __init__(self, node_name: str, node_api: client.ApiClient, scheduler_api: client.ApiClient,
                 state_dir: Path, pod_cidr: str = DEFAULT_POD_CIDR, backoff_base: float = 10.0) -> None:
        self.node_name = node_name
        self.registration = Registration(node_name, node_api)
        self.node_core = client.CoreV1Api(node_api)
        self.scheduler_core = client.CoreV1Api(scheduler_api)
        self.events: queue.Queue[tuple[str, Pod]] = queue.Queue()
        self.ips = IPAllocator(pod_cidr)
        self.simulated = SimulatedPods(self.node_core, self.ips)
        self.state_dir = state_dir
        base = node_dir(state_dir)
        self.pods_dir = (base / "pods").resolve()
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        mountpoints = MountPoints(base / "mountpoints.json")
        api = NodeAPI(node_api)
        self.context = NodeContext(api, self.pods_dir, LaunchBuilder(api, base / "images", mountpoints),
                                   mountpoints, backoff_base)
        self.workers: dict[str, PodWorker] = {}
        self.stop = threading.Event()

    # ---- node registration and heartbeat -------------------------------------------------------
    def heartbeat_loop(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.registration.heartbeat()
            except Exception:  # keep beating; the next try may succeed
                log.exception("heartbeat failed")

    # ---- pod watch ---------------------------------------------------------------------------
    def watch_loop(self) -> None:
        """List then watch all pods, feeding the worker; re-list whenever the watch cannot resume."""
        while not self.stop.is_set():
            try:
                resp = self.scheduler_core.list_pod_for_all_namespaces(_preload_content=False)
                listing = json.loads(resp.data)
                for pod in listing["items"]:  # claim every IP in use before any new pod gets one
                    ip = (pod.get("status") or {}).get("podIP")
                    if ip and pod["spec"].get("nodeName") == self.node_name:
                        self.ips.claim(ip, pod["metadata"]["uid"])
                for pod in listing["items"]:
                    self.events.put(("SYNC", pod))
                self.remove_orphaned_dirs({pod["metadata"]["uid"] for pod in listing["items"]})
                version = listing["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    stream = watch.Watch().stream(
                        self.scheduler_core.list_pod_for_all_namespaces,
                        resource_version=version,
                        timeout_seconds=60,
                        allow_watch_bookmarks=True,
                    )
                    for event in stream:
                        raw = event["raw_object"]
                        if event["type"] == "ERROR":
                            raise ApiException(status=raw.get("code", 500), reason=raw.get("message"))
                        version = raw["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.events.put((event["type"], raw))
            except Exception as exc:
                if not self.stop.is_set():
                    log.warning("pod watch restarting: %s", exc)
                    time.sleep(0.5)

    def remove_orphaned_dirs(self, uids: set[str]) -> None:
        """Directories of pods that no longer exist (e.g. left by a node that was killed) go."""
        for directory in self.pods_dir.iterdir():
            if directory.name.rsplit("_", 1)[-1] not in uids and directory.name.rsplit("_", 1)[-1] \
                    not in self.workers:
                shutil.rmtree(directory, ignore_errors=True)

    # ---- worker ------------------------------------------------------------------------------
    def run_worker(self) -> None:
        while not self.stop.is_set():
            timeout = 1.0
            due = self.simulated.next_due()
            if due is not None:
                timeout = max(0.0, min(timeout, due - time.time()))
            try:
                kind, pod = self.events.get(timeout=timeout)
                self.safely(self.handle_event, kind, pod)
            except queue.Empty:
                pass
            for what, namespace, name, uid in self.simulated.pop_due():
                self.safely(self.simulated.handle_timer, what, namespace, name, uid)

    def safely(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone or changed meanwhile: the next event brings the truth
                log.warning("%s%s failed: %s %s", fn.__name__, args[:1], exc.status, exc.reason)
        except Exception:
            log.exception("%s failed", fn.__name__)

    def handle_event(self, kind: str, pod: Pod) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        uid = meta["uid"]
        if kind == "DELETED":
            self.ips.release_uid(uid)
            self.simulated.forget(uid)
            self.forget_local(pod)
            return
        node = spec.get("nodeName")
        if not node:
            if not meta.get("deletionTimestamp") and status.get("phase", "Pending") == "Pending":
                self.bind(pod)
            return
        if node != self.node_name:
            return
        if status.get("podIP"):
            self.ips.claim(status["podIP"], uid)
        if is_local_pod(pod):
            self.handle_local(pod)
            return
        if meta.get("deletionTimestamp"):
            self.delete(pod)
            return
        if status.get("phase") in ("Succeeded", "Failed") or self.simulated.knows(uid):
            return
        if status.get("phase") != "Running" or not status.get("podIP"):
            self.simulated.start(pod)
        else:
            self.simulated.resume(pod)

    def handle_local(self, pod: Pod) -> None:
        """Hand the event to the pod's worker, starting one for a pod seen for the first time."""
        meta, status = pod["metadata"], pod.get("status") or {}
        worker = self.workers.get(meta["uid"])
        if worker is not None:
            if worker.is_alive():
                worker.update(pod)
            elif meta.get("deletionTimestamp"):
                self.delete(pod)  # it ended (Succeeded/Failed): nothing runs any more
            return
        if meta.get("deletionTimestamp"):
            self.delete(pod)
            return
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        ip = status.get("podIP") or self.ips.allocate(meta["uid"])
        worker = PodWorker(self.context, pod, ip)
        self.workers[meta["uid"]] = worker
        worker.start()

    def forget_local(self, pod: Pod) -> None:
        meta = pod["metadata"]
        worker = self.workers.pop(meta["uid"], None)
        if worker is not None and worker.is_alive():
            worker.removed()  # it kills what still runs, then removes the pod's directory
        elif is_local_pod(pod):
            directory = self.pods_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
            threading.Thread(target=shutil.rmtree, args=(directory, True), daemon=True).start()

    def delete(self, pod: Pod) -> None:
        """What a kubelet does once the containers have stopped: delete now, only this very pod."""
        namespace, name = pod_key(pod)
        uid = pod["metadata"]["uid"]
        self.node_core.delete_namespaced_pod(
            name,
            namespace,
            grace_period_seconds=0,
            body=client.V1DeleteOptions(grace_period_seconds=0, preconditions={"uid": uid}),
        )

    def bind(self, pod: Pod) -> None:
        namespace, name = pod_key(pod)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        self.scheduler_core.create_namespaced_binding(namespace, body, _preload_content=False)

    # ---- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        killed = clean_node(self.state_dir)  # what a previous run left (it should have left nothing)
        if killed:
            log.info("killed %d leftover pod processes", killed)
        try:
            self.registration.kubelet_port = serve_logs(self.pods_dir, node_dir(self.state_dir))
        except (OSError, subprocess.CalledProcessError) as exc:  # kubectl logs is a convenience
            log.warning("no kubelet log server: %s", exc)
        self.registration.register()
        log.info("node %s registered", self.node_name)
        for target in (self.heartbeat_loop, self.watch_loop):
            threading.Thread(target=target, daemon=True, name=target.__name__).start()
        try:
            self.run_worker()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Kill every pod process now; nothing may outlive the node."""
        for worker in list(self.workers.values()):
            worker.kill_now()
        clean_node(self.state_dir)


def api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 64  # pod workers write in parallel
    return client.ApiClient(configuration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-kubeconfig", required=True)
    parser.add_argument("--scheduler-kubeconfig", required=True)
    parser.add_argument("--node-name", default="bluegreen-node")
    default_state = os.environ.get("BLUEGREEN_CLUSTER_DIR", str(Path.home() / ".cache" / "bluegreen" / "cluster"))
    parser.add_argument("--state-dir", default=default_state, help="pods' files live in <state-dir>/node")
    parser.add_argument("--pod-cidr", default=os.environ.get("BLUEGREEN_POD_CIDR", DEFAULT_POD_CIDR))
    parser.add_argument("--backoff-base", type=float,
                        default=float(os.environ.get("BLUEGREEN_NODE_BACKOFF_SECONDS", "10")),
                        help="first crash-loop back-off window in seconds (kubelet: 10, doubling to 300)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    node = SimulatedNode(args.node_name, api_client(args.node_kubeconfig), api_client(args.scheduler_kubeconfig),
                         Path(args.state_dir), args.pod_cidr, args.backoff_base)
    signal.signal(signal.SIGTERM, lambda *_: node.stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        node.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
