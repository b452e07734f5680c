"""The operator at scale, each figure beside its floor measured in the same run on the same cluster.

N BlueGreenReleases (one replica, one Service each) follow a few shared local git repositories; the first
``--followers`` of them follow repository 0, the rest are spread over the others. The operator runs as a
real process (``bluegreen run``) under a ServiceAccount bound to the project's namespaced Role
(manifests/namespaced/rbac.yaml). Pods are simulated (image ``shop:v1``, readiness delay 1 s).

- (a) create N releases and their Services -> all serving (the selector names a colour and that colour's
  Deployment is fully available); floor: N plain one-replica Deployments created the same way -> all available.
- (b) one commit to repository 0 (announced by a push webhook, as a git server would) -> all its followers
  switched to the new colour; floor: the pod templates of as many plain Deployments patched -> all rolled out.
- (c) API requests the operator makes per idle minute and release, by verb and resource, counted from the
  API server's audit log (tests/cluster/audit-policy.yaml); again with a hanging repository present (a
  loopback TCP server that accepts and never answers) followed by ``--hanging`` more releases.
- (d) the operator's RSS and CPU over each idle window (/proc/<pid>/stat and status).

Targets: (a), (b) <= 1.1 x floor; (c) zero reads per idle release; (d) RSS < 200 MiB, CPU < 5 % of a core.
Figures are printed, never asserted. The floor runs first, in its own namespace, and is deleted before the
operator starts; both namespaces are deleted at the end. Every wait is bounded by ``--phase-timeout``.

Usage: ``python benchmarks/scale.py [--releases 1000] [--followers 500] [--repositories 4]`` with $KUBECONFIG
pointing at the local control plane (``make cluster-up``), or ``make bench-scale``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from probes import READS, AuditLog, Goal, ProcessSample, Tracker, complete, image
from workload import HangingServer, Repo, deployment, drained, free_port, in_parallel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from kubesetup import fresh_namespace, install_crd  # noqa: E402

FLOOR_NS, NS = "bluegreen-scale-floor", "bluegreen-scale"
ACCOUNT = "bluegreen-operator"
ROLE = ROOT / "manifests" / "namespaced" / "rbac.yaml"
GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
OLD, NEW = "shop:v1", "shop:v2"
SECRET = "scale-bench-webhook-secret"
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {text}", flush=True)


class PhaseTimeout(Exception):
    pass


def launch_operator(namespace: str, kubeconfig: Path, workdir: Path, webhook_port: int) -> subprocess.Popen[bytes]:
    """The operator as a user runs it (``bluegreen run``), watching ``namespace`` under the ServiceAccount of
    ``kubeconfig``, with the push-webhook receiver on loopback. The one place that knows how to start it."""
    secret_file = workdir / "webhook-secret"
    secret_file.write_text(SECRET)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "BLUEGREEN_CACHE_DIR": str(workdir / "cache"),
           "PYTHONUNBUFFERED": "1"}
    with open(workdir / "operator.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bluegreen.cli", "run", "--namespace", namespace, "--log-format", "json",
             "--webhook-listen", f"127.0.0.1:{webhook_port}", "--webhook-secret-file", str(secret_file)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def per_minute(counts: Counter[tuple[str, str]], seconds: float, releases: int) -> list[str]:
    rows = [f"      {'verb':8} {'resource':34} {'per minute':>10} {'per release':>12}"]
    for (verb, resource), n in sorted(counts.items(), key=lambda kv: -kv[1]):
        rate = n * 60 / seconds
        rows.append(f"      {verb:8} {resource:34} {rate:10.1f} {rate / max(releases, 1):12.3f}")
    return rows if counts else [*rows, "      (none)"]


class ScaleBench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        config.load_kube_config()
        conf = client.Configuration.get_default_copy()
        conf.connection_pool_maxsize = args.threads + 8
        self.api = client.ApiClient(conf)
        self.core, self.apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        self.custom, self.rbac = client.CustomObjectsApi(self.api), client.RbacAuthorizationV1Api(self.api)
        self.operator: subprocess.Popen[bytes] | None = None
        self.hanging: HangingServer | None = None
        self.trackers: list[Tracker] = []
        self.followers: list[list[str]] = []
        self.audit: AuditLog | None = None
        self.webhook_port = free_port()
        self.results: dict[str, Any] = {}

    # ---- set-up and clean-up ---------------------------------------------------------------------
    def delete_namespaces(self, names: Iterable[str]) -> None:
        """Delete and wait until they are gone (their pods too), within the phase timeout."""
        names = list(names)
        for name in names:
            with contextlib.suppress(ApiException):
                drained(self.core.delete_namespace(name, _preload_content=False))
        started, last = time.monotonic(), 0.0
        for name in names:
            while True:
                try:
                    drained(self.core.read_namespace(name, _preload_content=False))
                except ApiException as exc:
                    if exc.status == 404:
                        break
                    raise
                if time.monotonic() - started > self.args.phase_timeout:
                    raise PhaseTimeout(f"namespace {name} still exists after {self.args.phase_timeout:.0f}s")
                if time.monotonic() - last >= 10:
                    say(f"  waiting for namespace {name} to be deleted")
                    last = time.monotonic()
                time.sleep(1)

    def setup(self) -> None:
        install_crd(self.api)
        self.delete_namespaces([FLOOR_NS, NS])
        for name in (FLOOR_NS, NS):
            fresh_namespace(self.core, name)
        self.kubeconfig = self.operator_kubeconfig()
        self.audit = AuditLog(Path(self.args.audit_log), f"system:serviceaccount:{NS}:{ACCOUNT}").start()
        repos, delay = self.workdir / "repos", self.args.readiness_delay
        self.repos = [Repo(repos / f"deploy-{i}", OLD, delay) for i in range(self.args.repositories)]

    def operator_kubeconfig(self) -> Path:
        """A ServiceAccount in NS bound to the project's namespaced Role, and a kubeconfig with its token."""
        self.core.create_namespaced_service_account(NS, {"metadata": {"name": ACCOUNT}})
        role, binding = yaml.safe_load_all(ROLE.read_text())
        role["metadata"]["namespace"] = binding["metadata"]["namespace"] = binding["subjects"][0]["namespace"] = NS
        self.rbac.create_namespaced_role(NS, role)
        self.rbac.create_namespaced_role_binding(NS, binding)
        deadline = time.monotonic() + 30
        while not (account := self.core.read_namespaced_service_account(ACCOUNT, NS)).secrets:
            if time.monotonic() > deadline:
                raise PhaseTimeout("no token for the operator's ServiceAccount after 30s")
            time.sleep(0.2)
        token = base64.b64decode(self.core.read_namespaced_secret(account.secrets[0].name, NS).data["token"]).decode()
        conf = self.api.configuration
        path = self.workdir / "operator.kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "operator",
            "clusters": [{"name": "c", "cluster": {"server": conf.host, "certificate-authority": conf.ssl_ca_cert}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "c", "user": "operator", "namespace": NS}}]}))
        return path

    def cleanup(self) -> None:
        for tracker in self.trackers:
            tracker.stop()
        if self.hanging is not None:  # first: its held connections close, so the operator's fetches end
            self.hanging.stop()
        if self.operator is not None and self.operator.poll() is None:
            self.operator.terminate()
            try:
                self.operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait()
        if self.audit is not None:
            self.audit.stop()
        say("cleaning up: deleting the namespaces")
        self.delete_namespaces([FLOOR_NS, NS])

    # ---- waiting ---------------------------------------------------------------------------------
    def wait(self, goal: Goal, started: float, timeout: float | None = None) -> float:
        """Seconds from ``started`` until every name of ``goal`` passed (seen on the watches)."""
        timeout = timeout or self.args.phase_timeout
        deadline = started + timeout
        while not goal.reached.wait(10):
            if self.operator is not None and self.operator.poll() is not None:
                raise PhaseTimeout(f"the operator exited ({self.operator.returncode}); see {self.workdir}/operator.log")
            if time.monotonic() > deadline:
                raise PhaseTimeout(f"{goal.label}: only {len(goal.done)}/{len(goal.names)} after {timeout:.0f}s")
            say(f"  {goal.label}: {len(goal.done)}/{len(goal.names)}")
        assert goal.reached_at is not None
        return goal.reached_at - started

    def wait_quiet(self, name_prefix: str | None, quiet: float = 10.0) -> None:
        """Until the operator has made no write (naming an object that starts with ``name_prefix``) for ``quiet``
        seconds, so an idle window is idle; at most two intervals."""
        if self.audit is None:
            time.sleep(3 * quiet)
            return
        deadline = time.monotonic() + max(60.0, 2 * self.args.interval)
        while time.time() - self.audit.last_write(name_prefix) < quiet:
            if time.monotonic() > deadline:
                say(f"  the operator never stopped writing for {quiet:.0f}s; measuring anyway")
                return
            time.sleep(1)

    # ---- the floor -------------------------------------------------------------------------------
    def floor(self) -> None:
        n, f, threads = self.args.releases, self.args.followers, self.args.threads
        names = [f"floor-{i:04d}" for i in range(n)]
        tracker = Tracker(self.api, FLOOR_NS, services=False).start()
        self.trackers.append(tracker)

        def ready(img: str) -> Callable[[str], bool]:
            return lambda name: complete(d := tracker.deployments.get(name)) and image(d) == img

        say(f"== floor (a): {n} plain one-replica Deployments created directly -> all available")
        goal = tracker.pursue(Goal("floor (a) available", names, ready(OLD)))
        started = time.monotonic()
        took = in_parallel(threads, lambda name: drained(self.apps.create_namespaced_deployment(
            FLOOR_NS, deployment(name, {"app": name}, OLD, self.args.readiness_delay), _preload_content=False)),
            names, say, "floor Deployments created")
        self.results["floor_a"] = self.wait(goal, started)
        say(f"floor (a): all {n} available after {self.results['floor_a']:.1f}s (creating them took {took:.1f}s)")

        say(f"== floor (b): the pod templates of {f} of them patched -> all rolled out")
        goal = tracker.pursue(Goal("floor (b) rolled out", names[:f], ready(NEW)))
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": NEW}]}}}}
        started = time.monotonic()
        took = in_parallel(threads, lambda name: drained(self.apps.patch_namespaced_deployment(
            name, FLOOR_NS, patch, _preload_content=False)), names[:f], say, "floor Deployments patched")
        self.results["floor_b"] = self.wait(goal, started)
        say(f"floor (b): all {f} rolled out after {self.results['floor_b']:.1f}s (patching took {took:.1f}s)")
        tracker.stop()
        say("deleting the floor's namespace before the operator phase")
        self.delete_namespaces([FLOOR_NS])

    # ---- the operator ----------------------------------------------------------------------------
    def start_operator(self) -> None:
        self.operator = launch_operator(NS, self.kubeconfig, self.workdir, self.webhook_port)
        deadline = time.monotonic() + 60
        while True:  # up once its webhook receiver answers and the audit log shows it listed the releases
            if self.operator.poll() is not None or time.monotonic() > deadline:
                raise PhaseTimeout(f"the operator did not come up; see {self.workdir}/operator.log")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.webhook_port}/healthz", timeout=1)
                if self.audit is None or self.audit.has("list", "bluegreenreleases"):
                    break
                if time.monotonic() > deadline - 30:
                    say(f"no operator requests in {self.args.audit_log} (is kube-apiserver auditing? see "
                        "tests/cluster/controlplane.py): API requests (c) are not counted")
                    self.audit.stop()
                    self.audit = None
            time.sleep(0.2)
        say(f"operator running, pid {self.operator.pid}")

    def create_release(self, name: str, url: str) -> None:
        drained(self.core.create_namespaced_service(NS, {"metadata": {"name": name}, "spec": {
            "selector": {"bluegreen.dev/release": name}, "ports": [{"port": 80, "targetPort": 8080}]}},
            _preload_content=False))
        drained(self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": name},
            # a long scale-down delay keeps the old colour warm: no scale-downs inside the measurements
            "spec": {"source": {"url": url, "path": "app.yaml", "interval": f"{self.args.interval}s"},
                     "service": name, "scaleDownDelaySeconds": 3600}}, _preload_content=False))

    def push_webhook(self, url: str) -> None:
        body = json.dumps({"repository": url, "ref": "refs/heads/main"}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"http://127.0.0.1:{self.webhook_port}/hooks/generic", data=body, headers={
            "Content-Type": "application/json", "X-Signature-256": signature})
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 202:
                raise PhaseTimeout(f"the push webhook answered {response.status}")

    def serving(self, img: str) -> Callable[[str], bool]:
        """A release serves ``img``: its Service selects a colour whose Deployment runs it, fully available."""
        def check(name: str) -> bool:
            color = self.tracker.selector_color(name)
            d = self.tracker.deployments.get(f"{name}-{color}") if color else None
            return complete(d) and image(d) == img
        return check

    def releases(self) -> None:
        n, f, r = self.args.releases, self.args.followers, self.args.repositories
        names = [f"app-{i:04d}" for i in range(n)]
        repo_of = {name: 0 if i < f else 1 + (i - f) % max(r - 1, 1) for i, name in enumerate(names)}
        self.followers = [[name for name in names if repo_of[name] == i] for i in range(r)]
        self.tracker = Tracker(self.api, NS, services=True,
                               owner_of=lambda name: name.removesuffix("-blue").removesuffix("-green")).start()
        self.trackers.append(self.tracker)

        say(f"== (a): {n} releases and their Services created -> all serving ({r} repositories)")
        goal = self.tracker.pursue(Goal("(a) serving", names, self.serving(OLD)))
        started, wall = time.monotonic(), time.time()
        took = in_parallel(self.args.threads, lambda name: self.create_release(name, self.repos[repo_of[name]].url),
                           names, say, "releases created")
        self.results["a"] = self.wait(goal, started)
        say(f"(a): all {n} serving after {self.results['a']:.1f}s (creating them took {took:.1f}s); "
            f"floor {self.results['floor_a']:.1f}s, ratio {self.results['a'] / self.results['floor_a']:.2f}")
        self.report_requests("(a)", wall, n)

        say(f"== (b): one commit to the repository {len(self.followers[0])} releases follow -> all switched")
        wall = time.time()
        self.results["b"] = self.commit_and_switch(0, "(b) switched")
        say(f"(b): all {len(self.followers[0])} switched after {self.results['b']:.1f}s; floor "
            f"{self.results['floor_b']:.1f}s, ratio {self.results['b'] / self.results['floor_b']:.2f}")
        self.report_requests("(b)", wall, len(self.followers[0]))

    def commit_and_switch(self, repo: int, label: str, timeout: float | None = None) -> float:
        """Commit the new image to ``repo``, announce it by webhook; seconds until all its followers serve it."""
        goal = self.tracker.pursue(Goal(label, self.followers[repo], self.serving(NEW)))
        started = time.monotonic()
        self.repos[repo].commit(NEW)
        self.push_webhook(self.repos[repo].url)
        return self.wait(goal, started, timeout)

    def report_requests(self, label: str, since: float, releases: int) -> None:
        if self.audit is not None:
            counts = self.audit.between(since, time.time())
            top = ", ".join(f"{v} {res} {c}" for (v, res), c in counts.most_common(6))
            say(f"{label}: the operator made {sum(counts.values())} API requests "
                f"({sum(counts.values()) / releases:.1f} per release): {top}")

    # ---- idle ------------------------------------------------------------------------------------
    def idle(self, key: str, label: str, releases: int, hanging: int) -> None:
        """(c) and (d) over one idle window."""
        assert self.operator is not None
        self.wait_quiet("app-" if hanging else None)
        seconds = self.args.idle_seconds
        say(f"== {label}: idle window of {seconds:.0f}s")
        first, wall, rss = ProcessSample(self.operator.pid), time.time(), []
        while time.monotonic() - first.at < seconds:
            time.sleep(min(5.0, max(seconds - (time.monotonic() - first.at), 0.01)))
            rss.append(ProcessSample(self.operator.pid).rss_mib)
        last, end = ProcessSample(self.operator.pid), time.time()
        window = end - wall
        result: dict[str, Any] = {"cpu": last.cpu_percent_since(first), "rss": last.rss_mib, "rss_max": max(rss),
                                  "peak": max(last.peak_mib, *rss)}
        if self.audit is not None:
            counts = self.audit.between(wall, end)
            idle_reads = sum(c for (v, _), c in self.audit.between(wall, end, "app-").items() if v in READS)
            hang_reads = sum(c for (v, _), c in self.audit.between(wall, end, "hang-").items() if v in READS)
            result["reads"] = idle_reads * 60 / window / releases
            result["hang_reads"] = hang_reads * 60 / window / hanging if hanging else None
            print(f"    (c) operator API requests by verb and resource, {releases} idle releases"
                  + (f" + {hanging} on a hanging repository" if hanging else ""), flush=True)
            print("\n".join(per_minute(counts, window, releases + hanging)), flush=True)
            print(f"      reads (get, list) naming an idle release: {result['reads']:.2f} per idle release per "
                  "minute (target 0)" + (f"; naming a hanging release: {result['hang_reads']:.2f} per hanging "
                                        "release per minute" if hanging else ""), flush=True)
            if hanging:
                print("      (few reads here can also mean the idle releases got no pass: see the commit beside the "
                      "hanging repository below)", flush=True)
        print(f"    (d) operator RSS {result['rss']:.1f} MiB (max in the window {result['rss_max']:.1f}, peak since "
              f"start {result['peak']:.1f}; target < 200), CPU {result['cpu']:.2f} % of one core (target < 5)",
              flush=True)
        self.results[key] = result

    def with_hanging_repository(self) -> None:
        self.hanging = HangingServer()
        url = f"http://127.0.0.1:{self.hanging.port}/hang.git"
        names = [f"hang-{i:03d}" for i in range(self.args.hanging)]
        say(f"== {len(names)} more releases on a hanging repository ({url}: accepts, never answers)")
        in_parallel(self.args.threads, lambda name: self.create_release(name, url), names, say, "created")
        time.sleep(self.args.interval + 5)  # each hanging release has tried its repository (git times out at 30 s)

    def unaffected_by_hang(self) -> None:
        """With the hanging repository present: a commit to repository 1 -> all its followers switched."""
        if len(self.followers) < 2 or not self.followers[1]:
            return
        count = len(self.followers[1])
        say(f"== with the hanging repository present: one commit to repository 1 -> its {count} releases switched")
        try:
            took = self.commit_and_switch(1, "switched beside the hanging repository", self.args.hang_timeout)
        except PhaseTimeout as exc:
            say(f"{exc}: the hanging repository holds them up")
            self.results["hang_switch"] = f"not all within {self.args.hang_timeout:.0f} s"
            return
        self.results["hang_switch"] = f"{took:.1f} s"
        say(f"all {count} switched after {took:.1f}s (without a hanging repository, (b): "
            f"{len(self.followers[0])} releases in {self.results['b']:.1f}s)")

    def run(self) -> None:
        self.setup()
        self.floor()
        self.start_operator()
        self.releases()
        self.idle("idle", "(c), (d) idle", self.args.releases, 0)
        if self.args.hanging:
            self.with_hanging_repository()
            self.idle("hang", "(c), (d) idle, with a hanging repository", self.args.releases, self.args.hanging)
            self.unaffected_by_hang()

    def summary(self) -> None:
        r, a = self.results, self.args
        print(f"== summary: {a.releases} releases, {a.followers} followers, {a.repositories} repositories, "
              f"interval {a.interval:g}s, readiness delay {a.readiness_delay}s", flush=True)
        for key, floor, what in (("a", "floor_a", "(a) created -> all serving"),
                                 ("b", "floor_b", "(b) commit -> all followers switched")):
            if key in r:
                print(f"  {what:44} {r[key]:8.1f} s   floor {r[floor]:8.1f} s   ratio {r[key] / r[floor]:5.2f} "
                      "(target <= 1.1)", flush=True)
        for key, what in (("idle", "idle"), ("hang", "idle + hanging repository")):
            if key in r:
                reads = f"{r[key]['reads']:.2f}" if "reads" in r[key] else "not counted"
                print(f"  {what:44} reads per idle release per minute {reads} (target 0); RSS "
                      f"{r[key]['rss']:.1f} MiB (< 200); CPU {r[key]['cpu']:.2f} % (< 5)", flush=True)
        if "hang_switch" in r:
            print(f"  {'beside the hanging repo: commit -> switched':44} {r['hang_switch']} "
                  f"({len(self.followers[1])} releases of repository 1)", flush=True)
        print(f"  the run took {time.monotonic() - STARTED:.0f}s", flush=True)


def main() -> int:
    cluster_dir = Path(os.environ.get("BLUEGREEN_CLUSTER_DIR", Path.home() / ".cache" / "bluegreen" / "cluster"))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--followers", type=int, default=500, help="releases following repository 0 (the commit)")
    parser.add_argument("--repositories", type=int, default=4)
    parser.add_argument("--hanging", type=int, default=20, help="releases on the hanging repository (0: skip)")
    parser.add_argument("--interval", type=float, default=30.0, help="the releases' git interval, seconds")
    parser.add_argument("--readiness-delay", type=int, default=1, choices=(0, 1, 2, 3))
    parser.add_argument("--idle-seconds", type=float, default=90.0, help="length of each idle window")
    parser.add_argument("--threads", type=int, default=8, help="concurrent creators (floor and operator alike)")
    parser.add_argument("--phase-timeout", type=float, default=1800.0, help="bound on every wait, seconds")
    parser.add_argument("--hang-timeout", type=float, default=300.0,
                        help="bound on the switch beside the hanging repository, seconds")
    parser.add_argument("--audit-log", default=str(cluster_dir / "logs" / "audit.log"))
    parser.add_argument("--keep-workdir", action="store_true", help="keep repositories and the operator's log")
    args = parser.parse_args()
    if not 0 < args.followers <= args.releases or args.repositories < 1 or (
            args.repositories == 1 and args.followers != args.releases):
        parser.error("need 0 < --followers <= --releases; with one repository every release follows it")
    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-bench-scale-"))
    bench = ScaleBench(args, workdir)
    code = 0
    try:
        bench.run()
    except PhaseTimeout as exc:
        say(f"stopped: {exc}")
        code = 1
    finally:
        with contextlib.suppress(PhaseTimeout):
            bench.cleanup()
        bench.summary()
        if args.keep_workdir or code:
            say(f"kept {workdir} (the operator's log is operator.log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
