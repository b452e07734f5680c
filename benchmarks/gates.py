"""What the release gates cost and how fast a rollback is, measured on a real API server with the real test web
app (``local/python:3`` pods that run) in one run.

- Pre-check overhead: two releases side by side in one operator, ``gated`` (a passing HTTP pre-promotion check
  against its preview Service, 1 s between attempts) and ``plain`` (no checks), each released alternately;
  per release, from the idle colour's Deployment reporting every replica updated, ready and available (seen on
  a watch) to the Service selector naming it (same watch thread): the medians and their difference.
- Rollback: ``gated`` also has a post-promotion HTTP check on its Service's ``/healthz`` (every 1 s). Each
  round releases a version, waits for the switch, then makes its ``/healthz`` fail (a flag file); timed from
  the failing check's verdict (the operator's ``check failed`` log line) to the selector back on the previous
  colour (seen on the watch), and from the moment the app began failing (the probe interval included).

Figures are printed (p50/p90); nothing is asserted. Usage: ``python benchmarks/gates.py [--rounds 5
--rollbacks 7]`` with $KUBECONFIG set (``make cluster-up``), or ``make bench-gates``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchkit import WatchThreads, git, median_p90
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from appmanifest import app_manifest  # noqa: E402
from kubesetup import fresh_namespace, install_crd  # noqa: E402

NAMESPACE = "bluegreen-bench-gates"
GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
RELEASES = ("gated", "plain")


class Recorder(WatchThreads):
    """Watch threads: when each (release, colour, commit) became fully available, and every selector change
    of each release's Service (wall clock, so they compare with the operator's log timestamps)."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(2)
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.available: dict[tuple[str, str, str], float] = {}
        self.switched: list[tuple[float, str, str]] = []  # (time, service, colour)

    def start(self) -> None:
        self.run(self._deployments, self._services)

    def _deployments(self) -> None:
        for event in self.watches[0].stream(self.apps.list_namespaced_deployment, NAMESPACE, timeout_seconds=3600):
            now, d = time.time(), event["object"]
            want, s = d.spec.replicas or 0, d.status
            full = want > 0 and (s.observed_generation or 0) >= (d.metadata.generation or 0) and \
                (s.replicas or 0) == (s.updated_replicas or 0) == (s.ready_replicas or 0) == \
                (s.available_replicas or 0) == want
            if full:
                labels, notes = d.metadata.labels or {}, d.metadata.annotations or {}
                key = (labels.get("bluegreen.dev/release", ""), labels.get("bluegreen.dev/color", ""),
                       notes.get("bluegreen.dev/commit", ""))
                with self.lock:
                    self.available.setdefault(key, now)

    def _services(self) -> None:
        last: dict[str, str | None] = {}
        for event in self.watches[1].stream(self.core.list_namespaced_service, NAMESPACE, timeout_seconds=3600):
            now, service = time.time(), event["object"]
            name = service.metadata.name
            color = (service.spec.selector or {}).get("bluegreen.dev/color")
            if name in RELEASES and color is not None and color != last.get(name):
                with self.lock:
                    self.switched.append((now, name, color))
            last[name] = color

    def wait_switch(self, service: str, color: str, after: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for moment, name, switched_to in self.switched:
                    if (name, switched_to) == (service, color) and moment >= after:
                        return moment
            time.sleep(0.005)
        raise SystemExit(f"bench: no switch of {service} to {color} within {timeout}s")

    def wait_available(self, release: str, color: str, commit: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if (release, color, commit) in self.available:
                    return self.available[(release, color, commit)]
            time.sleep(0.01)
        raise SystemExit(f"bench: {release}-{color} never seen fully available for {commit[:12]}")


def summary(values: list[float]) -> str:
    median, p90 = median_p90(values)
    return f"p50 {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(values)})"


def verdict_time(log: Path, commit: str, after: float) -> float | None:
    """Wall time of the operator's first ``check failed`` line for the post-promotion check of ``commit``."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("action") == "Check" and record.get("hook") == "postPromotion" and \
                record.get("commit") == commit[:12] and str(record.get("event", "")).startswith("check failed"):
            moment = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).timestamp()
            if moment >= after:
                return moment
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="releases of each of gated and plain")
    parser.add_argument("--rollbacks", type=int, default=7, help="post-promotion failures rolled back")
    args = parser.parse_args()
    config.load_kube_config()
    api = client.ApiClient()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    install_crd(api)
    fresh_namespace(core, NAMESPACE)
    for name in (*RELEASES, *(f"{r}-preview" for r in RELEASES)):
        app = name.removesuffix("-preview")
        core.create_namespaced_service(NAMESPACE, {"metadata": {"name": name}, "spec": {
            "selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}})

    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-bench-gates-"))
    repo = workdir / "repo"
    (repo / "apps").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    recorder = Recorder(api)
    recorder.start()
    log_path = workdir / "operator.log"
    log = open(log_path, "wb")  # noqa: SIM115 (open for the child's lifetime)
    operator = subprocess.Popen([sys.executable, "-m", "bluegreen.cli", "run", "-n", NAMESPACE, "--log-format", "json"],
                                env={**os.environ, "BLUEGREEN_CACHE_DIR": str(workdir / "cache")}, stdout=log,
                                stderr=subprocess.STDOUT)

    def commit(release: str, version: str, fail_file: Path | None = None) -> str:
        text = app_manifest(release, version, replicas=2, health_fail_file=str(fail_file) if fail_file else None)
        (repo / "apps" / f"{release}.yaml").write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{release} {version}")
        return git(repo, "rev-parse", "HEAD")

    def check_now(release: str) -> float:
        moment = time.time()
        custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, release, {
            "metadata": {"annotations": {"bluegreen.dev/reconcile-at": str(time.time_ns())}}})
        return moment

    checks = {"prePromotion": [{"name": "smoke", "http": {"service": "gated-preview", "path": "/healthz"},
                                "attempts": 3, "intervalSeconds": 1, "timeoutSeconds": 2}],
              "postPromotion": [{"name": "healthz", "http": {"service": "gated", "path": "/healthz"},
                                 "intervalSeconds": 1, "durationSeconds": 3600, "timeoutSeconds": 2}]}
    lags: dict[str, list[float]] = {r: [] for r in RELEASES}
    from_verdict: list[float] = []
    from_failure: list[float] = []
    active = {r: "blue" for r in RELEASES}
    try:
        for release in RELEASES:
            commit(release, "v0")
        for release in RELEASES:
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": release},
                "spec": {"source": {"url": str(repo), "path": f"apps/{release}.yaml", "interval": "1h"},
                         "service": release, "previewService": f"{release}-preview",
                         "scaleDownDelaySeconds": 3600, **({"checks": checks} if release == "gated" else {})}})
            recorder.wait_switch(release, "blue", 0)
        for i in range(1, args.rounds + 1):
            for release in RELEASES:
                target = "green" if active[release] == "blue" else "blue"
                sha = commit(release, f"v{i}")
                asked = check_now(release)
                switched = recorder.wait_switch(release, target, asked)
                lags[release].append(switched - recorder.wait_available(release, target, sha))
                active[release] = target
            print(f"round {i:2d}: available -> switched: gated {lags['gated'][-1] * 1000:7.1f} ms, "
                  f"plain {lags['plain'][-1] * 1000:7.1f} ms", flush=True)
        for i in range(1, args.rollbacks + 1):
            previous = active["gated"]
            target = "green" if previous == "blue" else "blue"
            fail_file = workdir / f"unhealthy-{i}"
            sha = commit("gated", f"r{i}", fail_file)
            recorder.wait_switch("gated", target, check_now("gated"))
            time.sleep(1.5)  # the post-promotion check runs (and passes) a little first
            failing = time.time()
            fail_file.touch()
            back = recorder.wait_switch("gated", previous, failing, timeout=30)
            verdict = verdict_time(log_path, sha, failing - 1)
            if verdict is not None:
                from_verdict.append(back - verdict)
            from_failure.append(back - failing)
            lag = (back - verdict) * 1000 if verdict is not None else float("nan")
            print(f"rollback {i:2d}: verdict -> selector back {lag:7.1f} ms, /healthz failing -> selector back "
                  f"{(back - failing) * 1000:7.1f} ms", flush=True)
            time.sleep(1)  # the failed colour is scaled down; the next round applies a new version to it
    finally:
        operator.terminate()
        operator.wait(timeout=20)
        recorder.stop()

    gated, plain = statistics.median(lags["gated"]), statistics.median(lags["plain"])
    print()
    print(f"idle available -> switched, no checks          {summary(lags['plain'])}")
    print(f"idle available -> switched, passing pre-check  {summary(lags['gated'])}")
    print(f"pre-check overhead (p50 difference)            {(gated - plain) * 1000:7.1f} ms")
    if from_verdict:
        print(f"failed post-check verdict -> selector back     {summary(from_verdict)}")
    print(f"/healthz failing -> selector back (1 s probes) {summary(from_failure)}")
    core.delete_namespace(NAMESPACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
