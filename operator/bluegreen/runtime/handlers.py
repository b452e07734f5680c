"""kopf wiring: the only module that imports kopf. Thin: watch events feed the view and the controller's queue.

- BlueGreenRelease events keep the controller's copy of each release current (and queue it when its spec or
  its ``bluegreen.dev/reconcile-at`` annotation changed);
- the Deployments labelled ``bluegreen.dev/release`` (selected on the server) and the Services feed the
  in-memory view (``bluegreen.kube.view``) that passes plan from, and queue the releases they belong to, so a
  cut-over follows the last pod becoming ready within a fraction of a second. The hook Jobs labelled
  ``bluegreen.dev/release`` (checks, migrations) feed the view too, and the hook-Job runner
  (``bluegreen.hooks.hook_jobs``) wakes the release when a Job's verdict changes. The view is fed by
  ``@kopf.index`` handlers: kopf holds back the processing of every event (release events, which start the
  passes, included) until each indexed resource is fully listed, so no pass plans from a half-listed view;
- git is read by the fetch scheduler (``runtime.fetcher``) on its own threads; it queues a release when its
  result changed;
- with ``--webhook-listen``, the push-webhook receiver (``bluegreen.webhook``) runs in kopf's event loop from
  startup to cleanup and asks the controller to check git now for the releases a push concerns;
- with ``--leader-elect``, the controller's workers and the fetch scheduler start only once this process holds
  the leader Lease (``runtime.leader``); until then it stands by with warm watches, and every write of its API
  client is refused. Losing the Lease stops the operator (exit status 1), as client-go's controllers do.
- with ``--metrics-listen``, ``/metrics`` (``bluegreen.metrics``) is served on a thread of its own for the
  whole run; the release, Deployment and switch events below, the passes, the git checks and the webhooks
  report to its recorder (``memo.recorder``; without it, the no-op ``Recorder``).

No handler writes to the watched objects, so kopf adds no finalizer and stores no progress on them:
deleting a release never needs the operator.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from pathlib import Path
from typing import Any

import kopf

from bluegreen import __version__
from bluegreen.core.leases import LeaseSettings
from bluegreen.core.recorder import Recorder
from bluegreen.core.spec import GROUP, LABEL_RELEASE, PLURAL, VERSION, ReleaseRef
from bluegreen.git.compaction import CompactionResult
from bluegreen.git.source import GitSource
from bluegreen.hooks.hook_jobs import HookJobs
from bluegreen.hooks.http_checks import DEFAULT_DENY_NETWORKS, HttpCheckRunner, parse_networks
from bluegreen.hooks.job_checks import JobCheckRunner
from bluegreen.hooks.runner import CheckRunners
from bluegreen.kube.client import RequestTimeouts, load_api_client
from bluegreen.kube.cluster import ClusterView
from bluegreen.kube.leases import KubeLeases
from bluegreen.kube.states import deployment_record
from bluegreen.logs import get_logger
from bluegreen.metrics.recorder import PrometheusRecorder
from bluegreen.metrics.server import MetricsServer
from bluegreen.notify import Notifier
from bluegreen.runtime.controller import Controller, Timing
from bluegreen.runtime.fetcher import FetchScheduler
from bluegreen.runtime.leader import LeaderElector, identity
from bluegreen.runtime.metering import MeteredCluster, timed_passes
from bluegreen.runtime.reconciler import Reconciler
from bluegreen.verify.verifier import CommitVerifier
from bluegreen.webhook.secret import SecretFile, WebhookSecretError
from bluegreen.webhook.server import WebhookConfig, WebhookServer

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "bluegreen" / "git"


def cache_dir() -> Path:
    return Path(os.environ.get("BLUEGREEN_CACHE_DIR") or DEFAULT_CACHE_DIR)


def check_deny_networks(value: str | None = None) -> str:
    """The networks HTTP checks may not call: ``value`` (``--check-deny-networks``), else the environment's
    ``BLUEGREEN_CHECK_DENY_NETWORKS``, else link-local (``169.254.0.0/16,fe80::/10``)."""
    if value is not None:
        return value
    return os.environ.get("BLUEGREEN_CHECK_DENY_NETWORKS", DEFAULT_DENY_NETWORKS)


def run_operator(namespaces: list[str], *, liveness: str | None, webhook: WebhookConfig | None = None,
                 deny_networks: str | None = None, leader: LeaseSettings | None = None,
                 metrics: tuple[str, int] | None = None) -> bool:
    """Run until stopped: every namespace when ``namespaces`` is empty. kopf runs standalone (no peering):
    with ``leader``, the operator's own Lease decides which process acts. With ``webhook``, the push-webhook
    receiver listens too; with ``metrics`` (host, port), ``/metrics`` is served there from before kopf starts
    until it has stopped. ``deny_networks``: ``--check-deny-networks`` (None: ``check_deny_networks()``).
    Raises ValueError for a network that does not parse, ``ListenError`` when the metrics address cannot be
    listened on. Returns True when it stopped because the leader Lease was lost."""
    networks = check_deny_networks(deny_networks)
    parse_networks(networks)
    recorder: Recorder = Recorder()
    server = None
    if metrics is not None:
        recorder = PrometheusRecorder()
        server = MetricsServer(*metrics, recorder.registry)
        server.start()
    stop_flag = asyncio.Event()  # bound to kopf's loop on first use (a threading.Event would hold an executor thread)
    memo = kopf.Memo(webhook_config=webhook, deny_networks=networks, leader_settings=leader, stop_flag=stop_flag,
                     leadership_lost=False, recorder=recorder)
    try:
        kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces, liveness_endpoint=liveness,
                 memo=memo, stop_flag=stop_flag)
    finally:
        if server is not None:
            server.stop()
    return bool(memo.leadership_lost)


def pod_of(environ: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(namespace, name) of the operator's pod from the downward API (``POD_NAMESPACE``, ``POD_NAME``)."""
    env = os.environ if environ is None else environ
    namespace, name = env.get("POD_NAMESPACE"), env.get("POD_NAME")
    return (namespace, name) if namespace and name else None


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Tune kopf (no own Events, watch streams that cannot die silently, request timeouts) and start the
    workers."""
    timeouts = RequestTimeouts.from_env()
    settings.posting.enabled = False
    # Least privilege: no right to list CRDs or namespaces, so no dynamic scanning (install the CRD first).
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = timeouts.connect
    if hasattr(settings.watching, "inactivity_timeout"):
        settings.watching.inactivity_timeout = 600
    settings.networking.connect_timeout = timeouts.connect
    settings.networking.request_timeout = 60  # a whole listing (chunked), not one read
    # Only our Deployments are streamed: the API server filters by label (a foreign same-named Deployment is
    # found by the write path instead, see KubeWrites.apply_deployment).
    settings.watching.label_selectors["apps", "v1", "deployments"] = LABEL_RELEASE
    settings.watching.label_selectors["batch", "v1", "jobs"] = LABEL_RELEASE  # the hook Jobs only
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    recorder: Recorder = getattr(memo, "recorder", None) or Recorder()
    memo.recorder = recorder
    view = memo.view = ClusterView()
    me = identity()
    api = load_api_client(timeouts)
    api.user_agent = f"bluegreen-operator/{__version__} ({me})"
    cluster = MeteredCluster(api, view, recorder=recorder)
    source = GitSource(cache_dir(), timeout_seconds=float(os.environ.get("BLUEGREEN_GIT_TIMEOUT", "30")),
                       on_compaction=log_compaction,
                       on_sweep=lambda mirror: get_logger().info("unused mirror removed", mirror=mirror.name),
                       recorder=recorder)
    verifier = CommitVerifier()
    fetcher = FetchScheduler(source, cluster, verifier, workers=int(os.environ.get("BLUEGREEN_FETCH_WORKERS", "4")),
                             recorder=recorder)
    loop = asyncio.get_running_loop()

    def wake(release: ReleaseRef) -> None:  # from a check thread: a check's verdict changed
        loop.call_soon_threadsafe(controller.enqueue, (release.namespace, release.name))

    networks = parse_networks(getattr(memo, "deny_networks", None) or check_deny_networks())
    http_checks = memo.http_checks = HttpCheckRunner(
        cluster.service_address, wake, deny_networks=networks,
        workers=int(os.environ.get("BLUEGREEN_CHECK_WORKERS", "8")))
    # The hook Jobs of releases (Job checks; migrations reuse memo.hook_jobs): a verdict change queues the release.
    memo.hook_jobs = HookJobs(cluster, wake)
    memo.job_checks = JobCheckRunner(memo.hook_jobs)
    checks = CheckRunners(http=http_checks, job=memo.job_checks)
    reconciler = Reconciler(cluster, source, verifier, fetcher=fetcher, checks=checks, hook_jobs=memo.hook_jobs)
    notifier = memo.notifier = Notifier.from_env(cluster, deny_networks=networks)
    notifier.start()
    reconciler.on_status = notifier.status_written  # only passes write status: only the leader notifies
    controller = Controller(timed_passes(reconciler.reconcile, recorder), forget=reconciler.forget,
                            request_check=reconciler.request_check,
                            workers=int(os.environ.get("BLUEGREEN_WORKERS", "4")),
                            timing=Timing(resync=float(os.environ.get("BLUEGREEN_RESYNC_SECONDS", "600"))))

    def written(body: dict[str, Any]) -> None:  # from a pass's thread: the release a status patch returned
        recorder.release_observed(body)
        controller.written_from_thread(body)

    cluster.on_release = written

    def queue(namespace: str, name: str) -> None:  # from a fetch thread: a git result changed
        loop.call_soon_threadsafe(controller.enqueue, (namespace, name))

    def begin() -> None:  # on the loop: act (at once, or once this process leads)
        controller.start()
        fetcher.start(queue)

    leader: LeaseSettings | None = getattr(memo, "leader_settings", None)
    if leader is None:
        begin()
    else:
        memo.elector = start_election(memo, leader, me, api, timeouts, loop, begin)
    memo.controller = controller
    memo.fetcher = fetcher
    config: WebhookConfig | None = getattr(memo, "webhook_config", None)
    if config is not None:
        secret = SecretFile(config.secret_file)
        try:
            secret.load()
        except WebhookSecretError as exc:
            raise kopf.PermanentError(str(exc)) from None
        server = WebhookServer(config.host, config.port, secret, controller.trigger, recorder=recorder)
        try:
            await server.start()
        except OSError as exc:
            raise kopf.PermanentError(f"webhook receiver cannot listen on {config.host}:{config.port}: {exc}") from None
        memo.webhook = server
    get_logger().info("operator started", cache_dir=str(cache_dir()),
                      check_deny_networks=",".join(str(n) for n in networks))


def start_election(memo: kopf.Memo, settings: LeaseSettings, me: str, api: Any, timeouts: RequestTimeouts,
                   loop: asyncio.AbstractEventLoop, begin: Any) -> LeaderElector:
    """Campaign for the leader Lease: ``begin`` once it is held; every write of ``api`` waits for it; losing it
    stops the operator (kopf's stop flag)."""
    elector_api = load_api_client(timeouts)
    elector_api.user_agent = api.user_agent

    def lost() -> None:  # from the elector's thread
        memo.leadership_lost = True
        loop.call_soon_threadsafe(memo.stop_flag.set)

    def started() -> None:  # from the elector's thread
        loop.call_soon_threadsafe(begin)

    elector = LeaderElector(KubeLeases(elector_api, settings.namespace, settings.name), settings, me,
                            on_started=started, on_stopped=lost, pod=pod_of())
    api.write_guard = elector.is_leader
    elector.start()
    return elector


def log_compaction(mirror: Path, outcome: CompactionResult | Exception) -> None:
    """One log line per mirror garbage collection (see ``bluegreen.git.compaction``)."""
    log = get_logger().bind(mirror=mirror.name)
    if isinstance(outcome, Exception):
        log.warning("mirror compaction failed; retried in 10 minutes", error=f"{type(outcome).__name__}: {outcome}")
    else:
        log.info("mirror compacted", packs_before=outcome.packs_before, packs_after=outcome.packs_after,
                 objects=outcome.objects, loose_removed=outcome.loose_removed,
                 shallow_before=outcome.shallow_before, shallow_after=outcome.shallow_after,
                 ms=round(outcome.seconds * 1000, 1))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    server: WebhookServer | None = getattr(memo, "webhook", None)
    if server is not None:
        await server.stop()
    fetcher: FetchScheduler | None = getattr(memo, "fetcher", None)
    if fetcher is not None:
        await asyncio.to_thread(fetcher.stop)
    controller: Controller | None = getattr(memo, "controller", None)
    if controller is not None:
        await controller.stop()
    http_checks: HttpCheckRunner | None = getattr(memo, "http_checks", None)
    if http_checks is not None:
        http_checks.close()
    notifier: Notifier | None = getattr(memo, "notifier", None)
    if notifier is not None:
        await asyncio.to_thread(notifier.close)
    elector: LeaderElector | None = getattr(memo, "elector", None)
    if elector is not None:  # after the workers stopped: a standby may take over at once
        await asyncio.to_thread(elector.stop, give_up=not memo.leadership_lost)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def release_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller = memo.controller
    meta = body.get("metadata", {})
    if type == "DELETED":
        controller.remove(meta.get("namespace"), meta.get("name"))
        memo.recorder.release_deleted(meta.get("namespace"), meta.get("name"))
    else:
        release = copy.deepcopy(dict(body))
        controller.upsert(release)
        memo.recorder.release_observed(release)


# The view is fed by index handlers (they return nothing, so kopf's own index stays empty): they run before
# kopf's "everything listed" barrier, the on.event handlers after it. Deletions reach only on.event handlers.
@kopf.index("apps", "v1", "deployments")
async def deployment_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Into the view, and queue its release at once: the index handler runs first for every event (but
    deletions), so a cut-over waits for no other handler of the event."""
    memo.view.observe_deployment(body)
    release = body.get("metadata", {}).get("labels", {}).get(LABEL_RELEASE)
    if release:
        memo.controller.enqueue((body.get("metadata", {}).get("namespace"), release))
    record = deployment_record(body)
    if record is not None:
        memo.recorder.color_observed(body.get("metadata", {}).get("namespace"), record.release, record.state)


@kopf.index("", "v1", "services")
async def service_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.view.observe_service(body)


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A deleted Deployment (or one that lost the label: it arrives as DELETED without it) leaves the view and
    queues the release the view had; every other event was queued by ``deployment_index``."""
    if type != "DELETED":
        return
    gone = memo.view.deployment_gone(body)
    release = gone.release if gone is not None else body.get("metadata", {}).get("labels", {}).get(LABEL_RELEASE)
    if gone is not None:
        memo.recorder.color_deleted(body.get("metadata", {}).get("namespace"), gone.release, gone.state.color)
    if release:
        memo.controller.enqueue((body.get("metadata", {}).get("namespace"), release))


@kopf.index("batch", "v1", "jobs")
async def job_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.view.observe_job(body)


@kopf.on.event("batch", "v1", "jobs")
async def job_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wake the release of a hook Job whose verdict changed, or that is gone."""
    hook_jobs: HookJobs = memo.hook_jobs
    meta = body.get("metadata", {})
    if type == "DELETED":
        gone = memo.view.job_gone(body)
        if gone is not None:
            hook_jobs.gone(gone)
    else:
        hook_jobs.observed(meta.get("namespace"), meta.get("name"))


@kopf.on.event("", "v1", "services")
async def service_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    meta = body.get("metadata", {})
    if type == "DELETED":
        memo.view.service_gone(body)
    memo.controller.service_changed(meta.get("namespace"), meta.get("name"))
