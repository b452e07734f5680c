"""What expand/contract migration Jobs cost a release, measured on a real API server with the real test web app
(``local/python:3`` pods that run) and real Jobs (one ``python3 -c pass`` process each) in one run.

- Two releases side by side in one operator, released alternately: ``migrating`` (``spec.migrations`` with an
  expand and a contract Job that do nothing) and ``plain`` (none), both with ``scaleDownDelaySeconds: 0``.
  Per release, from the forced git check (the ``bluegreen.dev/reconcile-at`` PATCH) to the selector switch
  (seen on a watch): the medians and their difference are the expand's cost to the cut-over; and to the release
  being settled (``Reconciling=False`` for the commit): for ``migrating`` that includes waiting for the previous
  colour's last pod to be gone, then the contract Job.
- For ``migrating``, from the watches: each expand Job's creation -> Complete, the last old pod gone -> the
  contract Job created (the operator's lag, its pod count polled every second) and the contract Job's run.
- The floor, in the same run: a bare Job with the same container, created by this process and watched to
  Complete (what a Job costs on this cluster with no operator involved).

Figures are printed (p50/p90); nothing is asserted. Usage: ``python benchmarks/migrations.py [--rounds 5]``
with $KUBECONFIG set (``make cluster-up``), or ``make bench-migrations``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import WatchThreads, git, median_p90
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from appmanifest import app_manifest  # noqa: E402
from kubesetup import fresh_namespace, install_crd  # noqa: E402

NAMESPACE = "bluegreen-bench-migrations"
GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
RELEASES = ("migrating", "plain")
NOOP_JOB = """apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: migrate, image: "local/python:3", command: [python3, -c, pass]}}]
"""


class Recorder(WatchThreads):
    """Watch threads (wall clock): selector switches, Job creations and completions, the last pod of each
    colour gone, and when each release was settled for a commit."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(4)
        self.core, self.batch = client.CoreV1Api(api), client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.switched: list[tuple[float, str, str]] = []  # (time, service, colour)
        self.job_added: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        self.pods: dict[tuple[str, str], set[str]] = {}  # (release, colour) -> live pod names
        self.last_pod_gone: dict[tuple[str, str], float] = {}
        self.settled: dict[tuple[str, str], float] = {}  # (release, commit) -> first time settled

    def start(self) -> None:
        self.run(self._services, self._jobs, self._pods, self._releases)

    def _services(self) -> None:
        last: dict[str, str | None] = {}
        for event in self.watches[0].stream(self.core.list_namespaced_service, NAMESPACE, timeout_seconds=3600):
            now, service = time.time(), event["object"]
            color = (service.spec.selector or {}).get("bluegreen.dev/color")
            if color is not None and color != last.get(service.metadata.name):
                with self.lock:
                    self.switched.append((now, service.metadata.name, color))
            last[service.metadata.name] = color

    def _jobs(self) -> None:
        for event in self.watches[1].stream(self.batch.list_namespaced_job, NAMESPACE, timeout_seconds=3600):
            now, job = time.time(), event["object"]
            key = f"{job.metadata.name}/{job.metadata.uid}"
            with self.lock:
                self.job_added.setdefault(key, now)
                if any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or []):
                    self.job_done.setdefault(key, now)

    def _pods(self) -> None:
        for event in self.watches[2].stream(self.core.list_namespaced_pod, NAMESPACE, timeout_seconds=3600):
            now, pod = time.time(), event["object"]
            labels = pod.metadata.labels or {}
            if "bluegreen.dev/color" not in labels:
                continue
            key = (labels.get("bluegreen.dev/release", ""), labels["bluegreen.dev/color"])
            with self.lock:
                live = self.pods.setdefault(key, set())
                if event["type"] == "DELETED":
                    live.discard(pod.metadata.name)
                    if not live:
                        self.last_pod_gone[key] = now
                else:
                    live.add(pod.metadata.name)

    def _releases(self) -> None:
        for event in self.watches[3].stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
                                            PLURAL, timeout_seconds=3600):
            now, release = time.time(), event["object"]
            status = release.get("status") or {}
            reconciling = next((c for c in status.get("conditions") or [] if c.get("type") == "Reconciling"), {})
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            if reconciling.get("status") == "False" and ready.get("status") == "True" and status.get("activeRevision"):
                with self.lock:
                    self.settled.setdefault((release["metadata"]["name"], status["activeRevision"]), now)

    def wait(self, probe: Callable[[], float | None], what: str, timeout: float = 180) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = probe()
            if found is not None:
                return found
            time.sleep(0.005)
        raise SystemExit(f"bench: {what} not seen within {timeout}s")

    def wait_switch(self, service: str, color: str, after: float) -> float:
        return self.wait(lambda: next((t for t, s, c in self.switched if (s, c) == (service, color) and t >= after),
                                      None), f"the switch of {service} to {color}")

    def job(self, prefix: str, after: float, done: bool = False) -> tuple[str, float]:
        """(key, time) of the first Job whose name starts with ``prefix`` added (or completed) after ``after``."""
        moments = self.job_done if done else self.job_added

        def probe() -> float | None:
            found = [(t, k) for k, t in moments.items() if k.startswith(prefix) and t >= after]
            return min(found)[0] if found else None
        moment = self.wait(probe, f"Job {prefix}* {'complete' if done else 'created'}")
        with self.lock:
            key = min((t, k) for k, t in moments.items() if k.startswith(prefix) and t >= after)[1]
        return key, moment


def summary(values: list[float]) -> str:
    median, p90 = median_p90(values)
    return f"p50 {median:6.2f} s   p90 {p90:6.2f} s   (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="releases of each of migrating and plain")
    args = parser.parse_args()
    config.load_kube_config()
    api = client.ApiClient()
    core, custom, batch = client.CoreV1Api(api), client.CustomObjectsApi(api), client.BatchV1Api(api)
    install_crd(api)
    fresh_namespace(core, NAMESPACE)
    for name in RELEASES:
        core.create_namespaced_service(NAMESPACE, {"metadata": {"name": name}, "spec": {
            "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}})
    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-bench-migrations-"))
    repo = workdir / "repo"
    (repo / "apps").mkdir(parents=True)
    (repo / "db").mkdir()
    git(repo, "init", "-q", "-b", "main")
    for phase in ("expand", "contract"):
        (repo / "db" / f"{phase}.yaml").write_text(NOOP_JOB.format(name=phase))
    recorder = Recorder(api)
    recorder.start()
    log = open(workdir / "operator.log", "wb")  # noqa: SIM115 (open for the child's lifetime)
    operator = subprocess.Popen([sys.executable, "-m", "bluegreen.cli", "run", "-n", NAMESPACE, "--log-format", "json"],
                                env={**os.environ, "BLUEGREEN_CACHE_DIR": str(workdir / "cache")}, stdout=log,
                                stderr=subprocess.STDOUT)

    def commit(release: str, version: str) -> str:
        (repo / "apps" / f"{release}.yaml").write_text(app_manifest(release, version, replicas=2))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{release} {version}")
        return git(repo, "rev-parse", "HEAD")

    def check_now(release: str) -> float:
        moment = time.time()
        custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, release, {
            "metadata": {"annotations": {"bluegreen.dev/reconcile-at": str(time.time_ns())}}})
        return moment

    def bare_job(i: int) -> float:
        container = {"name": "migrate", "image": "local/python:3", "command": ["python3", "-c", "pass"]}
        body: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"floor-{i}"},
                                "spec": {"backoffLimit": 0, "template": {"spec": {
                                    "restartPolicy": "Never", "containers": [container]}}}}
        asked = time.time()
        created = batch.create_namespaced_job(NAMESPACE, body)
        _, done = recorder.job(f"floor-{i}/{created.metadata.uid}", asked, done=True)
        return done - asked

    to_switch: dict[str, list[float]] = {r: [] for r in RELEASES}
    to_settled: dict[str, list[float]] = {r: [] for r in RELEASES}
    expand_runs, pod_to_contract, contract_runs, floor = [], [], [], []
    active = dict.fromkeys(RELEASES, "blue")
    try:
        for release in RELEASES:
            commit(release, "v0")
        for release in RELEASES:
            spec: dict[str, Any] = {"source": {"url": str(repo), "path": f"apps/{release}.yaml", "interval": "1h"},
                                    "service": release, "scaleDownDelaySeconds": 0}
            if release == "migrating":
                spec["migrations"] = {"expand": {"path": "db/expand.yaml"}, "contract": {"path": "db/contract.yaml"}}
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": release},
                "spec": spec})
            recorder.wait_switch(release, "blue", 0)
        for release in RELEASES:
            recorder.wait(lambda r=release: next((t for (n, _), t in recorder.settled.items() if n == r), None),
                          f"{release} settled")
        for i in range(1, args.rounds + 1):
            floor.append(bare_job(i))
            for release in RELEASES:
                previous = active[release]
                target = "green" if previous == "blue" else "blue"
                sha = commit(release, f"v{i}")
                asked = check_now(release)
                switched = recorder.wait_switch(release, target, asked)
                settled = recorder.wait(lambda r=release, s=sha: recorder.settled.get((r, s)), f"{release} settled")
                to_switch[release].append(switched - asked)
                to_settled[release].append(settled - asked)
                active[release] = target
                if release == "migrating":
                    key, added = recorder.job(f"migrating-expand-{sha[:10]}-{target}/", asked)
                    _, done = recorder.job(key, asked, done=True)
                    expand_runs.append(done - added)
                    key, contract_added = recorder.job(f"migrating-contract-{sha[:10]}-{target}/", asked)
                    _, contract_done = recorder.job(key, asked, done=True)
                    gone = recorder.last_pod_gone.get((release, previous), float("nan"))
                    pod_to_contract.append(contract_added - gone)
                    contract_runs.append(contract_done - contract_added)
            print(f"round {i:2d}: check -> switched: migrating {to_switch['migrating'][-1]:5.2f} s, plain "
                  f"{to_switch['plain'][-1]:5.2f} s; -> settled: migrating {to_settled['migrating'][-1]:5.2f} s, "
                  f"plain {to_settled['plain'][-1]:5.2f} s; bare Job {floor[-1]:5.2f} s", flush=True)
    finally:
        operator.terminate()
        operator.wait(timeout=20)
        recorder.stop()

    migrating, plain = statistics.median(to_switch["migrating"]), statistics.median(to_switch["plain"])
    bare = statistics.median(floor)
    print()
    print(f"floor: a bare Job, create -> Complete (no operator)      {summary(floor)}")
    print(f"forced check -> switched, no migrations                   {summary(to_switch['plain'])}")
    print(f"forced check -> switched, expand + contract               {summary(to_switch['migrating'])}")
    print(f"expand's cost to the cut-over (p50 difference)            {migrating - plain:6.2f} s "
          f"({(migrating - plain) / bare:.1f}x the bare Job)")
    print(f"  the expand Job, created -> Complete                     {summary(expand_runs)}")
    print(f"forced check -> settled, no migrations                    {summary(to_settled['plain'])}")
    print(f"forced check -> settled, contract passed                  {summary(to_settled['migrating'])}")
    print(f"  the previous colour's last pod gone -> contract created {summary(pod_to_contract)}")
    print(f"  the contract Job, created -> Complete                   {summary(contract_runs)}")
    core.delete_namespace(NAMESPACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
