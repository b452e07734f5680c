"""How fast the operator reacts, measured on a real API server in one run.

Over repeated releases of one BlueGreenRelease it prints medians (and p90) of:

- switch lag: from the moment the idle colour's Deployment reports every replica updated, ready and
  available (as seen on a watch) to the moment the Service selector names that colour (seen on a watch);
- warm rollback by webhook: from the push webhook (generic provider, HMAC-signed, sent to the operator's
  receiver on loopback) announcing a ``git revert`` to the selector switch;
- warm switch by forced check: the same after reverting the revert, announced by the
  ``bluegreen.dev/reconcile-at`` annotation PATCH (``bluegreen reconcile``);
- the floor: the raw latency of one Service PATCH round trip from this process;

and the ratios of the first two to the floor. Both timestamps of a lag are taken by the same watcher, so
watch delivery delays cancel out.

Usage: ``python benchmarks/release_latency.py [--releases 10]`` with $KUBECONFIG set (``make cluster-up``),
or ``make bench``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchkit import WatchThreads, git, median_p90
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from kubesetup import fresh_namespace, install_crd  # noqa: E402

NAMESPACE = "bluegreen-bench"
GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
MANIFEST = (ROOT / "demo" / "app" / "deployment.yaml").read_text().replace("@CHECKOUT@", str(ROOT)).replace(
    "initialDelaySeconds: 2", "initialDelaySeconds: 1")


class Recorder(WatchThreads):
    """Watch threads that timestamp when each colour becomes fully available and when the selector changes."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(2)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.available: dict[tuple[str, str], float] = {}  # (color, commit) -> first time fully available
        self.switched: list[tuple[float, str]] = []  # (time, color)

    def start(self) -> None:
        self.run(self._deployments, self._service)

    def _deployments(self) -> None:
        for event in self.watches[0].stream(self.apps.list_namespaced_deployment, NAMESPACE, timeout_seconds=3600):
            now = time.monotonic()
            d = event["object"]
            want = d.spec.replicas or 0
            status = d.status
            full = want > 0 and (status.observed_generation or 0) >= (d.metadata.generation or 0) and \
                (status.replicas or 0) == (status.updated_replicas or 0) == (status.ready_replicas or 0) == \
                (status.available_replicas or 0) == want
            if full:
                key = (d.metadata.labels.get("bluegreen.dev/color"), d.metadata.annotations.get("bluegreen.dev/commit"))
                with self.lock:
                    self.available.setdefault(key, now)

    def _service(self) -> None:
        last = None
        for event in self.watches[1].stream(self.core.list_namespaced_service, NAMESPACE,
                                            field_selector="metadata.name=shop", timeout_seconds=3600):
            now = time.monotonic()
            color = (event["object"].spec.selector or {}).get("bluegreen.dev/color")
            if color != last and color is not None:
                with self.lock:
                    self.switched.append((now, color))
            last = color

    def wait_switch(self, color: str, after: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for moment, switched_to in self.switched:
                    if switched_to == color and moment >= after:
                        return moment
            time.sleep(0.005)
        raise SystemExit(f"bench: no switch to {color} within {timeout}s")


def summary(values: list[float]) -> str:
    median, p90 = median_p90(values)
    return f"median {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10, help="forward releases (each followed by a revert)")
    parser.add_argument("--patches", type=int, default=50, help="Service PATCHes timed for the floor")
    args = parser.parse_args()
    config.load_kube_config()
    api = client.ApiClient()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    install_crd(api)
    fresh_namespace(core, NAMESPACE)
    for name in ("shop", "floor"):
        core.create_namespaced_service(NAMESPACE, {"metadata": {"name": name}, "spec": {
            "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}})

    # The floor: one PATCH of one selector key, as the operator's switch does.
    floor = []
    for i in range(args.patches):
        started = time.monotonic()
        core.patch_namespaced_service("floor", NAMESPACE, {"spec": {"selector": {"bluegreen.dev/color": f"c{i % 2}"}}})
        floor.append(time.monotonic() - started)

    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-bench-"))
    repo = workdir / "repo"
    (repo / "apps").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    recorder = Recorder(api)
    recorder.start()
    log = open(workdir / "operator.log", "wb")  # noqa: SIM115 (open for the child's lifetime)
    secret = "release-latency-bench"
    (workdir / "webhook-secret").write_text(secret)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    operator = subprocess.Popen([sys.executable, "-m", "bluegreen.cli", "run", "-n", NAMESPACE, "--log-format", "json",
                                 "--webhook-listen", f"127.0.0.1:{port}",
                                 "--webhook-secret-file", str(workdir / "webhook-secret")],
                                env={**os.environ, "BLUEGREEN_CACHE_DIR": str(workdir / "cache")}, stdout=log,
                                stderr=subprocess.STDOUT)

    def commit(version: str) -> str:
        (repo / "apps" / "deployment.yaml").write_text(
            MANIFEST.replace("{name: APP_VERSION, value: v1}", f"{{name: APP_VERSION, value: {version}}}"))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", version)
        return git(repo, "rev-parse", "HEAD")

    def check_now() -> float:
        moment = time.monotonic()
        custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "shop", {
            "metadata": {"annotations": {"bluegreen.dev/reconcile-at": str(time.time_ns())}}})
        return moment

    def push() -> float:
        """A push webhook for the repository, as a git server sends it; returns when it was sent."""
        body = json.dumps({"repository": str(repo), "ref": "refs/heads/main"}).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/generic", data=body, headers={
            "Content-Type": "application/json", "X-Signature-256": signature})
        moment = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202, response.status
        return moment

    switch_lag: list[float] = []
    rollback: list[float] = []
    forced: list[float] = []
    try:
        commit("v0")
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": "shop"},
            "spec": {"source": {"url": str(repo), "path": "apps/deployment.yaml", "interval": "1h"},
                     "service": "shop", "scaleDownDelaySeconds": 3600}})
        recorder.wait_switch("blue", 0)
        active = "blue"
        for i in range(1, args.releases + 1):
            target = "green" if active == "blue" else "blue"
            sha = commit(f"v{i}")
            asked = check_now()
            switched = recorder.wait_switch(target, asked)
            with recorder.lock:
                ready = recorder.available[(target, sha)]
            switch_lag.append(switched - ready)
            # git revert: the previous colour is warm, so this is a selector flip only.
            git(repo, "revert", "--no-edit", "HEAD")
            asked = push()
            rollback.append(recorder.wait_switch(active, asked) - asked)
            # roll forward again (also warm) so the next release starts from the same shape
            git(repo, "revert", "--no-edit", "HEAD")
            asked = check_now()
            forced.append(recorder.wait_switch(target, asked) - asked)
            active = target
            print(f"release {i:2d}: switch lag {switch_lag[-1] * 1000:6.1f} ms, webhook warm rollback "
                  f"{rollback[-1] * 1000:6.1f} ms, forced-check warm switch {forced[-1] * 1000:6.1f} ms", flush=True)
    finally:
        operator.terminate()
        operator.wait(timeout=20)
        recorder.stop()

    floor_median = statistics.median(floor)
    print()
    print(f"Service PATCH (floor)                 {summary(floor)}")
    print(f"idle available -> selector switched   {summary(switch_lag)}   "
          f"ratio to floor {statistics.median(switch_lag) / floor_median:5.1f}x")
    print(f"webhook -> warm rollback switch       {summary(rollback)}   "
          f"ratio to floor {statistics.median(rollback) / floor_median:5.1f}x")
    print(f"forced check -> warm switch           {summary(forced)}   "
          f"ratio to floor {statistics.median(forced) / floor_median:5.1f}x")
    core.delete_namespace(NAMESPACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
