"""The CLI's argument handling (bluegreen.cli.main, access, steer, inspect, output): program name, kubectl-style
flags, --wait, exit codes, and what is printed; no cluster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen.cli import build_parser, main
from bluegreen.cli.access import Access
from bluegreen.cli.errors import CliError
from bluegreen.cli.inspect import awaiting_line, history_rows, migration_rows, release_rows
from bluegreen.cli.main import DEFAULT_WAIT_SECONDS, bind_bare_wait, program_name, wait_seconds
from bluegreen.cli.output import dump
from bluegreen.cli.steer import outcome_line, wait_for


@pytest.mark.parametrize(("argv0", "name"), [
    ("/venv/bin/kubectl-bluegreen", "kubectl bluegreen"), ("kubectl-blue_green", "kubectl blue-green"),
    ("/usr/local/bin/bluegreen", "bluegreen"), (".../bluegreen/cli/__main__.py", "bluegreen"), ("", "bluegreen"),
    ("kubectl-", "kubectl-"), ("python3", "bluegreen"),
])
def test_the_program_name_follows_the_invocation(argv0: str, name: str) -> None:
    assert program_name(argv0) == name


def test_usage_names_the_plugin() -> None:
    assert build_parser("kubectl bluegreen").format_usage().startswith("usage: kubectl bluegreen ")


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("1.5", 1.5), ("2m", 120), ("1m30s", 90), ("500ms", 0.5)])
def test_wait_takes_seconds_or_a_duration(text: str, seconds: float) -> None:
    assert wait_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "shop", "-1", "5x"])
def test_wait_refuses_what_is_no_timeout(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        wait_seconds(text)


@pytest.mark.parametrize(("argv", "expected"), [
    (["promote", "--wait", "shop"], ["promote", "--wait=300", "shop"]),
    (["promote", "shop", "--wait"], ["promote", "shop", "--wait=300"]),
    (["promote", "--wait", "30s", "shop"], ["promote", "--wait", "30s", "shop"]),
    (["promote", "--wait=5", "shop"], ["promote", "--wait=5", "shop"]),
    (["promote", "--", "--wait", "x"], ["promote", "--", "--wait", "x"]),
])
def test_a_bare_wait_takes_the_default(argv: list[str], expected: list[str]) -> None:
    assert bind_bare_wait(argv) == expected


def parse(*argv: str) -> argparse.Namespace:
    return build_parser("bluegreen").parse_args(bind_bare_wait(argv))


def test_wait_values() -> None:
    assert parse("promote", "shop").wait is None
    assert parse("promote", "--wait", "shop").wait == DEFAULT_WAIT_SECONDS
    assert parse("retry", "shop", "--wait=10s").wait == 10
    assert parse("reconcile", "shop", "--wait", "1m").wait == 60
    assert parse("abort", "shop", "--commit", "abcd").commit == "abcd"


def test_kubectl_flags_before_or_after_the_verb() -> None:
    before = parse("--kubeconfig", "/k", "--context", "c", "status", "-n", "ns")
    after = parse("status", "--kubeconfig", "/k", "--context", "c", "--namespace", "ns")
    for args in (before, after):
        assert (args.kubeconfig, args.context, args.namespace) == ("/k", "c", "ns")
    assert parse("--context", "a", "history", "x", "--context", "b").context == "b", "the verb's own flag wins"
    plain = parse("status")
    assert not hasattr(plain, "kubeconfig") and not hasattr(plain, "namespace")
    assert Access(plain).kubeconfig is None and Access(plain).explicit_namespace is None


@pytest.mark.parametrize("argv", [["status", "-A", "-n", "x"], ["--kubeconfig", "/k", "run"],
                                  ["status", "-o", "wide"], ["diff"], ["run", "--webhook-listen", "127.0.0.1:1"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(("verb", "code"), [("status", 1), ("promote", 1), ("diff", 2)])
def test_an_unreachable_cluster_fails_with_a_message(verb: str, code: int, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "no-kubeconfig")
    assert main([verb, "shop", "--kubeconfig", missing]) == code
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot connect to a cluster ({missing}):"), err


def write_kubeconfig(path: Path) -> Path:
    cluster = {"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "one", "clusters": [cluster],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u", "namespace": "first"}},
                     {"name": "two", "context": {"cluster": "c", "user": "u", "namespace": "second"}},
                     {"name": "bare", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def test_the_namespace_comes_from_the_flag_or_the_kubeconfig_context(tmp_path: Path) -> None:
    kubeconfig = str(write_kubeconfig(tmp_path / "config"))
    assert Access(parse("status", "--kubeconfig", kubeconfig)).namespace == "first"
    assert Access(parse("status", "--kubeconfig", kubeconfig, "--context", "two")).namespace == "second"
    assert Access(parse("status", "--kubeconfig", kubeconfig, "--context", "bare")).namespace == "default"
    assert Access(parse("status", "--kubeconfig", kubeconfig, "-n", "given")).namespace == "given"


# ---- --wait's loop ------------------------------------------------------------------------------------------
class FakeAccess:
    namespace = "shop"

    def __init__(self, releases: list[dict[str, Any]]) -> None:
        self.releases = releases
        self.reads = 0

    def release(self, name: str) -> dict[str, Any]:
        self.reads += 1
        return self.releases[min(self.reads, len(self.releases)) - 1]


def test_wait_for_reads_until_done() -> None:
    access = FakeAccess([{"n": 1}, {"n": 2}, {"n": 3}])
    naps: list[float] = []
    got = wait_for(access, "web", lambda r: r["n"] == 3, 10, "x", clock=lambda: 0.0,  # type: ignore[arg-type]
                   sleep=naps.append)
    assert got == {"n": 3} and access.reads == 3 and len(naps) == 2


def test_wait_for_gives_up_at_its_deadline() -> None:
    times = iter([0.0, 4.0, 9.9, 10.0, 11.0])
    access = FakeAccess([{"n": 1}])
    with pytest.raises(CliError, match="timed out after 10s waiting for the operator to handle promote=abc"):
        wait_for(access, "web", lambda r: False, 10, "promote=abc",  # type: ignore[arg-type]
                 clock=lambda: next(times), sleep=lambda s: None)
    assert access.reads == 3


# ---- printing -------------------------------------------------------------------------------------------------
RELEASE = {"metadata": {"namespace": "shop", "name": "web"},
           "status": {"activeColor": "green", "activeRevision": "a" * 40, "phase": "Healthy", "message": "ok",
                      "conditions": [{"type": "Ready", "status": "True"}],
                      "awaitingPromotion": {"revision": "b" * 40, "color": "blue", "since": "2026-12-01T10:00:00Z"},
                      "history": [{"revision": "a" * 40, "color": "green", "outcome": "Succeeded",
                                   "startedAt": "s", "author": "Dev", "message": "v2"}]}}


def test_rows_and_lines() -> None:
    assert release_rows([RELEASE])[1] == ("shop", "web", "green", "a" * 12, "Healthy", "True", "ok")
    assert release_rows([{"metadata": {"namespace": "n", "name": "x"}}])[1] == ("n", "x", "-", "-", "-", "Unknown",
                                                                                 "")
    assert history_rows(RELEASE)[1] == ("a" * 12, "green", "Succeeded", "s", "-", "Dev", "v2")
    assert awaiting_line(RELEASE) == f"awaiting promotion: commit {'b' * 12} on blue since 2026-12-01T10:00:00Z"
    assert awaiting_line({"status": {}}) is None
    assert migration_rows(RELEASE) is None
    migrating = {"status": {"migrations": [{"phase": "expand", "commit": "c" * 40, "color": "blue", "job": "j",
                                            "verdict": "Failed", "reason": "JobFailed", "message": "boom\nlog",
                                            "startedAt": "s", "finishedAt": None}]}}
    assert migration_rows(migrating) == [
        ("MIGRATION", "COMMIT", "COLOR", "JOB", "VERDICT", "REASON", "STARTED", "FINISHED"),
        ("expand", "c" * 12, "blue", "j", "Failed", "JobFailed", "s", "-")]
    assert outcome_line(RELEASE) == f"web: Healthy (green serves commit {'a' * 12}): ok"
    assert outcome_line({"metadata": {"name": "x"}, "status": {"phase": "Pending"}}) == "x: Pending"


def test_dump_prints_json_and_yaml() -> None:
    assert json.loads(dump(RELEASE, "json")) == RELEASE
    assert yaml.safe_load(dump(RELEASE, "yaml")) == RELEASE
    assert dump({"b": 1, "a": 2}, "yaml") == "b: 1\na: 2\n", "keys stay in the order the API server sent"
    with pytest.raises(ValueError):
        dump({}, "wide")


def test_api_errors_become_plain_data() -> None:
    from kubernetes.client.exceptions import ApiException

    from bluegreen.kube.console import ApiFailure, api_failure

    refused = ApiException(status=403, reason="Forbidden")
    refused.body = json.dumps({"kind": "Status", "reason": "Forbidden", "message": 'secrets "creds" is forbidden'})
    assert api_failure(refused) == ApiFailure(403, "Forbidden", 'secrets "creds" is forbidden')
    plain = ApiException(status=502, reason="Bad Gateway")
    plain.body = "<html>"
    assert api_failure(plain) == ApiFailure(502, "Bad Gateway", "Bad Gateway")
    assert api_failure(ValueError("x")) is None


def test_a_reconcile_is_handled_once_its_stamp_or_a_newer_request_was() -> None:
    from bluegreen.cli.steer import reconcile_handled

    def release(annotation: str | None, handled: str | None) -> dict[str, Any]:
        return {"metadata": {"annotations": {"bluegreen.dev/reconcile-at": annotation}},
                "status": {"lastHandledReconcileAt": handled} if handled else {}}

    assert reconcile_handled(release("s1", "s1"), "s1")
    assert not reconcile_handled(release("s1", None), "s1")
    assert not reconcile_handled(release("s1", "s0"), "s1")
    assert reconcile_handled(release("s2", "s2"), "s1"), "a newer request replaced ours and was handled"
    assert not reconcile_handled(release("s2", "s1-old"), "s1")
    assert not reconcile_handled(release("s2", "s0"), "s1")


def test_run_hands_check_deny_networks_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    import bluegreen.runtime.handlers as handlers

    seen: dict[str, Any] = {}
    monkeypatch.setattr("bluegreen.logs.configure", lambda **_: None)  # leave the test process's logging alone
    monkeypatch.setattr(handlers.kopf, "run", lambda **kwargs: seen.update(kwargs))
    assert main(["run", "-n", "shop", "--log-format", "json", "--check-deny-networks", "10.0.0.0/8, fd00::/8"]) == 0
    assert seen["memo"].deny_networks == "10.0.0.0/8, fd00::/8"
    assert seen["namespaces"] == ["shop"]


def test_run_refuses_a_deny_network_that_does_not_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    import bluegreen.runtime.handlers as handlers

    monkeypatch.setattr("bluegreen.logs.configure", lambda **_: None)
    monkeypatch.setattr(handlers.kopf, "run", lambda **kwargs: pytest.fail("the operator must not start"))
    assert main(["run", "--log-format", "json", "--check-deny-networks", "10.0.0.0/8,not-a-network"]) == 2
