"""The git source at scale, measured in one run on the local control plane against a real git daemon.

1. Many releases, one repository: N BlueGreenReleases (default 200) follow the same repository and
   interval; after they all serve, the git daemon's log counts how often the operator contacted the
   repository per interval (the target is 1: one shared mirror, one remote check per interval).
2. Webhook -> switch for a warm rollback: a ``git revert`` is announced by a signed GitHub push webhook;
   time from the HTTP call to the Service selector switch (seen on a watch). Floor: one Service PATCH.
3. Memory after many fetch cycles: 1,000 commits, each announced by a webhook and fetched; the operator
   process's RSS is sampled every 100 cycles (it must stay flat).

Usage: ``python benchmarks/git_source.py [--releases 200] [--cycles 1000]`` with $KUBECONFIG set
(``make cluster-up``), or ``make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from kubesetup import fresh_namespace, install_crd  # noqa: E402

GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
MANY, ONE = "bluegreen-bench-many", "bluegreen-bench-webhook"
SECRET = "bench-webhook-secret"
GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@local", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@local", "GIT_CONFIG_NOSYSTEM": "1"}
MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers: [{{name: web, image: "registry.local/app:{version}"}}]
# {note}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, workdir: Path) -> None:
        config.load_kube_config()
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.workdir = workdir
        self.served = workdir / "served"
        self.repo = "deploy"  # the repository that commit()/publish() work on
        self.daemon_log = workdir / "git-daemon.log"
        self.port = free_port()
        self.webhook_port = free_port()

    # ---- set-up ------------------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        return self.workdir / "source" / self.repo

    def new_repository(self, name: str) -> None:
        """A working repository and its bare copy served by the daemon; later commits go to it."""
        self.repo = name
        self.source.mkdir(parents=True)
        git(self.source, "init", "-q", "-b", "main")
        self.commit("v1", "first")
        subprocess.run(["git", "clone", "-q", "--bare", str(self.source), str(self.served / f"{name}.git")],
                       check=True)

    def start_git(self) -> None:
        self.served.mkdir()
        self.new_repository("deploy")
        self.daemon = subprocess.Popen(
            ["git", "daemon", "--verbose", "--export-all", "--reuseaddr", f"--base-path={self.served}",
             "--listen=127.0.0.1", f"--port={self.port}", str(self.served)],
            stdout=subprocess.DEVNULL, stderr=open(self.daemon_log, "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("bench: git daemon did not start")

    @property
    def url(self) -> str:
        return f"git://127.0.0.1:{self.port}/{self.repo}.git"

    def commit(self, version: str, note: str) -> str:
        (self.source / "app.yaml").write_text(MANIFEST.format(version=version, note=note))
        git(self.source, "add", "-A")
        git(self.source, "commit", "-q", "-m", f"{version} {note}")
        return git(self.source, "rev-parse", "HEAD")

    def publish(self) -> None:
        git(self.source, "push", "-q", "--force", str(self.served / f"{self.repo}.git"), "main")

    def remote_contacts(self) -> int:
        return len(re.findall(r"Request upload-pack", self.daemon_log.read_text(errors="replace")))

    def install(self) -> None:
        install_crd(self.api)
        for ns in (MANY, ONE):
            fresh_namespace(self.core, ns)

    def start_operator(self) -> None:
        secret_file = self.workdir / "webhook-secret"
        secret_file.write_text(SECRET)
        self.operator_log = self.workdir / "operator.log"
        self.operator = subprocess.Popen(
            [sys.executable, "-m", "bluegreen.cli", "run", "-n", MANY, "-n", ONE, "--log-format", "json",
             "--webhook-listen", f"127.0.0.1:{self.webhook_port}", "--webhook-secret-file", str(secret_file)],
            env={**os.environ, "BLUEGREEN_CACHE_DIR": str(self.workdir / "cache"), "BLUEGREEN_WORKERS": "8"},
            stdout=open(self.operator_log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.webhook_port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("bench: the operator's webhook receiver did not come up")

    def release(self, ns: str, name: str, service: str, interval: str) -> None:
        self.core.create_namespaced_service(ns, {"metadata": {"name": service}, "spec": {
            "selector": {"app": "app"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": name},
            "spec": {"source": {"url": self.url, "path": "app.yaml", "interval": interval}, "service": service,
                     "scaleDownDelaySeconds": 3600}})

    def serving(self, ns: str) -> int:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        return sum(1 for r in items if (r.get("status") or {}).get("activeColor"))

    def push_webhook(self) -> float:
        body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": self.url}}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"http://127.0.0.1:{self.webhook_port}/hooks/github", data=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202, response.status
        return started

    # ---- the three measurements --------------------------------------------------------------------
    def many_releases(self, count: int, interval: float, windows: int) -> None:
        started = time.monotonic()
        for i in range(count):
            self.release(MANY, f"app-{i:03d}", f"app-{i:03d}", f"{interval:g}s")
        while (done := self.serving(MANY)) < count:
            if time.monotonic() - started > 900:
                raise SystemExit(f"bench: only {done}/{count} releases serve after 900s")
            time.sleep(1)
        took = time.monotonic() - started
        print(f"{count} releases of one repository all serving after {took:.1f}s", flush=True)
        time.sleep(interval)  # settle into the steady polling rhythm
        per_window = []
        for _ in range(windows):
            before = self.remote_contacts()
            time.sleep(interval)
            per_window.append(self.remote_contacts() - before)
        print(f"remote contacts per {interval:g}s interval, {count} releases: {per_window} "
              f"(median {statistics.median(per_window):g}; target 1)", flush=True)
        self.core.delete_namespace(MANY)  # the next measurements run on a quiet cluster: wait until it is gone
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(MANY)
            except ApiException as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(1)
        time.sleep(5)  # the operator's last DELETED events

    def webhook_rollback(self, rounds: int) -> tuple[list[float], float]:
        self.new_repository("shop")
        self.release(ONE, "shop", "shop", "1h")
        switches: list[tuple[float, str]] = []
        w = watch.Watch()

        def follow() -> None:
            try:
                for event in w.stream(self.core.list_namespaced_service, ONE, field_selector="metadata.name=shop"):
                    switches.append((time.monotonic(), (event["object"].spec.selector or {}).get(
                        "bluegreen.dev/color", "")))
            except Exception:
                return

        threading.Thread(target=follow, daemon=True).start()
        while self.serving(ONE) < 1:
            time.sleep(0.1)
        timings = []
        for i in range(rounds):
            self.commit(f"r{i}", "forward")
            self.publish()
            asked = self.push_webhook()
            _, forward = self.wait_switch(switches, asked, switches[-1][1] if switches else None)
            git(self.source, "revert", "--no-edit", "HEAD")
            self.publish()
            asked = self.push_webhook()
            moment, _ = self.wait_switch(switches, asked, forward)
            timings.append(moment - asked)
        w.stop()
        floor = []
        self.core.create_namespaced_service(ONE, {"metadata": {"name": "floor"}, "spec": {
            "selector": {"app": "x"}, "ports": [{"port": 80}]}})
        for i in range(50):
            t = time.monotonic()
            self.core.patch_namespaced_service("floor", ONE, {"spec": {"selector": {"bluegreen.dev/color": str(i)}}})
            floor.append(time.monotonic() - t)
        return timings, statistics.median(floor)

    @staticmethod
    def wait_switch(switches: list[tuple[float, str]], after: float, away_from: str | None) -> tuple[float, str]:
        """The first selector change seen after ``after`` to a colour other than ``away_from``: (time, colour)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for moment, color in list(switches):
                if moment >= after and color and color != away_from:
                    return moment, color
            time.sleep(0.002)
        raise SystemExit("bench: no switch after the webhook")

    def memory_cycles(self, cycles: int) -> list[tuple[int, int]]:
        samples = [(0, rss_kib(self.operator.pid))]
        for i in range(1, cycles + 1):
            sha = self.commit("r-mem", f"cycle {i}")  # a new commit; the template is unchanged
            self.publish()
            self.push_webhook()
            deadline = time.monotonic() + 30
            while (self.custom.get_namespaced_custom_object(GROUP, VERSION, ONE, PLURAL, "shop").get("status") or {}
                   ).get("lastAttemptedRevision") != sha:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: cycle {i} was not fetched")
                time.sleep(0.01)
            if i % 100 == 0:
                samples.append((i, rss_kib(self.operator.pid)))
                print(f"  after {i:4d} fetch cycles: operator RSS {samples[-1][1] / 1024:7.2f} MiB", flush=True)
        return samples

    def mirror_facts(self) -> str:
        """Packs and shallow entries in the webhook repository's mirror, and the compactions the operator ran."""
        log = self.operator_log.read_text(errors="replace")
        runs = [json.loads(line) for line in log.splitlines() if '"mirror compacted"' in line]
        facts = []
        for mirror in sorted((self.workdir / "cache").iterdir()):
            if (mirror / "objects" / "pack").is_dir():
                packs = len(list((mirror / "objects" / "pack").glob("*.pack")))
                shallow = mirror / "shallow"
                entries = len(shallow.read_text().split()) if shallow.exists() else 0
                facts.append(f"{mirror.name}: {packs} packs, {entries} shallow entries")
        took = statistics.median(r["ms"] for r in runs) if runs else 0.0
        return f"mirrors after the cycles: {'; '.join(facts)}; compactions: {len(runs)} (median {took:.1f} ms)"

    def stop(self) -> None:
        for process in (getattr(self, "operator", None), getattr(self, "daemon", None)):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        for ns in (MANY, ONE):
            with contextlib.suppress(ApiException):
                self.core.delete_namespace(ns)


def report_memory(samples: list[tuple[int, int]]) -> None:
    """Growth from cycle 100 to the end, and over the second half alone (steady state)."""
    by_cycle = dict(samples)
    last = samples[-1][0]
    half = max((c for c in by_cycle if c <= last // 2), default=0)
    start = 100 if 100 in by_cycle and last > 100 else 0
    for label, a in (("overall", start), ("second half", half)):
        if last > a:
            grew = by_cycle[last] - by_cycle[a]
            print(f"RSS {label}: cycle {a} {by_cycle[a] / 1024:.1f} MiB -> cycle {last} {by_cycle[last] / 1024:.1f} MiB"
                  f", {grew / 1024:+.2f} MiB ({grew * 1024 / (last - a):+.0f} bytes per cycle)", flush=True)
    steady = [rss for cycle, rss in samples if cycle >= half]
    print(f"RSS from cycle {half} on stays within {min(steady) / 1024:.2f} .. {max(steady) / 1024:.2f} MiB "
          "(freed heap goes back to the OS once a minute, hence a sawtooth)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0, help="the releases' git interval, seconds")
    parser.add_argument("--windows", type=int, default=3, help="intervals counted")
    parser.add_argument("--rounds", type=int, default=5, help="webhook rollbacks timed")
    parser.add_argument("--cycles", type=int, default=1000, help="fetch cycles for the memory measurement")
    args = parser.parse_args()
    bench = Bench(Path(tempfile.mkdtemp(prefix="bluegreen-bench-git-")))
    try:
        bench.start_git()
        bench.install()
        bench.start_operator()
        print("== 1. many releases, one repository", flush=True)
        bench.many_releases(args.releases, args.interval, args.windows)
        print("== 2. webhook -> switch for a warm rollback", flush=True)
        timings, floor = bench.webhook_rollback(args.rounds)
        print(f"webhook call -> selector switched (warm rollback): median {statistics.median(timings) * 1000:.1f} ms, "
              f"max {max(timings) * 1000:.1f} ms (n={len(timings)}); Service PATCH floor {floor * 1000:.1f} ms; "
              f"ratio {statistics.median(timings) / floor:.1f}x", flush=True)
        print(f"== 3. operator memory over {args.cycles} fetch cycles", flush=True)
        samples = bench.memory_cycles(args.cycles)
        report_memory(samples)
        print(bench.mirror_facts(), flush=True)
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
