"""``spec.notify``: defaults, refusals naming the field, and agreement with the CRD schema (through the admission
model of test_crd.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_crd import MINIMAL, Refused, admit

from bluegreen.core.notify_spec import ALL_EVENTS, NotifyEvent, NotifyTarget
from bluegreen.core.spec import ReleaseSpec, SpecError, parse_spec

WEBHOOK = {"name": "team-webhook", "webhook": {"url": "https://hooks.example.com/bluegreen",
                                               "secretRef": {"name": "notify-hmac"}}}
SLACK = {"name": "team-slack", "slack": {"secretRef": {"name": "slack-webhook"}}}


def notify(*targets: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    spec["notify"] = list(copy.deepcopy(targets))
    return spec


def test_no_notify_means_no_targets() -> None:
    assert ReleaseSpec.from_dict(MINIMAL).notify == ()


def test_both_kinds_with_their_defaults() -> None:
    spec = ReleaseSpec.from_dict(notify(WEBHOOK, {**SLACK, "events": ["Failed", "RolledBack", "Failed"]}))
    assert spec.notify == (
        NotifyTarget("team-webhook", "webhook", "notify-hmac", "secret", url="https://hooks.example.com/bluegreen",
                     events=ALL_EVENTS),
        NotifyTarget("team-slack", "slack", "slack-webhook", "url",
                     events=(NotifyEvent.ROLLED_BACK, NotifyEvent.FAILED)),
    )
    assert ALL_EVENTS == ("Started", "Promoted", "RolledBack", "Failed")
    webhook, slack = spec.notify
    assert webhook.wants(NotifyEvent.STARTED) and not slack.wants(NotifyEvent.STARTED)
    assert slack.wants(NotifyEvent.FAILED)


def test_the_schema_defaults_equal_the_parser_s() -> None:
    spec = notify(WEBHOOK, SLACK)
    stored = admit(spec)
    assert stored["notify"][0]["webhook"]["secretRef"] == {"name": "notify-hmac", "key": "secret"}
    assert stored["notify"][1]["slack"]["secretRef"] == {"name": "slack-webhook", "key": "url"}
    assert "events" not in stored["notify"][0], "no schema default: absent means all, in the parser"
    assert ReleaseSpec.from_dict(stored) == ReleaseSpec.from_dict(spec)


def test_keys_and_limits_accepted() -> None:
    targets = [{"name": f"t{i}", "slack": {"secretRef": {"name": "s", "key": "hook.url_2-x"}}} for i in range(10)]
    targets[0] = {"name": "a" * 63, "webhook": {"url": "http://10.0.0.1:8080/x?y=1",
                                               "secretRef": {"name": "a.b-c", "key": "K"}}, "events": ["Started"]}
    spec = ReleaseSpec.from_dict(admit(notify(*targets)))
    assert len(spec.notify) == 10
    assert (spec.notify[0].secret_key, spec.notify[0].events) == ("K", (NotifyEvent.STARTED,))
    assert spec.notify[1].secret_key == "hook.url_2-x"


def target(**changes: Any) -> dict[str, Any]:
    found = copy.deepcopy(WEBHOOK)
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


REFUSED = [
    pytest.param({**copy.deepcopy(MINIMAL), "notify": {"name": "x"}}, "spec.notify", "must be a list", True,
                 id="not-a-list"),
    pytest.param(notify(*[{**SLACK, "name": f"t{i}"} for i in range(11)]), "spec.notify",
                 "has 11 targets; at most 10 are allowed", True, id="eleven-targets"),
    pytest.param(notify("webhook"), "spec.notify[0]", "must be an object", True, id="target-not-an-object"),
    pytest.param(notify(target(name=None)), "spec.notify[0].name",
                 "None must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending "
                 "with a letter or digit", True, id="no-name"),
    pytest.param(notify(target(name="Team")), "spec.notify[0].name",
                 "'Team' must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending "
                 "with a letter or digit", True, id="name-upper"),
    pytest.param(notify(WEBHOOK, {**SLACK, "name": "team-webhook"}), "spec.notify[1].name",
                 "'team-webhook' is used by another target", False, id="duplicate-name"),
    pytest.param(notify({"name": "x"}), "spec.notify[0]", "set exactly one of webhook or slack (got: none)", True,
                 id="no-kind"),
    pytest.param(notify({**WEBHOOK, **SLACK, "name": "x"}), "spec.notify[0]",
                 "set exactly one of webhook or slack (got: webhook, slack)", True, id="both-kinds"),
    pytest.param(notify(target(email={"to": "x"})), "spec.notify[0].email",
                 "unknown field (known: events, name, slack, webhook)", None, id="unknown-kind"),
    pytest.param(notify(target(webhook={"secretRef": {"name": "s"}})), "spec.notify[0].webhook.url",
                 "None must be an http:// or https:// URL with a host", True, id="webhook-no-url"),
    pytest.param(notify(target(webhook={"url": "ftp://h/x", "secretRef": {"name": "s"}})),
                 "spec.notify[0].webhook.url", "'ftp://h/x' must be an http:// or https:// URL with a host", True,
                 id="webhook-ftp"),
    pytest.param(notify(target(webhook={"url": "https://", "secretRef": {"name": "s"}})),
                 "spec.notify[0].webhook.url", "'https://' must be an http:// or https:// URL with a host", True,
                 id="webhook-no-host"),
    pytest.param(notify(target(webhook={"url": "https://h/x"})), "spec.notify[0].webhook.secretRef",
                 "is required: the Secret holding the HMAC key that signs each message", True,
                 id="webhook-unsigned"),
    pytest.param(notify(target(webhook={"url": "https://h/x", "secretRef": {"name": "s"}, "headers": {}})),
                 "spec.notify[0].webhook.headers", "unknown field (known: secretRef, url)", None,
                 id="webhook-unknown-field"),
    pytest.param(notify({"name": "x", "slack": {}}), "spec.notify[0].slack.secretRef",
                 "is required: the Secret holding the incoming-webhook URL", True, id="slack-no-secret"),
    pytest.param(notify({"name": "x", "slack": {"url": "https://hooks.slack.com/x"}}), "spec.notify[0].slack.url",
                 "unknown field (known: secretRef)", True, id="slack-url-in-the-spec-is-refused"),
    pytest.param(notify({"name": "x", "slack": {"secretRef": {"name": "Bad_Name"}}}),
                 "spec.notify[0].slack.secretRef.name",
                 "'Bad_Name' must be the name of a Secret (DNS-1123 subdomain)", True, id="secret-name"),
    pytest.param(notify({"name": "x", "slack": {"secretRef": {"name": "s", "key": "a/b"}}}),
                 "spec.notify[0].slack.secretRef.key",
                 "'a/b' must be a key of a Secret (letters, digits, '-', '_' or '.')", True, id="secret-key"),
    pytest.param(notify({"name": "x", "slack": {"secretRef": {"name": "s", "key": ""}}}),
                 "spec.notify[0].slack.secretRef.key",
                 "'' must be a key of a Secret (letters, digits, '-', '_' or '.')", True, id="secret-key-empty"),
    pytest.param(notify({**SLACK, "events": []}), "spec.notify[0].events",
                 "must be a non-empty list of events (omit it for all)", True, id="no-events"),
    pytest.param(notify({**SLACK, "events": "Failed"}), "spec.notify[0].events",
                 "must be a non-empty list of events (omit it for all)", True, id="events-not-a-list"),
    pytest.param(notify({**SLACK, "events": ["Promoted", "Deployed"]}), "spec.notify[0].events[1]",
                 "'Deployed' is not one of Started, Promoted, RolledBack, Failed", True, id="unknown-event"),
]


@pytest.mark.parametrize(("spec", "field", "problem", "schema_refuses"), REFUSED)
def test_each_refusal_names_the_field_and_the_schema_agrees(spec: dict[str, Any], field: str, problem: str,
                                                           schema_refuses: bool | None) -> None:
    """``schema_refuses``: True, the API server refuses it too; False, it stores it and the operator reports
    InvalidSpec; None, it drops the unknown field (the stored spec is valid)."""
    error = parse_spec(spec)
    assert isinstance(error, SpecError)
    assert (error.reason, error.field, error.problem) == ("InvalidSpec", field, problem)
    if schema_refuses is None:
        assert isinstance(parse_spec(admit(spec)), ReleaseSpec)
    elif schema_refuses:
        with pytest.raises(Refused):
            admit(spec)
    else:
        assert isinstance(parse_spec(admit(spec)), SpecError)
