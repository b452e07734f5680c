"""Prometheus metrics end to end: a real Prometheus server (Debian's package, on loopback) scrapes the
operator's ``--metrics-listen`` endpoint every second while the operator releases v1 and v2 (each after a
passing HTTP pre-promotion check), rolls back with ``git revert`` while blue is warm, and abandons a commit
whose pods never become ready. Every assertion reads Prometheus' HTTP API (``/api/v1/query``), polled until
the scrapes show it, as a dashboard or an alert would.

The releases poll git only every hour: each new commit is fetched because of a signed push webhook, which the
webhook series count along with one unauthenticated request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import Cluster, GitRepo, Operator, operator_kubeconfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from prometheus import PrometheusServer, free_port, value

from bluegreen.git.remote import parse_url

SECRET = "e2e-metrics-webhook-secret"


class CheckTarget:
    """A loopback HTTP server the releases' pre-promotion check calls: 200 ``ok`` to every GET."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/smoke"

    def __enter__(self) -> CheckTarget:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    """The operator (metrics, webhooks), Prometheus scraping it, the check target."""

    def __init__(self, operator: Operator, prometheus: PrometheusServer, metrics: str, webhook: str,
                 check: CheckTarget) -> None:
        self.operator = operator
        self.prometheus = prometheus
        self.metrics = metrics
        self.webhook = webhook
        self.check = check

    def push(self, repo: GitRepo, *, signed: bool = True) -> int:
        """A push webhook for ``repo`` (generic provider): the HTTP status the receiver answered."""
        body = json.dumps({"repository": repo.url, "ref": "refs/heads/main"}).encode()
        signature = hmac.new(SECRET.encode() if signed else b"wrong", body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"{self.webhook}/hooks/generic", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Signature-256": f"sha256={signature}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def scrape_text(self) -> str:
        with urllib.request.urlopen(f"{self.metrics}/metrics", timeout=10) as answer:
            return str(answer.read().decode())


@pytest.fixture
def stack(kube_client: client.ApiClient, crd: None, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET)
    metrics_port, webhook_port = free_port(), free_port()
    operator = Operator(namespace, operator_kubeconfig(kube_client, namespace, tmp_path), tmp_path, extra_args=[
        "--metrics-listen", f"127.0.0.1:{metrics_port}",
        "--webhook-listen", f"127.0.0.1:{webhook_port}", "--webhook-secret-file", str(secret_file)])
    operator.start()
    try:
        with PrometheusServer([f"127.0.0.1:{metrics_port}"], scrape_interval="1s") as prometheus, \
                CheckTarget() as check:
            yield Stack(operator, prometheus, f"http://127.0.0.1:{metrics_port}",
                        f"http://127.0.0.1:{webhook_port}", check)
    finally:
        operator.stop()


def _labels(samples: list[dict[str, Any]], *names: str) -> list[tuple[str, ...]]:
    return sorted(tuple(s["metric"].get(n, "") for n in names) for s in samples)


def test_a_release_a_rollback_and_an_abandoned_commit_as_prometheus_scrapes_them(
        stack: Stack, cluster: Cluster, repo: GitRepo) -> None:
    prom, ns = stack.prometheus, cluster.namespace
    of_release = f'namespace="{ns}",release="shop"'
    began = time.monotonic()
    prom.wait_for('up{job="bluegreen-operator"} == 1', lambda s: len(s) == 1, timeout=60,
                  what=f"the operator's endpoint scraped (log: {stack.operator.text()[-1500:]})")
    up_after = time.monotonic() - began
    assert "bluegreen_build_info" in stack.scrape_text()

    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1", replicas=2, delay=1)
    cluster.create_release(repo, progressDeadlineSeconds=15,
                           source={"url": repo.url, "path": repo.manifest_path, "interval": "1h"},
                           checks={"prePromotion": [{"name": "smoke", "http": {"url": stack.check.url}}]})
    cluster.wait_serving(v1, "blue", timeout=90)
    prom.wait_for(f'bluegreen_release_info{{{of_release},revision="{v1}"}}', lambda s: len(s) == 1)

    v2 = repo.release("registry.local/shop:v2", replicas=2, delay=1)
    assert stack.push(repo) == 202
    cluster.wait_serving(v2, "green", timeout=90)
    revert = repo.revert()
    assert stack.push(repo) == 202
    cluster.wait_serving(revert, "blue", timeout=60)
    assert stack.push(repo, signed=False) == 401

    # The info series names the revert and blue; the series of v1 and v2 are gone (not merely stale).
    info = prom.wait_for(f"bluegreen_release_info{{{of_release}}}",
                         lambda s: len(s) == 1 and s[0]["metric"]["revision"] == revert)
    assert (info[0]["metric"]["active_color"], info[0]["metric"]["phase"]) == ("blue", "Healthy")
    prom.wait_value(f'bluegreen_release_condition{{{of_release},condition="Ready",status="True"}}', 1)
    assert prom.query(f'bluegreen_release_condition{{{of_release},condition="Ready",status="False"}}') == []

    prom.wait_value(f'bluegreen_release_outcomes_total{{{of_release},outcome="Succeeded"}}', 2)
    prom.wait_value(f'bluegreen_release_outcomes_total{{{of_release},outcome="RolledBack"}}', 1)
    for outcome in ("Failed", "Aborted", "Abandoned", "Superseded"):
        assert prom.scalar(f'bluegreen_release_outcomes_total{{{of_release},outcome="{outcome}"}}') == 0, outcome
    for histogram in ("bluegreen_available_to_switch_seconds", "bluegreen_commit_to_switch_seconds"):
        counts = prom.wait_for(f'{histogram}_count{{namespace="{ns}"}}',
                               lambda s: _labels(s, "outcome") == [("RolledBack",), ("Succeeded",)]
                               and sorted(value(x) for x in s) == [1, 2])
        assert {x["metric"]["outcome"]: value(x) for x in counts} == {"Succeeded": 2, "RolledBack": 1}
    prom.wait_value(f'bluegreen_check_verdicts_total{{{of_release},hook="prePromotion",check="smoke",'
                    f'verdict="Passed"}}', 2)  # v1 and v2; a warm rollback passes no gate
    prom.wait_value(f'bluegreen_color_ready_replicas{{{of_release},color="green"}}', 2)  # still warm

    # The abandoned commit: green never becomes ready within the 15 s progress deadline.
    broken = repo.release("registry.local/shop:v3-never-ready", replicas=2, delay=1)
    assert stack.push(repo) == 202
    prom.wait_value(f'bluegreen_release_outcomes_total{{{of_release},outcome="Abandoned"}}', 1, timeout=90)
    prom.wait_value(f'bluegreen_color_spec_replicas{{{of_release},color="green"}}', 0)
    prom.wait_value(f'bluegreen_color_ready_replicas{{{of_release},color="blue"}}', 2)
    prom.wait_value(f'bluegreen_release_condition{{{of_release},condition="Stalled",status="True"}}', 1)
    assert cluster.status()["lastAttemptedRevision"] == broken
    assert prom.scalar(f'bluegreen_release_outcomes_total{{{of_release},outcome="Succeeded"}}') == 2
    prom.wait_value(f'bluegreen_commit_to_switch_seconds_count{{namespace="{ns}",outcome="Succeeded"}}', 2)

    # The operator's own work: passes without errors, the repository checked and fetched, the webhooks.
    assert (prom.scalar('bluegreen_reconcile_passes_total{result="success"}') or 0) > 0
    assert prom.scalar('bluegreen_reconcile_passes_total{result="error"}') == 0
    repository = parse_url(repo.url).key
    contacts = prom.query(f'bluegreen_git_remote_contacts_total{{repository="{repository}"}}')
    assert _labels(contacts, "result") == [("success",)] and value(contacts[0]) >= 4, contacts
    fetches = prom.query(f'bluegreen_git_fetches_total{{repository="{repository}"}}')
    assert _labels(fetches, "result") == [("success",)] and value(fetches[0]) >= 4, fetches  # 4 new commits
    assert prom.scalar(f'bluegreen_git_fetch_duration_seconds_count{{repository="{repository}",result="success"}}') \
        == value(fetches[0])
    assert prom.scalar('bluegreen_webhook_requests_total{provider="generic",code="202"}') == 3
    prom.wait_value('bluegreen_webhook_requests_total{provider="generic",code="401"}', 1)

    # Figures, as Prometheus measured them.
    quantile = prom.query(f'histogram_quantile(0.9, sum by (le) (bluegreen_available_to_switch_seconds_bucket'
                          f'{{namespace="{ns}"}}))')
    sums = {x["metric"]["outcome"]: value(x) for x in prom.query(
        f'bluegreen_commit_to_switch_seconds_sum{{namespace="{ns}"}}')}
    ready_sums = {x["metric"]["outcome"]: value(x) for x in prom.query(
        f'bluegreen_available_to_switch_seconds_sum{{namespace="{ns}"}}')}
    scrape = prom.scalar('scrape_duration_seconds{job="bluegreen-operator"}')
    samples = prom.scalar('scrape_samples_scraped{job="bluegreen-operator"}')
    print(f"\nmetrics: first scrape {up_after:.1f}s after start; scrape {1000 * (scrape or 0):.1f} ms, "
          f"{samples:.0f} samples, {len(stack.scrape_text())} bytes; available->switch sum "
          f"{ready_sums} s (p90 bucket bound {value(quantile[0]) if quantile else None}); "
          f"commit->switch sum {sums} s (2 releases after their check, 1 warm rollback)")

    # Deleting the release removes its series; the orphaned Deployments keep their colours' series.
    cluster.delete_release()
    prom.wait_for(f'{{__name__=~"bluegreen_release_.*",{of_release}}}', lambda s: s == [], what="release series gone")
    assert prom.query(f'bluegreen_color_spec_replicas{{{of_release}}}'), "the Deployments are still there"
    failures = [line for line in stack.operator.lines() if line.get("event") == "metrics: recording failed"]
    assert not failures and "Traceback" not in stack.operator.text(), failures
