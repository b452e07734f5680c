"""How fast the local node runs pods, measured on the local control plane in one run.

- start rate of process-backed pods: ``--local`` (50) ``local/python:3`` pods created at once, each a small
  HTTP server with a readiness probe (periodSeconds 1); from the first create to every pod Ready (seen on a
  watch), and the pods per second that makes;
- the same for ``--simulated`` (300) simulated pods (no process), for comparison;
- probe-to-Ready latency: ``--latency`` (10) pods whose server starts listening 2 s after it starts and
  writes down when it did; from that moment to the Ready condition seen on a watch (median, p90, max).

Usage: ``python benchmarks/node_pods.py [--local 50] [--simulated 300] [--latency 10]`` with $KUBECONFIG set
(``make cluster-up``), on this machine (the latency pods write their timestamps to a local directory).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from kubesetup import fresh_namespace  # noqa: E402

NAMESPACE = "bluegreen-node-bench"
SERVER = r"""
import http.server, os, time
time.sleep(float(os.environ.get("LISTEN_AFTER", "0")))
server = http.server.HTTPServer((os.environ["POD_IP"], 8080), http.server.SimpleHTTPRequestHandler)
if os.environ.get("RECORD"):
    with open(os.environ["RECORD"], "w") as out:
        out.write(repr(time.time()))
server.serve_forever()
"""


def local_pod(name: str, listen_after: float = 0, record_dir: str | None = None) -> dict[str, Any]:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "LISTEN_AFTER", "value": str(listen_after)}]
    container: dict[str, Any] = {
        "name": "web", "image": "local/python:3", "command": ["python3", "-c", SERVER], "env": env,
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }
    volumes = []
    if record_dir:
        env.append({"name": "RECORD", "value": f"/record/{name}"})
        container["volumeMounts"] = [{"name": "record", "mountPath": "/record"}]
        volumes = [{"name": "record", "hostPath": {"path": record_dir}}]
    return {"metadata": {"name": name, "labels": {"bench": "node"}},
            "spec": {"containers": [container], "volumes": volumes, "terminationGracePeriodSeconds": 1}}


def simulated_pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"bench": "node"}},
            "spec": {"containers": [{"name": "web", "image": "registry.local/app:v1"}]}}


class ReadyWatch:
    """Records, from a watch, when each pod of the namespace first had Ready=True."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core
        self.ready_at: dict[str, float] = {}
        self.watch = watch.Watch()
        self.started = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.started.wait(10)

    def _run(self) -> None:
        listing = self.core.list_namespaced_pod(NAMESPACE)
        self.started.set()
        with contextlib.suppress(Exception):  # the stream is cut when the watch stops
            for event in self.watch.stream(self.core.list_namespaced_pod, NAMESPACE, timeout_seconds=600,
                                           resource_version=listing.metadata.resource_version):
                pod = event["object"]
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
                if ready and pod.metadata.name not in self.ready_at:
                    self.ready_at[pod.metadata.name] = time.time()

    def wait(self, names: list[str], timeout: float) -> None:
        deadline = time.time() + timeout
        while not all(n in self.ready_at for n in names):
            if time.time() > deadline:
                missing = [n for n in names if n not in self.ready_at]
                raise SystemExit(f"timed out: {len(missing)} pods never became ready, e.g. {missing[:3]}")
            time.sleep(0.05)


def start_rate(core: client.CoreV1Api, bodies: list[dict[str, Any]], label: str) -> None:
    names = [b["metadata"]["name"] for b in bodies]
    recorder = ReadyWatch(core)
    began = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda b: core.create_namespaced_pod(NAMESPACE, b), bodies))
    created = time.time() - began
    recorder.wait(names, timeout=300)
    took = max(recorder.ready_at[n] for n in names) - began
    print(f"{label}: {len(names)} pods created in {created:.2f}s, all Ready after {took:.2f}s "
          f"-> {len(names) / took:.1f} pods/s", flush=True)
    recorder.watch.stop()
    core.delete_collection_namespaced_pod(NAMESPACE, label_selector="bench=node", grace_period_seconds=1)
    while core.list_namespaced_pod(NAMESPACE).items:
        time.sleep(0.5)


def probe_latency(core: client.CoreV1Api, count: int) -> None:
    with tempfile.TemporaryDirectory() as record:
        os.chmod(record, 0o777)
        recorder = ReadyWatch(core)
        names = [f"latency-{i}" for i in range(count)]
        for name in names:
            core.create_namespaced_pod(NAMESPACE, local_pod(name, listen_after=2, record_dir=record))
            time.sleep(0.137)  # spread the starts over the probe period
        recorder.wait(names, timeout=120)
        lags = sorted(recorder.ready_at[n] - float((Path(record) / n).read_text()) for n in names)
    p90 = lags[int(0.9 * (len(lags) - 1))]
    print(f"probe-to-Ready (tcpSocket probe, periodSeconds 1): median {statistics.median(lags) * 1000:.0f} ms, "
          f"p90 {p90 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms (n={len(lags)})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, default=50)
    parser.add_argument("--simulated", type=int, default=300)
    parser.add_argument("--latency", type=int, default=10)
    args = parser.parse_args()
    config.load_kube_config()
    core = client.CoreV1Api()
    fresh_namespace(core, NAMESPACE)
    try:
        if args.local:
            start_rate(core, [local_pod(f"local-{i}") for i in range(args.local)], "process-backed pods")
        if args.simulated:
            start_rate(core, [simulated_pod(f"sim-{i}") for i in range(args.simulated)], "simulated pods")
        if args.latency:
            probe_latency(core, args.latency)
    finally:
        core.delete_namespace(NAMESPACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
