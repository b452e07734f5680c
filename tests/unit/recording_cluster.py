"""A recording fake cluster, a fake git source and the harness that runs reconcile passes against them.

``RecordingCluster`` implements the ``Cluster`` port over a tiny in-memory Kubernetes: Deployments with
spec/status/annotations as the API server keeps them, Services with selectors, the release's status (merge
patched). Every write is appended to ``writes`` in order, so a test can say exactly what a pass did.
``roll_out`` plays the deployment controller and kubelet (every replica updated, ready, available).

``Harness`` is the one place that knows how the reconciler is built and fed its source: when the source seam
changes (a fetch scheduler instead of ``Source.snapshot`` inside the pass), only ``Harness`` changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import Outcome, SourceError
from bluegreen.core.planner import ColorState, ServiceState
from bluegreen.core.spec import (
    ANNOTATION_COMMIT,
    ANNOTATION_EXPAND_JOB,
    ANNOTATION_RECONCILE_AT,
    ANNOTATION_ROLLOUT_STARTED_AT,
    ANNOTATION_TEMPLATE_HASH,
    LABEL_COLOR,
    Color,
    GitRef,
    ReleaseRef,
    deployment_name,
)
from bluegreen.core.timestamps import parse_time
from bluegreen.kube.states import failure_mark
from bluegreen.runtime.reconciler import Reconciler

START = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: shop}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec: {{containers: [{{name: web, image: "shop:{image}"}}]}}
"""


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """A JSON merge patch (RFC 7386): None removes a key, mappings merge, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class RecordingCluster:
    """The ``Cluster`` port over an in-memory cluster; every write is recorded in order in ``writes``."""

    def __init__(self, namespace: str = "shop", services: tuple[str, ...] = ("shop",)) -> None:
        self.namespace = namespace
        self.deployments: dict[str, dict[str, Any]] = {}
        self.selectors: dict[str, dict[str, str]] = {name: {"app": "shop"} for name in services}
        self.status: dict[str, Any] = {}
        self.writes: list[tuple[Any, ...]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.annotations: dict[str, str] = {}
        """The release's own annotations (``Harness.body`` hands them to each pass)."""
        self.addresses: dict[tuple[str, int | None], tuple[str, int]] = {}
        """(Service, port) -> (ClusterIP, port), for HTTP checks that name a Service."""
        self.pods: dict[str, int] = {}
        """Pods of a colour still there (terminating) after its Deployment reports 0; none unless set."""
        self.pod_counts: list[str] = []
        """The colours whose pods were counted (one LIST each), in order."""

    # ---- reads ------------------------------------------------------------------------------------
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get(name)

    def color_state(self, release: ReleaseRef, color: Color) -> ColorState:
        body = self.deployments.get(deployment_name(release.name, color))
        if body is None:
            return ColorState(color=color)
        meta, spec, status = body["metadata"], body["spec"], body["status"]
        annotations = meta["annotations"]
        return ColorState(
            color=color, exists=True, template_hash=annotations.get(ANNOTATION_TEMPLATE_HASH),
            commit=annotations.get(ANNOTATION_COMMIT), replicas=spec["replicas"], generation=meta["generation"],
            observed_generation=status.get("observedGeneration", 0), status_replicas=status.get("replicas", 0),
            updated_replicas=status.get("updatedReplicas", 0), ready_replicas=status.get("readyReplicas", 0),
            available_replicas=status.get("availableReplicas", 0),
            rollout_started_at=parse_time(annotations.get(ANNOTATION_ROLLOUT_STARTED_AT)),
            expand_job=annotations.get(ANNOTATION_EXPAND_JOB), **failure_mark(annotations))

    def service_state(self, namespace: str, name: str) -> ServiceState:
        selector = self.selectors.get(name)
        if selector is None:
            return ServiceState(name=name)
        value = selector.get(LABEL_COLOR)
        return ServiceState(name=name, exists=True, color=Color(value) if value else None)

    def service_address(self, namespace: str, name: str, port: int | None) -> tuple[str, int] | None:
        return self.addresses.get((name, port))

    def color_pods(self, release: ReleaseRef, color: Color) -> int:
        self.pod_counts.append(str(color))
        body = self.deployments.get(deployment_name(release.name, color))
        running = body["status"].get("replicas", 0) if body is not None else 0
        return running + self.pods.get(str(color), 0)

    # ---- writes -----------------------------------------------------------------------------------
    def apply_deployment(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self.writes.append(("apply", meta["name"], meta["annotations"][ANNOTATION_COMMIT], body["spec"]["replicas"]))
        current = self.deployments.get(meta["name"])
        if current is None:
            self.deployments[meta["name"]] = {"metadata": {**copy.deepcopy(dict(meta)), "generation": 1},
                                              "spec": copy.deepcopy(body["spec"]), "status": {}}
            return
        # Server-side apply by the operator's manager: the fields it sets are replaced; an annotation written
        # by another patch (the abandoned mark) stays until it is removed explicitly.
        current["metadata"]["annotations"].update(copy.deepcopy(meta["annotations"]))
        current["metadata"]["labels"] = copy.deepcopy(meta["labels"])
        current["spec"] = copy.deepcopy(body["spec"])
        current["metadata"]["generation"] += 1

    def scale(self, release: ReleaseRef, color: Color, replicas: int, annotations: Mapping[str, str | None]) -> None:
        name = deployment_name(release.name, color)
        self.writes.append(("scale", name, replicas, dict(annotations)))
        current = self.deployments[name]
        merge(current["metadata"]["annotations"], annotations)
        if current["spec"]["replicas"] != replicas:
            current["spec"]["replicas"] = replicas
            current["metadata"]["generation"] += 1

    def switch_selector(self, namespace: str, service: str, color: Color) -> None:
        self.writes.append(("switch", service, str(color)))
        self.selectors[service][LABEL_COLOR] = str(color)

    def patch_status(self, release: ReleaseRef, status: Mapping[str, Any]) -> None:
        self.status_patches.append(copy.deepcopy(dict(status)))
        merge(self.status, status)

    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    def annotate_release(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
        self.writes.append(("annotate", name, dict(annotations)))
        merge(self.annotations, annotations)

    # ---- Kubernetes' side -------------------------------------------------------------------------
    def roll_out(self) -> None:
        """The deployment controller and kubelet: every replica of every Deployment updated, ready, available."""
        for body in self.deployments.values():
            replicas = body["spec"]["replicas"]
            body["status"] = {"observedGeneration": body["metadata"]["generation"], "replicas": replicas,
                              "updatedReplicas": replicas, "readyReplicas": replicas,
                              "availableReplicas": replicas}

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.status.get("conditions", []) if c["type"] == kind)

    def statuses(self) -> tuple[str, str, str]:
        """(Ready, Reconciling, Stalled) as the release's status has them now."""
        ready, reconciling, stalled = (self.condition(k)["status"] for k in ("Ready", "Reconciling", "Stalled"))
        return ready, reconciling, stalled


@dataclass
class FakeSource:
    """A branch whose head is ``head``: each ``commit`` moves it (the manifest is the whole file)."""

    head: tuple[str, str, bytes] | None = None  # (sha, summary, manifest)
    count: int = 0
    looks: int = 0

    def commit(self, image: str, replicas: int = 2, summary: str | None = None) -> str:
        self.count += 1
        sha = f"{self.count:02x}".ljust(40, "c")
        self.head = (sha, summary or f"release {image}", MANIFEST.format(image=image, replicas=replicas).encode())
        return sha

    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot:
        assert self.head is not None, "nothing committed yet"
        self.looks += 1
        sha, summary, content = self.head
        return Snapshot(CommitInfo(sha, summary, "Dev <dev@example.com>", START), path, content)

    files: dict[str, bytes] = field(default_factory=dict)
    """Other files of every commit (a check's Job manifest), by path."""

    def read(self, url: str, commit_sha: str, path: str, *, credentials: Credentials | None = None) -> Snapshot:
        assert self.head is not None and self.head[0] == commit_sha, "read at the manifest's commit"
        if path not in self.files:
            raise SourceError("PathNotFound", f"{path!r} does not exist at commit {commit_sha[:7]}")
        return Snapshot(CommitInfo(commit_sha, self.head[1], "Dev <dev@example.com>", START), path, self.files[path])

    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None:
        return None


class RefusingVerifier:
    def verify(self, commit_sha: str, signature: tuple[bytes, bytes] | None, trusted_keys: Mapping[str, bytes], *,
               secret_name: str) -> Outcome:
        raise AssertionError("these releases do not verify signatures")


@dataclass
class Harness:
    """One release, its cluster, its git branch and a clock; ``run()`` is one reconcile pass."""

    cluster: RecordingCluster = field(default_factory=RecordingCluster)
    source: FakeSource = field(default_factory=FakeSource)
    now: datetime = START
    monotonic: float = 1000.0
    spec: dict[str, Any] = field(default_factory=lambda: {
        "source": {"url": "https://git.example.com/deploy.git", "path": "d.yaml", "interval": "30s"},
        "service": "shop", "scaleDownDelaySeconds": 300, "progressDeadlineSeconds": 600})
    generation: int = 1
    token: str | None = None
    checks: Any = None
    """A ``CheckRunner`` (None: the reconciler's own HTTP runner)."""
    hook_jobs: Any = None
    """A ``HookJobs`` for the migrations (None: the reconciler runs none)."""
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.cluster, self.source, RefusingVerifier(), clock=lambda: self.now,
                                     monotonic=lambda: self.monotonic, checks=self.checks, hook_jobs=self.hook_jobs)

    def body(self) -> dict[str, Any]:
        annotations = dict(self.cluster.annotations)
        if self.token is not None:
            annotations[ANNOTATION_RECONCILE_AT] = self.token
        return {"metadata": {"namespace": self.cluster.namespace, "name": "shop", "uid": "u-1",
                             "generation": self.generation, "annotations": annotations},
                "spec": copy.deepcopy(self.spec), "status": copy.deepcopy(self.cluster.status)}

    def run(self) -> float | None:
        """One pass, given the release as the API server has it now (its status included)."""
        return self.reconciler.reconcile(self.body())

    def check_git_now(self, token: str | None = None) -> None:
        """What ``bluegreen reconcile`` does: a new reconcile-at value, so the next pass reads git."""
        self.token = token or f"check-{self.source.count}-{self.monotonic}"
        # The controller asks the fetch scheduler when it sees a new token on the release (Controller.upsert).
        self.reconciler.request_check(self.cluster.namespace, "shop", self.monotonic)

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.monotonic += seconds

    def writes_since(self, mark: int) -> list[tuple[Any, ...]]:
        return self.cluster.writes[mark:]

    def released(self, image: str) -> str:
        """Commit ``image``, check git and let every pass and rollout happen until nothing is left to do
        but the warm window; return the commit."""
        sha = self.source.commit(image)
        self.check_git_now()
        for _ in range(6):
            self.run()
            self.cluster.roll_out()
        assert self.cluster.status.get("activeRevision") == sha, self.cluster.status
        return sha
