"""End-to-end harness: the CRD installed, a real git repository, the operator as a real process running under
its own ServiceAccount with the least-privilege Role from manifests/namespaced/rbac.yaml, and a watcher
that records every change of a Service's Endpoints (zero downtime is asserted, not assumed).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from appmanifest import app_manifest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from kubesetup import install_crd

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "bluegreenreleases.bluegreen.dev.yaml"
ROLE = ROOT / "manifests" / "namespaced" / "rbac.yaml"
GROUP, VERSION, PLURAL = "bluegreen.dev", "v1alpha1", "bluegreenreleases"
GIT_ENV = {"GIT_AUTHOR_NAME": "Dev One", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "Dev One", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": tempfile.gettempdir()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


# ---- the CRD ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def crd(kube_client: client.ApiClient) -> None:
    """Install (or update) the CRD from crds/ and wait until it is established."""
    install_crd(kube_client)


# ---- git --------------------------------------------------------------------------------------------
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          initialDelaySeconds: {delay}
"""


class GitRepo:
    """A real repository on disk that tests commit manifests to, like engineers merging pull requests."""

    def __init__(self, path: Path, app: str = "shop", manifest_path: str = "apps/shop/deployment.yaml") -> None:
        self.path = path
        self.app = app
        self.manifest_path = manifest_path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return str(self.path)

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", *args], cwd=self.path, env={**os.environ, **GIT_ENV}, check=True,
                                capture_output=True, text=True)
        return result.stdout.strip()

    def write(self, text: str, path: str | None = None, message: str = "update",
              sign_with: Path | None = None) -> str:
        """Commit ``text`` at ``path``; ``sign_with``: an SSH private key file, like ``git commit -S``."""
        target = self.path / (path or self.manifest_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self.git("add", "-A")
        signing = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}.pub") if sign_with else ()
        self.git(*signing, "commit", "-q", "--allow-empty", *(("-S",) if sign_with else ()), "-m", message)
        return self.head()

    def release(self, image: str, *, replicas: int = 2, delay: int = 1, message: str | None = None,
                sign_with: Path | None = None) -> str:
        """Commit the app's Deployment manifest running ``image``; return the commit sha."""
        text = MANIFEST.format(name=self.app, app=self.app, replicas=replicas, image=image, delay=delay)
        return self.write(text, message=message or f"release {image}", sign_with=sign_with)

    def release_app(self, version: str, *, replicas: int = 2, failing_health: bool = False,
                    message: str | None = None, app_message: str | None = None,
                    health_fail_file: str | None = None) -> str:
        """Commit a Deployment of the real test web app reporting ``version`` (``appmanifest.py``); ``message``
        is the commit message, ``app_message`` the app's ``APP_MESSAGE``."""
        text = app_manifest(self.app, version, replicas=replicas, failing_health=failing_health,
                            message=app_message, health_fail_file=health_fail_file)
        return self.write(text, message=message or f"release {version}")

    def revert(self, sha: str | None = None) -> str:
        self.git("revert", "--no-edit", sha or "HEAD")
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "deploy")


# ---- the operator -----------------------------------------------------------------------------------
def operator_kubeconfig(kube_client: client.ApiClient, namespace: str, directory: Path) -> Path:
    """A kubeconfig for a ServiceAccount bound to the project's namespaced Role (least privilege)."""
    core = client.CoreV1Api(kube_client)
    rbac = client.RbacAuthorizationV1Api(kube_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "bluegreen-operator"}})
    role, binding = yaml.safe_load_all(ROLE.read_text())
    role["metadata"]["namespace"] = namespace
    binding["metadata"]["namespace"] = namespace
    binding["subjects"][0]["namespace"] = namespace
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, binding)
    secret = wait_until(lambda: (sa := core.read_namespaced_service_account("bluegreen-operator", namespace))
                        .secrets and sa.secrets[0].name, timeout=30, what="operator token")
    token = base64.b64decode(core.read_namespaced_secret(secret, namespace).data["token"]).decode()
    conf = kube_client.configuration
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "c", "cluster": {"server": conf.host, "certificate-authority": conf.ssl_ca_cert}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "c", "user": "operator", "namespace": namespace}}],
    }
    path = directory / "operator.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    return path


class Operator:
    """``bluegreen run`` as a child process, with its JSON log lines kept for assertions."""

    def __init__(self, namespace: str, kubeconfig: Path, workdir: Path, extra_args: Sequence[str] = (),
                 extra_env: dict[str, str] | None = None) -> None:
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        self.log_path = workdir / "operator.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "BLUEGREEN_CACHE_DIR": str(self.workdir / "cache"),
               "PYTHONUNBUFFERED": "1", **self.extra_env}
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bluegreen.cli", "run", "--namespace", self.namespace, "--log-format", "json",
                 *self.extra_args],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like a crashed pod."""
        self.stop(signal.SIGKILL)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[dict[str, Any]]:
        records = []
        for line in self.text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def actions(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.lines() if r.get("action") == action]


@pytest.fixture
def operator(kube_client: client.ApiClient, crd: None, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    """The operator watching the test namespace, under its own least-privilege ServiceAccount."""
    runner = Operator(namespace, operator_kubeconfig(kube_client, namespace, tmp_path), tmp_path)
    runner.start()
    yield runner
    runner.stop()
    if os.environ.get("BLUEGREEN_E2E_SHOW_LOGS"):
        print(runner.text())


# ---- the application side: Service, release, Endpoints ---------------------------------------------
class Cluster:
    """Helpers over the official client for what a user does with kubectl."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def create_service(self, name: str = "shop", app: str = "shop") -> None:
        self.core.create_namespaced_service(self.namespace, {
            "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}})

    def selector(self, name: str = "shop") -> dict[str, str]:
        return dict(self.core.read_namespaced_service(name, self.namespace).spec.selector or {})

    def set_selector_color(self, color: str | None, name: str = "shop") -> None:
        self.core.patch_namespaced_service(name, self.namespace, {"spec": {"selector": {"bluegreen.dev/color": color}}})

    def create_release(self, repo: GitRepo, name: str = "shop", **spec: Any) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BlueGreenRelease", "metadata": {"name": name},
            "spec": {"source": {"url": repo.url, "path": repo.manifest_path, "interval": "2s"}, "service": "shop",
                     "scaleDownDelaySeconds": 300, **spec},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def patch_release(self, patch: dict[str, Any], name: str = "shop") -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def check_now(self, name: str = "shop") -> None:
        """What `bluegreen reconcile` does: a new bluegreen.dev/reconcile-at value forces a git check."""
        self.patch_release({"metadata": {"annotations": {"bluegreen.dev/reconcile-at": f"{time.time_ns()}"}}}, name)

    def release(self, name: str = "shop") -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return result

    def status(self, name: str = "shop") -> dict[str, Any]:
        return dict(self.release(name).get("status") or {})

    def condition(self, kind: str, name: str = "shop") -> dict[str, Any]:
        for condition in self.status(name).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return {}

    def deployment(self, color: str, name: str = "shop") -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(f"{name}-{color}", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete_release(self, name: str = "shop") -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def color(self, name: str = "shop") -> str | None:
        """The colour the Service ``name`` selects (None: the key is absent)."""
        return self.selector(name).get("bluegreen.dev/color")

    def pod_ips(self, color: str, name: str = "shop") -> set[str]:
        """IPs of the ready pods of one colour."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"bluegreen.dev/release={name},bluegreen.dev/color={color}").items
        return {p.status.pod_ip for p in pods if p.status.pod_ip and p.metadata.deletion_timestamp is None
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])}

    def events(self, reason: str | None = None) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [e for e in items if e.involved_object.kind == "BlueGreenRelease" and reason in (None, e.reason)]

    def wait_serving(self, commit: str, color: str | None = None, timeout: float = 60, name: str = "shop") -> str:
        """Wait until the release reports ``commit`` active and Ready; return the active colour."""
        def serving() -> str | None:
            status = self.status(name)
            ready = self.condition("Ready", name).get("status") == "True"
            active = status.get("activeColor")
            wanted = status.get("activeRevision") == commit and ready and (color is None or active == color)
            if wanted and self.selector().get("bluegreen.dev/color") == active:
                return str(active)
            return None
        return wait_until(serving, timeout=timeout, what=f"commit {commit[:12]} serving (status {self.status(name)})")


@pytest.fixture
def cluster(kube_client: client.ApiClient, namespace: str) -> Cluster:
    return Cluster(kube_client, namespace)


class EndpointsRecorder:
    """Watches one Service's Endpoints from a thread and records the ready addresses at every change."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.service = service
        self.history: list[tuple[float, frozenset[str]]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._stopping = False

    def _run(self) -> None:
        selector = f"metadata.name={self.service}"
        listing = self.core.list_namespaced_endpoints(self.namespace, field_selector=selector)
        for item in listing.items:
            self._record(item)
        self._started.set()
        try:
            for event in self._watch.stream(self.core.list_namespaced_endpoints, self.namespace,
                                            field_selector=selector, timeout_seconds=600,
                                            resource_version=listing.metadata.resource_version):
                self._record(None if event["type"] == "DELETED" else event["object"])
        except Exception:  # the stream is cut when the recorder stops
            if not self._stopping:
                raise

    def _record(self, endpoints: client.V1Endpoints | None) -> None:
        ips: set[str] = set()
        for subset in (endpoints.subsets if endpoints else None) or []:
            ips |= {a.ip for a in subset.addresses or []}
        self.history.append((time.monotonic(), frozenset(ips)))

    def __enter__(self) -> EndpointsRecorder:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        # Let the last changes arrive: until the recorded state is the one the API server lists now (a loaded
        # endpoints controller or watch may lag well behind the last switch), at most 10 s.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if self.current() == self._listed():
                break
        self._stopping = True
        self._watch.stop()

    def _listed(self) -> frozenset[str]:
        listing = self.core.list_namespaced_endpoints(self.namespace, field_selector=f"metadata.name={self.service}")
        ips: set[str] = set()
        for item in listing.items:
            for subset in item.subsets or []:
                ips |= {a.ip for a in subset.addresses or []}
        return frozenset(ips)

    def current(self) -> frozenset[str]:
        return self.history[-1][1] if self.history else frozenset()

    def assert_never_empty(self) -> None:
        """Every recorded state, from the first one on, had at least one ready address."""
        assert self.history, "no Endpoints were observed"
        empty = [t for t, ips in self.history if not ips]
        assert not empty, f"the Service had no ready endpoint at {len(empty)} moment(s): {self.history}"

    def distinct_sets(self) -> list[frozenset[str]]:
        seen: list[frozenset[str]] = []
        for _, ips in self.history:
            if not seen or seen[-1] != ips:
                seen.append(ips)
        return seen


class Sampler:
    """Calls ``probe`` from a thread every ``interval`` seconds and keeps each value that differs from the last,
    for assertions over everything that was visible during a release (``with Sampler(probe) as s: ...``)."""

    def __init__(self, probe: Callable[[], Any], interval: float = 0.1) -> None:
        self.probe = probe
        self.interval = interval
        self.values: list[Any] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            value = self.probe()
        except Exception as exc:  # kept and raised in the test's thread on exit
            self.errors.append(exc)
            return
        if not self.values or self.values[-1] != value:
            self.values.append(value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sample()
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def endpoints(kube_client: client.ApiClient, namespace: str) -> Any:
    """Factory: ``with endpoints("shop") as rec: ...`` records the Service's ready endpoints."""
    return lambda service="shop": EndpointsRecorder(kube_client, namespace, service)
