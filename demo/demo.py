"""`make demo`: a git repository becomes blue/green releases on a real (local) Kubernetes control plane.

Steps: install the CRD, create a git repository with a sample app, a namespace and its Service, start the
operator, then release v1, release v2, and `git revert` v2 - printing what happens with timings (commit,
idle colour ready, selector switched) and `kubectl get bgr` after each step.

The app is real: the test web app (tests/app/webapp.py) runs as `local/python:3` pods on the local node, and
from the moment the Service first answers, real HTTP requests go to its ClusterIP (demo/traffic.py) until the
end, with a running count of requests and errors at each step. It exits 1 if any request failed.

Runs against $KUBECONFIG (the Makefile starts the local control plane and sets it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from kubesetup import fresh_namespace, install_crd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from traffic import Traffic  # noqa: E402

NAMESPACE = "bluegreen-demo"
GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
GIT_ENV = {"GIT_AUTHOR_NAME": "Demo Dev", "GIT_AUTHOR_EMAIL": "dev@demo.local", "GIT_COMMITTER_NAME": "Demo Dev",
           "GIT_COMMITTER_EMAIL": "dev@demo.local", "GIT_CONFIG_NOSYSTEM": "1"}
# The one templated value of the manifest: the checkout's absolute path (a local/ container sees the host's files).
MANIFEST = (Path(__file__).parent / "app" / "deployment.yaml").read_text().replace("@CHECKOUT@", str(ROOT))
VERSION_LINE = "{name: APP_VERSION, value: v1}"
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def kubectl_get_bgr(namespace: str = NAMESPACE) -> None:
    result = subprocess.run(["kubectl", "-n", namespace, "get", "bgr"], capture_output=True, text=True)
    print(f"\n$ kubectl -n {namespace} get bgr")
    print((result.stdout or result.stderr).rstrip() + "\n", flush=True)


class Demo:
    namespace = NAMESPACE

    def __init__(self, workdir: Path) -> None:
        config.load_kube_config()
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.workdir = workdir
        self.repo = workdir / "deploy-repo"
        self.operator: subprocess.Popen[bytes] | None = None
        self.traffic: Traffic | None = None

    # ---- set-up ------------------------------------------------------------------------------------
    def install_crd(self) -> None:
        install_crd(self.api)
        say("CRD bluegreenreleases.bluegreen.dev installed (kubectl apply -f crds/)")

    def fresh_namespace(self) -> None:
        fresh_namespace(self.core, self.namespace,
                        on_delete=lambda: say(f"deleting the namespace {self.namespace} left by an earlier demo"))
        self.core.create_namespaced_service(self.namespace, {
            "metadata": {"name": "shop"},
            "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        ip = str(self.core.read_namespaced_service("shop", self.namespace).spec.cluster_ip)
        self.traffic = self.new_traffic(ip)
        say(f"namespace {self.namespace} with Service shop (selector app=shop, ClusterIP {ip}) created")

    def new_traffic(self, ip: str) -> Traffic:
        """The load sent to the Service at ``ip`` (GET / here)."""
        return Traffic(ip, say)

    def init_repo(self) -> None:
        (self.repo / "apps" / "shop").mkdir(parents=True)
        git(self.repo, "init", "-q", "-b", "main")
        say(f"git repository {self.repo}")

    def start_operator(self) -> None:
        log = open(self.workdir / "operator.log", "wb")  # noqa: SIM115 (kept open for the child's lifetime)
        env = {**os.environ, "BLUEGREEN_CACHE_DIR": str(self.workdir / "cache")}
        self.operator = subprocess.Popen(
            [sys.executable, "-m", "bluegreen.cli", "run", "--namespace", self.namespace, "--log-format", "json"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        say(f"operator started: bluegreen run --namespace {self.namespace} (log: {self.workdir / 'operator.log'})")
        deadline = time.monotonic() + 120
        while b'"operator started"' not in (self.workdir / "operator.log").read_bytes():
            if self.operator.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"demo: the operator did not start; see {self.workdir / 'operator.log'}")
            time.sleep(0.1)
        say("operator running (its imports and kopf's start-up take a few seconds on a busy machine)")

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGTERM)
            self.operator.wait(timeout=20)

    # ---- releases ----------------------------------------------------------------------------------
    def commit(self, version: str, message: str) -> str:
        assert VERSION_LINE in MANIFEST, f"demo/app/deployment.yaml must contain {VERSION_LINE!r}"
        text = MANIFEST.replace(VERSION_LINE, VERSION_LINE.replace("v1", version))
        (self.repo / "apps" / "shop" / "deployment.yaml").write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def create_release(self, **spec: Any) -> None:
        """The BlueGreenRelease ``shop``; ``spec`` adds or replaces fields of its spec."""
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": "shop"},
            "spec": {"source": {"url": str(self.repo), "ref": {"branch": "main"},
                                "path": "apps/shop/deployment.yaml", "interval": "30s"},
                     "service": "shop", "scaleDownDelaySeconds": 120, "progressDeadlineSeconds": 120, **spec}})

    def check_now(self) -> None:
        """What `bluegreen reconcile shop` (or a push webhook) does: ask the operator to read git now."""
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, "shop", {
            "metadata": {"annotations": {"bluegreen.dev/reconcile-at": str(time.time_ns())}}})

    def selector_color(self) -> str | None:
        service = self.core.read_namespaced_service("shop", self.namespace)
        return (service.spec.selector or {}).get("bluegreen.dev/color")

    def deployment(self, color: str) -> Any:
        try:
            return self.apps.read_namespaced_deployment(f"shop-{color}", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    @staticmethod
    def is_ready(d: Any) -> bool:
        return d is not None and bool(d.spec.replicas) and \
            (d.status.ready_replicas or 0) == d.spec.replicas == (d.status.updated_replicas or 0)

    def follow(self, commit: str, expect: str, started: float, timeout: float = 120) -> None:
        """Watch the colour `expect` become ready and the selector switch; print when each happens."""
        ready_at = switched_at = None
        if self.is_ready(self.deployment(expect)):
            ready_at = started
            say(f"  {expect} is still warm (all replicas ready): nothing to bring up")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and switched_at is None:
            d = self.deployment(expect)
            if ready_at is None and self.is_ready(d):
                ready_at = time.monotonic()
                say(f"  {expect} ready: {d.status.ready_replicas}/{d.spec.replicas} replicas "
                    f"(+{ready_at - started:.2f}s after the commit)")
            if self.selector_color() == expect:
                switched_at = time.monotonic()
                ready_at = ready_at or switched_at
                say(f"  Service shop switched to {expect} (+{switched_at - started:.2f}s after the commit, "
                    f"{(switched_at - ready_at) * 1000:.0f} ms after {expect} was ready); traffic so far: "
                    f"{self.running_total()}")
            time.sleep(0.02)
        if switched_at is None:
            raise SystemExit(f"demo: {expect} did not take traffic within {timeout}s; see the operator log")
        while self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, "shop").get(
                "status", {}).get("activeRevision") != commit:
            time.sleep(0.05)

    def running_total(self) -> str:
        return self.traffic.running_total() if self.traffic else "none"

    def step_done(self, version: str, expected: list[str]) -> None:
        """Keep the load on the new version a moment, then close the step's load run and print it."""
        assert self.traffic is not None
        self.traffic.wait_more(version, 50)
        self.traffic.end_step(expected)

    def run(self) -> int:
        self.install_crd()
        self.fresh_namespace()
        self.init_repo()
        self.start_operator()

        print("\n=== 1. release v1: merge the first manifest, create the BlueGreenRelease", flush=True)
        v1 = self.commit("v1", "shop v1")
        started = time.monotonic()
        say(f"commit {v1[:12]} 'shop v1' (the web app, APP_VERSION v1, 3 replicas, readiness probe GET /healthz)")
        self.create_release()
        assert self.traffic is not None
        self.traffic.start_when_answering()
        self.follow(v1, "blue", started)
        self.step_done("v1", ["v1"])
        kubectl_get_bgr(self.namespace)

        print("=== 2. release v2: merge APP_VERSION v2; green comes up while blue serves", flush=True)
        v2 = self.commit("v2", "shop v2")
        started = time.monotonic()
        say(f"commit {v2[:12]} 'shop v2'; asking the operator to check git now (bluegreen reconcile shop)")
        self.check_now()
        self.follow(v2, "green", started)
        self.step_done("v2", ["v1", "v2"])
        kubectl_get_bgr(self.namespace)

        print("=== 3. roll back: git revert v2 while blue is still warm", flush=True)
        git(self.repo, "revert", "--no-edit", "HEAD")
        v3 = git(self.repo, "rev-parse", "HEAD")
        started = time.monotonic()
        say(f"commit {v3[:12]} 'Revert \"shop v2\"'; asking the operator to check git now")
        self.check_now()
        self.follow(v3, "blue", started)
        self.step_done("v1", ["v2", "v1"])
        kubectl_get_bgr(self.namespace)

        print("=== release history (bluegreen history shop)", flush=True)
        subprocess.run([sys.executable, "-m", "bluegreen.cli", "history", "shop", "-n", self.namespace], check=False)
        problems = self.traffic.finish()
        print(f"\nThe release stays in namespace {self.namespace}: try "
              f"`kubectl -n {self.namespace} describe bgr shop`. Stop the local control plane with "
              "`make cluster-down`.", flush=True)
        print("Next: `make demo-migrations` renames a database column in three releases under reads and writes "
              "(expand, switch, contract), with the rows counted before and after each migration.", flush=True)
        return 1 if problems else 0


def main() -> int:
    if not os.environ.get("KUBECONFIG"):
        print("demo: KUBECONFIG is not set (run it through `make demo`)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-demo-"))
    demo = Demo(workdir)
    try:
        code = demo.run()
    finally:
        demo.stop_operator()
        shutil.rmtree(workdir / "cache", ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
