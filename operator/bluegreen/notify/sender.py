"""The notifier: turns each status write of a pass into notifications and delivers them on its own threads.

``status_written`` is called by the reconciler right after a status patch succeeded (so only the process that
writes, the leader, ever notifies). It derives the notifications from the history before and after the write
(``bluegreen.core.notifications.announce``), queues one delivery per target that wants the event, and returns:
it never blocks and never raises into the pass. A small pool of sender threads works the queue
(``bluegreen.notify.lanes``: per target in order, at most half the senders for one destination, a full queue
drops its oldest delivery with a warning).

Each attempt reads the target's Secret through the cluster (``read_secret``), renders the message
(``bluegreen.core.notify_messages``) and POSTs it (``bluegreen.notify.post``: timeouts, the deny-networks
guard). Retries follow ``bluegreen.core.delivery_policy``; a delivery that fails for good is one warning log
line and one Warning Event ``NotificationFailed`` on the release, naming the target. No log line or Event
carries a URL or a Secret's value.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from bluegreen.core.delivery_policy import DeliveryPolicy, delivered, parse_retry_after
from bluegreen.core.networks import DEFAULT_DENY_NETWORKS, Network, parse_networks
from bluegreen.core.notifications import Notification, announce
from bluegreen.core.notify_messages import slack_body, webhook_body, webhook_headers
from bluegreen.core.notify_spec import NotifyTarget
from bluegreen.core.spec import ReleaseRef, ReleaseSpec
from bluegreen.logs import get_logger
from bluegreen.notify.lanes import Lanes
from bluegreen.notify.post import Answer, DeliveryRefused, check_url, post

EVENT_REASON = "NotificationFailed"
DEFAULT_WORKERS = 4
DEFAULT_CAPACITY = 1000
REMEMBERED = 4096
"""Notification ids (per target) remembered, so one written twice is queued once."""

Post = Callable[[str, bytes, Mapping[str, str], float, Sequence[Network]], Answer]


class NotifyCluster(Protocol):
    """What the notifier needs of the cluster (``bluegreen.core.protocols.Cluster`` has both)."""

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def post_event(self, release: ReleaseRef, kind: str, reason: str, message: str) -> None: ...


@dataclass
class Delivery:
    """One notification for one target, and how its attempts went."""

    release: ReleaseRef
    target: NotifyTarget
    note: Notification
    queued_at: float
    """Monotonic: when the status write queued it."""
    attempts: int = 0


def destination(release: ReleaseRef, target: NotifyTarget) -> tuple[str, ...]:
    """Who receives: a webhook's scheme, host and port; a Slack target's Secret (its URL is read when sent).
    At most half the senders work for one destination at a time."""
    if target.url is not None:
        parts = urlsplit(target.url)
        return parts.scheme, parts.netloc.rsplit("@", 1)[-1].lower()  # host:port (a bad port is refused when sent)
    return "secret", release.namespace, target.secret_name


class Notifier:
    """Queues and delivers release notifications; thread-safe. ``start`` the senders, ``close`` at the end."""

    def __init__(self, cluster: NotifyCluster, *, deny_networks: Sequence[Network] | None = None,
                 policy: DeliveryPolicy | None = None, workers: int = DEFAULT_WORKERS,
                 capacity: int = DEFAULT_CAPACITY, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random,
                 sender: Post = post) -> None:
        self.cluster = cluster
        self.deny_networks = tuple(deny_networks if deny_networks is not None
                                   else parse_networks(DEFAULT_DENY_NETWORKS))
        self.policy = policy or DeliveryPolicy()
        self.workers = workers
        self._now = now
        self._monotonic = monotonic
        self._rand = rand
        self._post = sender
        self.lanes: Lanes[Delivery] = Lanes(capacity, monotonic, group_limit=max(1, workers // 2))
        self._queued: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._guard = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.log = get_logger("bluegreen.notify")

    @classmethod
    def from_env(cls, cluster: NotifyCluster, *, deny_networks: Sequence[Network],
                 environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier tuned by ``BLUEGREEN_NOTIFY_WORKERS`` (senders, default 4), ``BLUEGREEN_NOTIFY_QUEUE``
        (capacity, 1000), ``BLUEGREEN_NOTIFY_TIMEOUT`` (seconds per attempt, 5), ``BLUEGREEN_NOTIFY_ATTEMPTS``
        (4) and ``BLUEGREEN_NOTIFY_BACKOFF`` (seconds before the first retry, about 1). Raises ValueError."""
        env = os.environ if environ is None else environ
        base = DeliveryPolicy()
        policy = DeliveryPolicy(attempts=int(env.get("BLUEGREEN_NOTIFY_ATTEMPTS", base.attempts)),
                                timeout_seconds=float(env.get("BLUEGREEN_NOTIFY_TIMEOUT", base.timeout_seconds)),
                                backoff_first=float(env.get("BLUEGREEN_NOTIFY_BACKOFF", base.backoff_first)))
        return cls(cluster, deny_networks=deny_networks, policy=policy,
                   workers=int(env.get("BLUEGREEN_NOTIFY_WORKERS", DEFAULT_WORKERS)),
                   capacity=int(env.get("BLUEGREEN_NOTIFY_QUEUE", DEFAULT_CAPACITY)))

    # ---- from the pass ---------------------------------------------------------------------------
    def status_written(self, release: ReleaseRef, spec: ReleaseSpec, before: Mapping[str, Any] | None,
                       after: Mapping[str, Any]) -> None:
        """The pass wrote ``after`` over ``before``: queue what it announces. Never blocks, never raises."""
        if not spec.notify:
            return
        try:
            self.queue(release, spec.notify, announce(release, before, after))
        except Exception as exc:  # a notification must never break a pass
            self.log.warning("notifications not queued", release=release.name, namespace=release.namespace,
                             action="Notify", error=f"{type(exc).__name__}: {exc}"[:300])

    def queue(self, release: ReleaseRef, targets: Sequence[NotifyTarget], notes: Sequence[Notification]) -> int:
        """Queue each note for each target that wants its event; return how many deliveries were queued."""
        count = 0
        for note in notes:
            for target in targets:
                if not target.wants(note.event) or not self._first_time(release, target, note):
                    continue
                dropped = self.lanes.put((release.namespace, release.name, target.name),
                                         Delivery(release, target, note, self._monotonic()),
                                         destination(release, target))
                count += 1
                if dropped is not None:
                    self._bind(dropped).warning("notification queue full: the oldest notification was dropped",
                                                capacity=self.lanes.capacity)
        return count

    def _first_time(self, release: ReleaseRef, target: NotifyTarget, note: Notification) -> bool:
        key = (str(release), target.name, note.id)
        with self._guard:
            if key in self._queued:
                return False
            self._queued[key] = None
            while len(self._queued) > REMEMBERED:
                self._queued.popitem(last=False)
            return True

    # ---- the senders -----------------------------------------------------------------------------
    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"bluegreen-notify-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, grace: float = 1.0) -> None:
        """Stop the senders (an attempt under way gets ``grace`` seconds); what is still queued is dropped."""
        left = len(self.lanes)
        self.lanes.close()
        deadline = self._monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
        if left:
            self.log.warning("notifier stopped: queued notifications dropped", dropped=left, action="Notify")

    def _work(self) -> None:
        while True:
            taken = self.lanes.take()
            if taken is None:
                return
            lane, delivery = taken
            try:
                retry_in = self._attempt(delivery)
            except Exception as exc:  # a bug must not kill a sender thread
                self._bind(delivery).warning("notification failed", error=f"{type(exc).__name__}"[:200])
                retry_in = None
            self.lanes.done(lane, retry_in)

    def _attempt(self, delivery: Delivery) -> float | None:
        """One attempt; the seconds until the next one, or None when the delivery is over."""
        delivery.attempts += 1
        log = self._bind(delivery)
        try:
            answer = self._send(delivery)
        except DeliveryRefused as exc:
            self._failed(delivery, str(exc))
            return None
        if answer.status is not None and delivered(answer.status):
            log.info("notification delivered", attempts=delivery.attempts, status=answer.status,
                     ms=round((self._monotonic() - delivery.queued_at) * 1000, 1))
            return None
        retry_after = parse_retry_after(answer.retry_after, self._now()) if answer.status is not None else None
        delay = self.policy.next_delay(delivery.attempts, answer.status, self._rand(), retry_after)
        if delay is None:
            self._failed(delivery, answer.describe())
            return None
        log.info("notification attempt failed; retrying", attempt=delivery.attempts, error=answer.describe(),
                 retry_in=round(delay, 3))
        return delay

    def _send(self, delivery: Delivery) -> Answer:
        """Read the Secret, render, POST. Raises ``DeliveryRefused`` when trying again changes nothing."""
        release, target = delivery.release, delivery.target
        try:
            data = self.cluster.read_secret(release.namespace, target.secret_name)
        except Exception as exc:  # the API server: retried like a network error
            return Answer(None, f"cannot read Secret {target.secret_name!r} ({type(exc).__name__})")
        if data is None:
            raise DeliveryRefused(f"Secret {target.secret_name!r} not found")
        value = data.get(target.secret_key)
        if value is None or not value.strip():
            raise DeliveryRefused(f"Secret {target.secret_name!r} has no (or an empty) key {target.secret_key!r}")
        if target.kind == "webhook":
            assert target.url is not None
            body = webhook_body(delivery.note, self._now())
            return self._post(target.url, body, webhook_headers(delivery.note, value.strip(), body),
                              self.policy.timeout_seconds, self.deny_networks)
        url = value.decode("utf-8", "replace").strip()
        try:
            check_url(url)
        except DeliveryRefused as exc:
            raise DeliveryRefused(f"Secret {target.secret_name!r} key {target.secret_key!r}: {exc}") from None
        return self._post(url, slack_body(delivery.note), {"Content-Type": "application/json"},
                          self.policy.timeout_seconds, self.deny_networks)

    def _failed(self, delivery: Delivery, error: str) -> None:
        note, target = delivery.note, delivery.target
        message = (f"{note.event} notification of commit {note.short_revision} to target {target.name!r} failed "
                   f"after {delivery.attempts} attempt{'s' if delivery.attempts > 1 else ''}: {error}")
        self._bind(delivery).warning(message, attempts=delivery.attempts, error=error, reason=EVENT_REASON)
        try:
            self.cluster.post_event(delivery.release, "Warning", EVENT_REASON, message)
        except Exception as exc:
            self._bind(delivery).warning("could not post the NotificationFailed Event",
                                         error=f"{type(exc).__name__}"[:200])

    def _bind(self, delivery: Delivery) -> Any:
        return self.log.bind(release=delivery.release.name, namespace=delivery.release.namespace,
                             target=delivery.target.name, kind=delivery.target.kind,
                             notify_event=str(delivery.note.event),
                             commit=delivery.note.short_revision, notification=delivery.note.id, action="Notify")
