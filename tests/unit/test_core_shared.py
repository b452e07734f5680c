"""The shared pieces of the core: one error type, one outcome type, one timestamp format, ref and URL rules,
and the spec parsed once per change of a release (by the controller)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bluegreen.core.desired import ManifestError
from bluegreen.core.errors import ClusterError, Outcome, ReasonedError, SourceError, VerifyError
from bluegreen.core.gitref import is_commit_id, ref_name_problem, semver_problem
from bluegreen.core.repourl import is_scp_like, strip_userinfo
from bluegreen.core.spec import ReleaseSpec, SpecError, parse_spec
from bluegreen.core.timestamps import format_time, parse_time
from bluegreen.runtime.controller import Controller
from bluegreen.webhook.providers import PayloadError
from bluegreen.webhook.secret import WebhookSecretError


@pytest.mark.parametrize("error", [
    SourceError("PathNotFound", "d.yaml is missing"), ClusterError("DeploymentConflict", "d.yaml is missing"),
    VerifyError("VerifierUnavailable", "d.yaml is missing"), ManifestError("InvalidYAML", "d.yaml is missing"),
])
def test_every_reasoned_error_reads_as_its_message_and_becomes_an_outcome(error: ReasonedError) -> None:
    assert str(error) == error.message == "d.yaml is missing"
    assert error.outcome("abc1234") == Outcome(False, error.reason, "d.yaml is missing", "abc1234")
    assert error.outcome() == Outcome(False, error.reason, "d.yaml is missing", None)


def test_spec_payload_and_secret_errors_carry_a_reason_too() -> None:
    spec_error = SpecError("spec.service", "is required")
    assert (spec_error.reason, str(spec_error), spec_error.field) == ("InvalidSpec", "spec.service: is required",
                                                                      "spec.service")
    assert isinstance(spec_error, ValueError) and isinstance(PayloadError("bad"), ValueError)
    assert (PayloadError("bad").reason, str(PayloadError("bad"))) == ("InvalidPayload", "bad")
    assert WebhookSecretError("gone").reason == "WebhookSecretUnavailable"


def test_parse_spec_returns_the_error_instead_of_raising() -> None:
    assert isinstance(parse_spec({"service": "shop"}), SpecError)
    spec = parse_spec({"source": {"url": "/srv/git/deploy", "path": "d.yaml"}, "service": "shop"})
    assert isinstance(spec, ReleaseSpec) and spec.source.ref.name == "main"


@pytest.mark.parametrize(("moment", "text"), [
    (datetime(2024, 5, 1, 10, 0, 7, 999_000, tzinfo=UTC), "2024-05-01T10:00:07Z"),
    (datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T10:00:00Z"),
])
def test_format_time_is_utc_to_the_second(moment: datetime, text: str) -> None:
    assert format_time(moment) == text
    assert parse_time(text) == moment.replace(microsecond=0)


@pytest.mark.parametrize("text", [None, "", "yesterday", "2024-05-01 10:00:00", 17])
def test_parse_time_reads_nothing_else(text: object) -> None:
    assert parse_time(text) is None


def test_ref_rules() -> None:
    assert is_commit_id("abc1234") and not is_commit_id("abc123") and not is_commit_id("ABC1234")
    assert ref_name_problem("release/v1") is None
    assert ref_name_problem("a..b") and ref_name_problem("-x") and ref_name_problem("x.lock") and ref_name_problem("")
    assert semver_problem(">=1.0.0 <2.0.0") is None and semver_problem("banana")


@pytest.mark.parametrize(("text", "shown"), [
    ("https://alice:s3cret@git.example.com/x", "https://git.example.com/x"),
    ("fetching ssh://git@host/x failed", "fetching ssh://host/x failed"),
    ("https://git.example.com/x", "https://git.example.com/x"),
])
def test_strip_userinfo(text: str, shown: str) -> None:
    assert strip_userinfo(text) == shown


@pytest.mark.parametrize(("url", "expected"), [
    ("git@git.example.com:team/deploy.git", True), ("git.example.com:team/deploy", True),
    ("ssh://git@git.example.com:22/team/deploy", False), ("/srv/git/deploy", False),
])
def test_is_scp_like(url: str, expected: bool) -> None:
    assert is_scp_like(url) is expected


def release(generation: int, service: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "web", "uid": "u", "generation": generation},
            "spec": {"source": {"url": "/srv/git/deploy", "path": "d.yaml"}, "service": service},
            "status": status or {}}


def test_the_controller_parses_a_spec_once_per_generation_and_hands_it_to_the_pass() -> None:
    seen: list[tuple[int, ReleaseSpec | SpecError]] = []

    async def scenario() -> None:
        controller = Controller(lambda body, spec: seen.append((body["metadata"]["generation"], spec)), workers=1)
        controller.upsert(release(1, "shop"))
        first = controller._specs[("ns", "web")].spec
        controller.upsert(release(1, "shop", {"phase": "Healthy"}))  # our own status write: same generation
        assert controller._specs[("ns", "web")].spec is first
        controller.upsert(release(2, "shop-v2"))
        controller.start()
        await asyncio.sleep(0.1)
        await controller.stop()

    asyncio.run(scenario())
    assert len(seen) == 1
    generation, spec = seen[0]
    assert generation == 2 and isinstance(spec, ReleaseSpec) and spec.service == "shop-v2"


def test_service_events_and_pushes_match_the_parsed_spec() -> None:
    queued: list[tuple[str, str]] = []

    async def scenario() -> int:
        controller = Controller(lambda body, spec: None, request_check=lambda ns, name, at: queued.append((ns, name)))
        controller.upsert(release(1, "shop"))
        controller.upsert({"metadata": {"namespace": "ns", "name": "bad", "uid": "b", "generation": 1},
                           "spec": {"source": {"url": "/srv/git/deploy"}, "service": "shop"}})  # no path: invalid
        enqueued: list[tuple[str, str]] = []
        controller.enqueue = enqueued.append  # type: ignore[method-assign]  # what the events queue, from here on
        controller.service_changed("ns", "shop")
        assert enqueued == [("ns", "web")]
        return controller.trigger(["file:///srv/git/deploy.git"], "refs/heads/main")

    assert asyncio.run(scenario()) == 1
    assert queued == [("ns", "web")]
