"""Push webhooks end to end: the operator process listens (--webhook-listen), a git server's signed push makes
it check git at once, anything unauthenticated or unrelated changes nothing.

Releases here poll git only every hour, so a new commit that serves within seconds was fetched because of
the webhook. The payloads name the test repository by its local path (``repository_key`` handles paths)
and carry a made-up commit id, which the operator must ignore: it reads git itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from waiting import stays, wait_until

from conftest import Cluster, GitRepo, Operator, operator_kubeconfig

SECRET = "e2e-webhook-secret-7f3a"
BOGUS_SHA = "0123456789abcdef0123456789abcdef01234567"  # what a forged payload could claim; never used
PROVIDERS = ("github", "gitlab", "gitea", "forgejo", "generic")
LATENCY_LIMIT_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """The running operator's webhook endpoint."""

    def __init__(self, operator: Operator, port: int, secret_file: Path) -> None:
        self.operator = operator
        self.base = f"http://127.0.0.1:{port}"
        self.secret_file = secret_file

    def post(self, route: str, body: bytes, headers: dict[str, str],
             content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"{self.base}/hooks/{route}", data=body, method="POST",
                                         headers={"Content-Type": content_type, **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


@pytest.fixture
def receiver(kube_client: client.ApiClient, crd: None, namespace: str, tmp_path: Path) -> Iterator[Receiver]:
    """The operator with its webhook receiver on a free loopback port and a secret file."""
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    port = free_port()
    runner = Operator(namespace, operator_kubeconfig(kube_client, namespace, tmp_path), tmp_path,
                      extra_args=["--webhook-listen", f"127.0.0.1:{port}", "--webhook-secret-file", str(secret_file)])
    runner.start()
    endpoint = Receiver(runner, port, secret_file)
    try:
        wait_until(endpoint.healthy, timeout=30, what=f"the webhook receiver on port {port} ({runner.text()[-2000:]})")
        yield endpoint
    finally:
        runner.stop()
        if os.environ.get("BLUEGREEN_E2E_SHOW_LOGS"):
            print(runner.text())
    assert SECRET not in runner.text(), "the webhook secret was logged"


# ---- what each git server sends ---------------------------------------------------------------------------
def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push(provider: str, repo_url: str, ref: str = "refs/heads/main",
         secret: str = SECRET) -> tuple[str, bytes, dict[str, str]]:
    """(route, body, headers) of a push as ``provider`` sends it, naming the repository at ``repo_url``."""
    if provider == "github":
        payload: dict[str, Any] = {
            "ref": ref, "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "after": BOGUS_SHA,
            "repository": {"name": "deploy", "full_name": "acme/deploy", "clone_url": repo_url,
                           "ssh_url": "git@github.example.com:acme/deploy.git",
                           "git_url": "git://github.example.com/acme/deploy.git",
                           "html_url": "https://github.example.com/acme/deploy", "default_branch": "main"},
            "pusher": {"name": "dev-one"}, "head_commit": {"id": BOGUS_SHA, "message": "forged"},
        }
        body = json.dumps(payload).encode()
        return "github", body, {"X-GitHub-Event": "push", "X-GitHub-Delivery": "e2e-1",
                                "X-Hub-Signature-256": "sha256=" + sign(secret, body)}
    if provider == "gitlab":
        payload = {
            "object_kind": "push", "ref": ref, "after": BOGUS_SHA, "checkout_sha": BOGUS_SHA,
            "project": {"name": "deploy", "git_http_url": "file://" + repo_url,
                        "git_ssh_url": "git@gitlab.example.com:acme/deploy.git",
                        "web_url": "https://gitlab.example.com/acme/deploy"},
            "repository": {"name": "deploy", "url": "git@gitlab.example.com:acme/deploy.git"},
        }
        event = "Tag Push Hook" if ref.startswith("refs/tags/") else "Push Hook"
        return "gitlab", json.dumps(payload).encode(), {"X-Gitlab-Event": event, "X-Gitlab-Token": secret}
    if provider in ("gitea", "forgejo"):
        payload = {
            "ref": ref, "after": BOGUS_SHA,
            "repository": {"full_name": "acme/deploy", "clone_url": repo_url,
                           "ssh_url": "ssh://git@gitea.example.com:2222/acme/deploy.git",
                           "html_url": "https://gitea.example.com/acme/deploy"},
        }
        body = json.dumps(payload).encode()
        name = "Forgejo" if provider == "forgejo" else "Gitea"
        return "gitea", body, {f"X-{name}-Event": "push", f"X-{name}-Signature": sign(secret, body)}
    body = json.dumps({"repository": repo_url, "ref": ref}).encode()
    return "generic", body, {"X-Signature-256": "sha256=" + sign(secret, body)}


def hourly_release(cluster: Cluster, repo: GitRepo) -> str:
    """A Service and a release that polls git only every hour; returns the first commit, once it serves."""
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", replicas=1, delay=0)
    cluster.create_release(repo, source={"url": repo.url, "path": repo.manifest_path, "interval": "1h"})
    cluster.wait_serving(v1, "blue")
    return v1


def unchanged(cluster: Cluster, commit: str) -> Callable[[], bool]:
    def probe() -> bool:
        status = cluster.status()
        return status.get("activeRevision") == commit and status.get("lastAttemptedRevision") == commit
    return probe


# ---- tests --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_push_releases_the_new_commit_at_once(cluster: Cluster, repo: GitRepo, receiver: Receiver,
                                                      provider: str) -> None:
    v1 = hourly_release(cluster, repo)
    v2 = repo.release("registry.local/shop:v2", replicas=1, delay=0)
    time.sleep(1)
    assert unchanged(cluster, v1)(), "with a 1h interval nothing but the webhook checks git"

    route, body, headers = push(provider, repo.url)
    started = time.monotonic()
    status, reply = receiver.post(route, body, headers)
    assert (status, reply) == (202, {"triggered": 1})
    wait_until(lambda: cluster.status().get("lastAttemptedRevision") == v2, timeout=LATENCY_LIMIT_SECONDS,
               interval=0.02, what="git checked after the push")
    fetched = time.monotonic() - started
    cluster.wait_serving(v2, "green", timeout=LATENCY_LIMIT_SECONDS)
    serving = time.monotonic() - started
    print(f"\n[{provider}] webhook -> git checked {fetched:.2f}s, -> new commit serving {serving:.2f}s")
    assert serving < LATENCY_LIMIT_SECONDS
    assert BOGUS_SHA[:12] not in receiver.operator.text(), "the payload's commit id must never be used"
    pushes = [r for r in receiver.operator.actions("Webhook") if r.get("event") == "webhook push"]
    assert pushes and pushes[-1]["provider"] == route and pushes[-1]["triggered"] == 1


def test_unauthenticated_oversized_and_unrelated_pushes_change_nothing(cluster: Cluster, repo: GitRepo,
                                                                       receiver: Receiver) -> None:
    v1 = hourly_release(cluster, repo)
    v2 = repo.release("registry.local/shop:v2", replicas=1, delay=0)

    route, body, headers = push("github", repo.url)
    attempts: dict[str, tuple[int, dict[str, Any]]] = {}
    attempts["bad signature"] = receiver.post(route, body, {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64})
    attempts["wrong secret"] = receiver.post(*push("gitea", repo.url, secret="not-the-secret"))
    attempts["wrong token"] = receiver.post(*push("gitlab", repo.url, secret="not-the-secret"))
    attempts["no signature"] = receiver.post(route, body, {"X-GitHub-Event": "push"})
    tampered = body.replace(b"refs/heads/main", b"refs/heads/mainx")
    attempts["tampered body"] = receiver.post(route, tampered, headers)
    big = json.dumps({"repository": repo.url, "ref": "refs/heads/main", "pad": "x" * (2 * 1024 * 1024)}).encode()
    attempts["oversized"] = receiver.post("generic", big, {"X-Signature-256": "sha256=" + sign(SECRET, big)})
    attempts["not json"] = receiver.post(route, body, headers, content_type="application/x-www-form-urlencoded")
    attempts["other repository"] = receiver.post(*push("generic", str(Path(repo.url).parent / "elsewhere")))
    attempts["other branch"] = receiver.post(*push("github", repo.url, ref="refs/heads/feature"))
    attempts["a tag"] = receiver.post(*push("gitlab", repo.url, ref="refs/tags/v2.0.0"))
    pull = json.dumps({"action": "opened", "repository": {"clone_url": repo.url}}).encode()
    attempts["pull request"] = receiver.post(route, pull, {"X-GitHub-Event": "pull_request",
                                                           "X-Hub-Signature-256": "sha256=" + sign(SECRET, pull)})
    attempts["unknown provider"] = receiver.post("bitbucket", body, headers)

    codes = {name: status for name, (status, _) in attempts.items()}
    assert codes == {
        "bad signature": 401, "wrong secret": 401, "wrong token": 401, "no signature": 401, "tampered body": 401,
        "oversized": 413, "not json": 415, "other repository": 202, "other branch": 202, "a tag": 202,
        "pull request": 200, "unknown provider": 404,
    }
    triggered = {name: reply.get("triggered") for name, (status, reply) in attempts.items() if status < 300}
    assert triggered == {"other repository": 0, "other branch": 0, "a tag": 0, "pull request": 0}
    stays(unchanged(cluster, v1), seconds=4, what="the release untouched by rejected or unrelated pushes")

    rejected = [r for r in receiver.operator.actions("Webhook") if r.get("event") == "webhook rejected"]
    assert {r["status"] for r in rejected} == {401, 413, 415, 404}
    assert all("body" not in r for r in rejected)

    # The same operator does release on a genuine push: the rejections were not for lack of a path to git.
    assert receiver.post(*push("github", repo.url)) == (202, {"triggered": 1})
    cluster.wait_serving(v2, "green", timeout=LATENCY_LIMIT_SECONDS)


def test_a_burst_of_pushes_releases_the_commit_once(cluster: Cluster, repo: GitRepo, receiver: Receiver) -> None:
    hourly_release(cluster, repo)
    v2 = repo.release("registry.local/shop:v2", replicas=1, delay=0)
    calls = [push(provider, repo.url) for provider in PROVIDERS] * 2

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        replies = list(pool.map(lambda call: receiver.post(*call), calls))
    answered = time.monotonic() - started
    assert replies == [(202, {"triggered": 1})] * len(calls)
    cluster.wait_serving(v2, "green", timeout=LATENCY_LIMIT_SECONDS)
    serving = time.monotonic() - started
    print(f"\n[burst of {len(calls)}] all answered in {answered:.2f}s, new commit serving {serving:.2f}s")
    time.sleep(2)  # any extra pass the burst queued has run by now

    switches = [r for r in receiver.operator.actions("Switch") if r.get("commit") == v2[:12]]
    assert len(switches) == 1, f"one cut-over for {v2[:12]}, got {switches}"
    applies = [r for r in receiver.operator.lines() if r.get("commit") == v2[:12] and r.get("action") == "Apply"]
    assert len(applies) <= 1, f"the idle colour was applied {len(applies)} times: {applies}"
    assert cluster.status()["history"][0]["revision"] == v2
    assert [h["revision"] for h in cluster.status()["history"]].count(v2) == 1


def test_a_rotated_secret_is_used_without_a_restart(cluster: Cluster, repo: GitRepo, receiver: Receiver) -> None:
    hourly_release(cluster, repo)
    v2 = repo.release("registry.local/shop:v2", replicas=1, delay=0)
    pid = receiver.operator.process.pid if receiver.operator.process else None
    replacement = receiver.secret_file.with_name("new-secret")
    replacement.write_text("rotated-secret-value")
    replacement.replace(receiver.secret_file)  # an atomic swap, as kubelet does for a mounted Secret

    assert receiver.post(*push("generic", repo.url))[0] == 401, "the old secret is no longer accepted"
    assert receiver.post(*push("generic", repo.url, secret="rotated-secret-value")) == (202, {"triggered": 1})
    cluster.wait_serving(v2, "green", timeout=LATENCY_LIMIT_SECONDS)
    assert receiver.operator.process is not None and receiver.operator.process.pid == pid
    assert "rotated-secret-value" not in receiver.operator.text()
