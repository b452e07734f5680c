"""One reconcile pass for one release: source -> observe -> plan -> act -> status, Event, log line.

Written against two small Protocols (the cluster and the git source), so it runs against the real
Kubernetes client in the operator and against anything else in tests. Blocking; the controller runs it in
a worker thread. What it keeps in memory (the last fetched commit and manifest, the last status written)
is a cache: after a restart everything is re-read from git and the cluster.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bluegreen.core.conditions import SourceStatus, build_conditions
from bluegreen.core.desired import DesiredTemplate, ManifestError, owner_reference, parse_manifest, render_deployment
from bluegreen.core.history import record
from bluegreen.core.planner import Action, ColorState, Desired, Observed, Phase, Plan, ServiceState, Settings, plan
from bluegreen.core.spec import (
    ANNOTATION_ABANDONED_COMMIT,
    ANNOTATION_RECONCILE_AT,
    ANNOTATION_ROLLOUT_STARTED_AT,
    Color,
    GitRef,
    ReleaseRef,
    ReleaseSpec,
    SpecError,
)
from bluegreen.git.source import CommitInfo, Credentials, Snapshot, SourceError
from bluegreen.kube.cluster import ClusterError, format_time, parse_time
from bluegreen.logs import get_logger
from bluegreen.verify.verifier import TrustedKeys, VerifyError, verify_commit

MAX_STEPS_PER_PASS = 8


class Cluster(Protocol):
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def color_state(self, release: ReleaseRef, color: Color) -> ColorState: ...
    def service_state(self, namespace: str, name: str) -> ServiceState: ...
    def apply_deployment(self, body: Mapping[str, Any]) -> None: ...
    def scale(self, release: ReleaseRef, color: Color, replicas: int,
              annotations: Mapping[str, str | None]) -> None: ...
    def switch_selector(self, namespace: str, service: str, color: Color) -> None: ...
    def patch_status(self, release: ReleaseRef, status: Mapping[str, Any]) -> None: ...
    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None: ...


class Source(Protocol):
    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot: ...
    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None: ...


@dataclass
class Memory:
    """What the reconciler remembers about one release between passes."""

    source_key: tuple[str, GitRef, str] | None = None
    fetched_at: float | None = None  # monotonic
    source: SourceStatus = field(default_factory=lambda: SourceStatus(False, "NotFetched", "git not read yet"))
    commit: CommitInfo | None = None
    template: DesiredTemplate | None = None
    reconcile_token: str | None = None
    suspended: bool = False
    check_requested_at: float | None = None  # monotonic time of a push webhook asking for a check
    verified: SourceStatus | None = None  # outcome of signature verification (spec.source.verify set)
    verdicts: dict[tuple[str, str], SourceStatus] = field(default_factory=dict)  # (commit, keys) -> outcome
    last_status: dict[str, Any] | None = None
    last_notice: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Reconciler:
    """Reconciles BlueGreenReleases one pass at a time (thread-safe across different releases)."""

    def __init__(self, cluster: Cluster, source: Source, *, clock: Callable[[], datetime] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cluster = cluster
        self.source = source
        self.clock = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self._memory: dict[tuple[str, str], Memory] = {}
        self._guard = threading.Lock()

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._memory.pop((namespace, name), None)

    def memory(self, namespace: str, name: str) -> Memory:
        with self._guard:
            return self._memory.setdefault((namespace, name), Memory())

    def request_check(self, namespace: str, name: str, at: float) -> None:
        """Ask for a git check no older than ``at`` (monotonic) on the next pass (push webhooks)."""
        memory = self.memory(namespace, name)
        memory.check_requested_at = max(at, memory.check_requested_at or at)

    # ---- the pass -------------------------------------------------------------------------------
    def reconcile(self, body: Mapping[str, Any]) -> float | None:
        """Run one pass for the release ``body``; return seconds until the next pass is due (None: on events)."""
        meta = body["metadata"]
        release = ReleaseRef(meta["namespace"], meta["name"], meta.get("uid", ""))
        memory = self.memory(release.namespace, release.name)
        with memory.lock:
            return self._reconcile(release, body, memory)

    def _reconcile(self, release: ReleaseRef, body: Mapping[str, Any], memory: Memory) -> float | None:
        meta = body["metadata"]
        status_in: Mapping[str, Any] = body.get("status") or {}
        generation = int(meta.get("generation", 0))
        log = get_logger().bind(release=release.name, namespace=release.namespace)
        try:
            spec = ReleaseSpec.from_dict(body.get("spec") or {})
        except SpecError as exc:
            self._report_blocked(release, memory, status_in, generation, "InvalidSpec", str(exc), log)
            return None

        token = (meta.get("annotations") or {}).get(ANNOTATION_RECONCILE_AT)
        # A forced check asked for while suspended is kept for the resume; resuming checks git at once.
        forced = (token is not None and token != memory.reconcile_token) or memory.suspended
        memory.suspended = spec.suspend
        if not spec.suspend:
            memory.reconcile_token = token
            not_before = self._fetch_due(spec, memory, forced)
            if not_before is not None:
                self._refresh_source(release, spec, memory, not_before)
        log = log.bind(commit=memory.commit.sha[:12] if memory.commit else None)

        settings = Settings(spec.scale_down_delay_seconds, spec.progress_deadline_seconds, spec.suspend)
        step: Plan | None = None
        history = list(status_in.get("history") or [])
        for _ in range(MAX_STEPS_PER_PASS):
            now = self.clock()
            try:
                observed = self._observe(release, spec, status_in, memory)
                desired = self._desired(memory)
                step = plan(desired, observed, settings, now)
                if step.writes:
                    self._act(release, spec, step, observed, memory, now)
            except ClusterError as exc:
                self._report_blocked(release, memory, status_in, generation, exc.reason, exc.message, log)
                return None
            if step.writes:
                log.info(step.message, action=str(step.action), reason=step.reason, color=str(step.color))
                self.cluster.post_event(release, "Warning" if step.stalled else "Normal", step.reason, step.message)
                if memory.commit is not None:
                    history = record(history, step, commit=memory.commit.sha, summary=memory.commit.summary,
                                     author=memory.commit.author, now=now)
            else:
                self._notice(release, memory, step, log)
            status = self._status(spec, step, observed, memory, status_in, generation, history, now)
            if status != memory.last_status:
                self.cluster.patch_status(release, status)
                memory.last_status = status
                status_in = {**status_in, **status}
            if not step.writes:
                break
        assert step is not None
        return self._next_pass(spec, step, memory)

    # ---- source ---------------------------------------------------------------------------------
    def _fetch_due(self, spec: ReleaseSpec, memory: Memory, forced: bool) -> float | None:
        """None when git need not be read now; else the oldest mirror refresh (monotonic) that will do.

        Releases of one repository share a mirror: a refresh made for another release since ``not_before``
        is reused, so N releases polling one repository cost one remote check per interval.
        """
        now = self.monotonic()
        key = (spec.source.url, spec.source.ref, spec.source.path)
        requested = memory.check_requested_at
        if forced or memory.fetched_at is None or memory.source_key != key:
            return now
        if requested is not None and memory.fetched_at < requested:
            return requested
        if now - memory.fetched_at >= spec.source.interval_seconds:
            return now - spec.source.interval_seconds
        return None

    def _refresh_source(self, release: ReleaseRef, spec: ReleaseSpec, memory: Memory, not_before: float) -> None:
        memory.source_key = (spec.source.url, spec.source.ref, spec.source.path)
        memory.fetched_at = self.monotonic()
        src = spec.source
        try:
            credentials = self._credentials(release, spec)
            snapshot = self.source.snapshot(src.url, src.ref, src.path, credentials=credentials,
                                            not_before=not_before)
        except SourceError as exc:
            memory.source = SourceStatus(False, exc.reason, exc.message, memory.source.commit)
            if not memory.source.transient:  # the manifest is gone: hold; unreachable: keep the last good one
                memory.template = None
            return
        memory.fetched_at = min(memory.fetched_at, _refreshed_at(snapshot, memory.fetched_at))
        if spec.source.verify is not None:
            memory.verified = self._verify(release, spec, snapshot.commit, credentials, memory)
            if not memory.verified.ok:
                memory.commit = snapshot.commit
                memory.template = None
                memory.source = SourceStatus(False, memory.verified.reason, memory.verified.message,
                                             snapshot.commit.sha)
                return
        else:
            memory.verified = None
        memory.commit = snapshot.commit
        try:
            memory.template = parse_manifest(snapshot.content, namespace=release.namespace, path=src.path)
        except ManifestError as exc:
            memory.template = None
            memory.source = SourceStatus(False, exc.reason, f"commit {snapshot.commit.short_sha}: {exc.message}",
                                         snapshot.commit.sha)
            return
        memory.source = SourceStatus(True, "Fetched",
                                     f"commit {snapshot.commit.short_sha} ({snapshot.commit.summary!r}) on "
                                     f"{src.ref.describe()} of {src.path}", snapshot.commit.sha)

    def _credentials(self, release: ReleaseRef, spec: ReleaseSpec) -> Credentials | None:
        """Git credentials from the Secret named in spec.source.secretRef, read on every fetch (rotation)."""
        name = spec.source.secret_ref
        if name is None:
            return None
        data = self.cluster.read_secret(release.namespace, name)
        if data is None:
            raise SourceError("SecretNotFound", f"Secret {name!r} (spec.source.secretRef) does not exist in "
                                                f"namespace {release.namespace!r}; create it")
        return Credentials.from_secret_data(data)

    def _verify(self, release: ReleaseRef, spec: ReleaseSpec, commit: CommitInfo, credentials: Credentials | None,
                memory: Memory) -> SourceStatus:
        """Is the commit signed by a key in the trusted-keys Secret? (cached per commit and key set)"""
        assert spec.source.verify is not None
        name = spec.source.verify.secret_ref
        data = self.cluster.read_secret(release.namespace, name)
        if data is None:
            return SourceStatus(False, "SecretNotFound", f"Secret {name!r} (spec.source.verify.secretRef) does "
                                                         f"not exist in namespace {release.namespace!r}")
        try:
            keys = TrustedKeys.from_secret_data(data, secret_name=name)
        except VerifyError as exc:
            return SourceStatus(False, exc.reason, exc.message, commit.sha)
        cache_key = (commit.sha, keys_fingerprint(data))
        if cache_key not in memory.verdicts:
            signature = self.source.signature(spec.source.url, commit.sha, credentials=credentials)
            try:
                verdict = verify_commit(commit.sha, signature, keys, secret_name=name)
            except VerifyError as exc:  # gpg/ssh-keygen missing or hung: our fault, retried, never cached
                return SourceStatus(False, exc.reason, exc.message, commit.sha)
            memory.verdicts = {cache_key: SourceStatus(verdict.ok, verdict.reason, verdict.message, commit.sha)}
        return memory.verdicts[cache_key]

    @staticmethod
    def _desired(memory: Memory) -> Desired | None:
        if memory.template is None or memory.commit is None:
            return None
        return Desired(memory.commit.sha, memory.template.template_hash, memory.template.replicas)

    # ---- observe and act ------------------------------------------------------------------------
    def _observe(self, release: ReleaseRef, spec: ReleaseSpec, status: Mapping[str, Any], memory: Memory) -> Observed:
        preview = self.cluster.service_state(release.namespace, spec.preview_service) \
            if spec.preview_service else None
        recorded = status.get("activeColor")
        return Observed(
            blue=self.cluster.color_state(release, Color.BLUE),
            green=self.cluster.color_state(release, Color.GREEN),
            service=self.cluster.service_state(release.namespace, spec.service),
            preview=preview,
            recorded_active=Color(recorded) if recorded in ("blue", "green") else None,
            scale_down_at=parse_time(status.get("idleScaleDownAt")),
        )

    def _act(self, release: ReleaseRef, spec: ReleaseSpec, step: Plan, observed: Observed, memory: Memory,
             now: datetime) -> None:
        assert step.color is not None
        stamp = format_time(now)
        if step.action is Action.APPLY:
            assert memory.template is not None and memory.commit is not None and step.replicas is not None
            owner = owner_reference(release.name, release.uid) if spec.owns_deployments and release.uid else None
            body = render_deployment(memory.template, release=release.name, namespace=release.namespace,
                                     color=step.color, commit=memory.commit.sha, replicas=step.replicas, owner=owner)
            body["metadata"]["annotations"][ANNOTATION_ROLLOUT_STARTED_AT] = stamp
            self.cluster.apply_deployment(body)
            if observed.color(step.color).abandoned_commit:
                self.cluster.scale(release, step.color, step.replicas, {ANNOTATION_ABANDONED_COMMIT: None})
        elif step.action is Action.SCALE:
            assert step.replicas is not None
            starting = step.color != observed.service.color
            annotations = {ANNOTATION_ROLLOUT_STARTED_AT: stamp, ANNOTATION_ABANDONED_COMMIT: None} if starting else {}
            self.cluster.scale(release, step.color, step.replicas, annotations)
        elif step.action is Action.SCALE_DOWN:
            self.cluster.scale(release, step.color, 0, {ANNOTATION_ROLLOUT_STARTED_AT: None})
        elif step.action is Action.ABANDON:
            assert memory.commit is not None
            self.cluster.scale(release, step.color, 0, {ANNOTATION_ABANDONED_COMMIT: memory.commit.sha})
        elif step.action is Action.SWITCH:
            self.cluster.switch_selector(release.namespace, spec.service, step.color)
        elif step.action is Action.SWITCH_PREVIEW:
            assert spec.preview_service is not None
            self.cluster.switch_selector(release.namespace, spec.preview_service, step.color)

    # ---- status, events, timing -----------------------------------------------------------------
    def _status(self, spec: ReleaseSpec, step: Plan, observed: Observed, memory: Memory, previous: Mapping[str, Any],
                generation: int, history: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        active = step.active
        active_revision = previous.get("activeRevision")
        desired = self._desired(memory)
        if active is not None:
            state = observed.color(active)
            if desired is not None and state.template_hash == desired.template_hash:
                active_revision = desired.commit  # the commit whose manifest serves (a revert names itself)
            elif previous.get("activeColor") != str(active):
                active_revision = state.commit
        preview = observed.preview.color if observed.preview is not None else None
        if step.action is Action.SWITCH_PREVIEW:
            preview = step.color
        return {
            "activeColor": str(active) if active else None,
            "activeRevision": active_revision,
            "lastAttemptedRevision": memory.source.commit or (memory.commit.sha if memory.commit else None),
            "observedGeneration": generation,
            "phase": str(step.phase),
            "message": step.message,
            "previewColor": str(preview) if preview else None,
            "idleScaleDownAt": format_time(step.scale_down_at) if step.scale_down_at else None,
            "conditions": build_conditions(step, memory.source, generation, previous.get("conditions") or [], now,
                                           verified=memory.verified),
            "history": history,
        }

    def _notice(self, release: ReleaseRef, memory: Memory, step: Plan, log: Any) -> None:
        """An Event and a log line when a problem (bad source, stall) appears or changes; silence otherwise."""
        if not memory.source.ok and memory.source.reason != "NotFetched" and step.phase != Phase.SUSPENDED:
            notice = (memory.source.reason, memory.source.message)
        elif step.stalled:
            notice = (step.reason, step.message)
        else:
            if memory.last_notice is not None:
                log.info("recovered", reason=step.reason, action=str(step.action))
            memory.last_notice = None
            return
        if notice != memory.last_notice:
            memory.last_notice = notice
            log.warning(notice[1], reason=notice[0], action=str(step.action))
            self.cluster.post_event(release, "Warning", *notice)

    def _report_blocked(self, release: ReleaseRef, memory: Memory, previous: Mapping[str, Any], generation: int,
                        reason: str, message: str, log: Any) -> None:
        """The release cannot be planned (bad spec, foreign Deployment): say so, touch nothing else."""
        now = self.clock()
        step = Plan(Action.NONE, reason, message, Phase.DEGRADED, stalled=True,
                    active=Color(previous["activeColor"]) if previous.get("activeColor") in ("blue", "green") else None)
        source = memory.source if reason != "InvalidSpec" else SourceStatus(False, reason, message)
        status = {
            "observedGeneration": generation, "phase": str(step.phase), "message": message,
            "conditions": build_conditions(step, source, generation, previous.get("conditions") or [], now),
        }
        if (reason, message) != memory.last_notice:
            memory.last_notice = (reason, message)
            log.warning(message, reason=reason, action="None")
            self.cluster.post_event(release, "Warning", reason, message)
        if status != memory.last_status:
            self.cluster.patch_status(release, status)
            memory.last_status = status

    def _next_pass(self, spec: ReleaseSpec, step: Plan, memory: Memory) -> float | None:
        if spec.suspend:
            return None
        fetched = memory.fetched_at if memory.fetched_at is not None else self.monotonic()
        until_fetch = max(0.0, fetched + spec.source.interval_seconds - self.monotonic())
        if step.requeue_after is None:
            return until_fetch
        return min(until_fetch, max(0.0, step.requeue_after))


def _refreshed_at(snapshot: Snapshot, default: float) -> float:
    """When the mirror behind ``snapshot`` last contacted the remote (aligns polls of a shared repository)."""
    for holder in (snapshot, snapshot.commit):
        value = getattr(holder, "refreshed_at", None)
        if isinstance(value, int | float) and value > 0:  # 0: this process never contacted that remote
            return float(value)
    return default


def keys_fingerprint(data: Mapping[str, bytes]) -> str:
    """Identity of a trusted-keys Secret's content (a rotated key set is verified again)."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key] + b"\0")
    return digest.hexdigest()
