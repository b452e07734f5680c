"""Release notifications end to end: the operator (a real process under its least-privilege ServiceAccount)
releases v1 to v5 and then a ``git revert`` of v5, with ``spec.notify`` naming a signed webhook and a
Slack-compatible target whose URL is in a Secret of the namespace. Real receivers on loopback
(``tests/servers/receivers.py``) must get Started and Promoted of each release and RolledBack of the revert,
with the right commit, colour and author, every webhook signature verifying.

Before v4 a third target is added that accepts connections and never answers: no switch waits for it (the
switch times of v2, v3 without it and v4, v5 with it are printed), the other targets still get every
notification at once, and the hanging delivery ends, after its timeout, in a Warning Event
``NotificationFailed`` naming the target. Neither the Events nor the operator's log carry a URL or a Secret's
value.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gates import SelectorWatch
from kubernetes import client
from waiting import wait_until

from conftest import Cluster, GitRepo, Operator, operator_kubeconfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from receivers import HangingReceiver, Receiver

HMAC_KEY = "e2e-hmac-key-never-logged"
SLACK_PATH = "T0E2E/B0E2E/slackTokenNeverLogged"
HANG_TIMEOUT = 20


@dataclass
class Switch:
    commit: str
    asked: float
    available: float
    """When the test first saw the new colour fully available (polled every 20 ms)."""
    switched: float
    """When the selector watch saw the switch."""

    def seconds(self) -> tuple[float, float]:
        """(request -> switch, fully available -> switch)."""
        return self.switched - self.asked, self.switched - self.available


def _available(cluster: Cluster, color: str, commit: str) -> bool:
    found = cluster.deployment(color)
    if found is None or (found.metadata.annotations or {}).get("bluegreen.dev/commit") != commit:
        return False
    spec, status = found.spec.replicas, found.status
    return bool(spec and (status.observed_generation or 0) >= found.metadata.generation
                and status.replicas == status.updated_replicas == status.ready_replicas
                == status.available_replicas == spec)


def _release(cluster: Cluster, repo: GitRepo, selector: SelectorWatch, version: str, color: str) -> Switch:
    """Commit ``version``, ask for a git check, and time the switch to ``color``."""
    sha = repo.release(f"registry.local/shop:{version}", replicas=2, delay=1, message=f"shop {version}")
    asked = time.monotonic()
    cluster.check_now()
    wait_until(lambda: _available(cluster, color, sha), timeout=90, interval=0.02, what=f"{version} available")
    available = time.monotonic()
    switched = wait_until(lambda: selector.first_after(asked, color), timeout=30, interval=0.02,
                          what=f"the switch to {color}")
    cluster.wait_serving(sha, color, timeout=30)
    return Switch(sha, asked, available, switched)


def test_a_release_and_a_rollback_are_announced_and_a_hanging_receiver_delays_nothing(
        kube_client: client.ApiClient, crd: None, cluster: Cluster, namespace: str, repo: GitRepo,
        tmp_path: Path) -> None:
    hook, chat, hang = Receiver(secret=HMAC_KEY.encode()), Receiver(), HangingReceiver()
    slack_url = f"{chat.url}/{SLACK_PATH}"
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "notify-hmac"},
                                                      "stringData": {"secret": HMAC_KEY}})
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "chat-webhook"},
                                                      "stringData": {"url": slack_url}})
    operator = Operator(namespace, operator_kubeconfig(kube_client, namespace, tmp_path), tmp_path, extra_env={
        "BLUEGREEN_NOTIFY_TIMEOUT": str(HANG_TIMEOUT), "BLUEGREEN_NOTIFY_ATTEMPTS": "1"}).start()
    targets = [{"name": "team-hook", "webhook": {"url": hook.url, "secretRef": {"name": "notify-hmac"}}},
               {"name": "team-chat", "slack": {"secretRef": {"name": "chat-webhook"}}}]
    try:
        cluster.create_service()
        with SelectorWatch(cluster.api, namespace) as selector:
            v1 = repo.release("registry.local/shop:v1", replicas=2, delay=1, message="shop v1")
            cluster.create_release(repo, notify=targets)
            cluster.wait_serving(v1, "blue", timeout=90)
            hook.wait_for(2, timeout=30)
            plain = [_release(cluster, repo, selector, "v2", "green"),
                     _release(cluster, repo, selector, "v3", "blue")]
            promoted_v2 = hook.wait_for(4, timeout=30)[3]
            hook.wait_for(6, timeout=30)

            cluster.patch_release({"spec": {"notify": [
                *targets, {"name": "hangs", "webhook": {"url": hang.url, "secretRef": {"name": "notify-hmac"}}}]}})
            wait_until(lambda: cluster.status().get("observedGeneration") == 2, timeout=30,
                       what="the spec with the hanging target seen")
            hanging = [_release(cluster, repo, selector, "v4", "green"),
                       _release(cluster, repo, selector, "v5", "blue")]
            assert hang.accepted and hang.accepted[0] < hanging[0].switched, "v4's Started reached it before the switch"
            assert not hang.closed or hang.closed[0] > hanging[1].switched, "no switch waited for its timeout"
            hook.wait_for(10, timeout=30)

            revert = repo.revert()
            asked = time.monotonic()
            cluster.check_now()
            cluster.wait_serving(revert, "green", timeout=60)
            rolled_back = hook.wait_for(11, timeout=30)[10]
            chat.wait_for(11, timeout=30)
            assert len(hang.closed) <= 1 and rolled_back.at - asked < HANG_TIMEOUT, \
                "the revert's notifications did not queue behind the hanging target"
        failed = wait_until(lambda: [e for e in cluster.events("NotificationFailed")], timeout=HANG_TIMEOUT + 30,
                            what="a NotificationFailed Event for the hanging target")
    finally:
        operator.stop()
        for server in (hook, chat, hang):
            server.stop()

    said = [(r.json["event"], r.json["commit"]["sha"], r.json["color"]) for r in hook.received]
    releases = [(v1, "blue")] + [(s.commit, c) for s, c in zip([*plain, *hanging], ["green", "blue"] * 2, strict=True)]
    assert said == [*[(event, sha, color) for sha, color in releases for event in ("Started", "Promoted")],
                    ("RolledBack", revert, "green")]
    assert all(r.verified for r in hook.received), "every webhook signature verifies with the Secret's key"
    assert all(r.headers["X-Bluegreen-Event"] == r.json["event"] for r in hook.received)
    assert len({r.json["id"] for r in hook.received}) == 11
    for received in hook.received:
        document = received.json
        assert document["release"]["namespace"] == namespace and document["release"]["name"] == "shop"
        assert document["commit"]["author"] == "Dev One <dev@example.com>"
        assert document["commit"]["short"] == document["commit"]["sha"][:12]
    assert rolled_back.json["commit"]["message"].startswith('Revert "shop v5"')
    assert (rolled_back.json["activeColor"], rolled_back.json["reason"]) == ("green", "Rollback")
    assert promoted_v2.json["durationSeconds"] is not None and promoted_v2.json["outcome"] == "Succeeded"

    texts = [r.json["text"] for r in chat.received]
    assert all(r.path == f"/hook/{SLACK_PATH}" for r in chat.received), "the Secret's URL, path included"
    assert [t.split(": ", 1)[1].split(",")[0] for t in texts] == [
        *[f"{verb}" for color in ("blue", "green", "blue", "green", "blue")
          for verb in (f"releasing to {color}", f"{color} promoted")], "rolled back to green"]
    assert hanging[1].commit[:12] in texts[9] and "Dev One &lt;dev@example.com&gt;" in texts[9]

    [event] = failed[:1]
    assert event.type == "Warning"
    assert event.message == (f"Started notification of commit {hanging[0].commit[:12]} to target 'hangs' failed "
                             f"after 1 attempt: no answer within {HANG_TIMEOUT}s")
    log = operator.text()
    for secret in (HMAC_KEY, SLACK_PATH, hook.url, chat.url, hang.url):
        assert secret not in log, f"{secret!r} is in the operator's log"
        assert all(secret not in e.message for e in cluster.events())
    delivered = [line for line in operator.lines() if line.get("event") == "notification delivered"]
    assert {line["target"] for line in delivered} == {"team-hook", "team-chat"}
    latency = (promoted_v2.at - plain[0].switched) * 1000

    def times(switches: list[Switch]) -> str:
        return ", ".join(f"{total:.2f}s ({reaction * 1000:.0f} ms after available)"
                         for total, reaction in (s.seconds() for s in switches))

    print(f"notify e2e: request -> switch without the hanging target: {times(plain)}; with it: {times(hanging)} "
          f"(each of its deliveries held {HANG_TIMEOUT}s); Promoted of v2 reached the webhook {latency:.0f} ms after "
          f"the switch was seen; delivery ms after the status write (operator log): "
          f"{sorted(line['ms'] for line in delivered)}")

