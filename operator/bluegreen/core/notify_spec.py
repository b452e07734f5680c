"""``spec.notify`` of a BlueGreenRelease: where release notifications go. Parsed and validated as the CRD
schema does, plus what a schema cannot say (unique target names). Pure.

Each target has a ``name`` and exactly one of

- ``webhook: {url, secretRef: {name, key: secret}}``: a JSON POST to ``url``, signed with HMAC-SHA256 of the
  body keyed by the Secret's value;
- ``slack: {secretRef: {name, key: url}}``: a Slack-compatible incoming-webhook message; the webhook URL is a
  credential, so it is read from the Secret;

and ``events``, the events it receives (default all). Called by ``ReleaseSpec.from_dict``; raises
``SpecError`` naming the first offending field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from bluegreen.core.spec_fields import SpecError, known_mapping

MAX_TARGETS = 10
WEBHOOK_SECRET_KEY = "secret"
SLACK_SECRET_KEY = "url"
URL_RE = re.compile(r"^https?://[^/?#\s]+")
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")

TargetKind = Literal["webhook", "slack"]


class NotifyEvent(StrEnum):
    """What a notification announces (see ``bluegreen.core.notifications``)."""

    STARTED = "Started"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


ALL_EVENTS: tuple[NotifyEvent, ...] = tuple(NotifyEvent)


@dataclass(frozen=True)
class NotifyTarget:
    """One entry of ``spec.notify``."""

    name: str
    kind: TargetKind
    secret_name: str
    secret_key: str
    """webhook: the HMAC key's entry in the Secret; slack: the entry holding the incoming-webhook URL."""
    url: str | None = None
    """webhook only (a Slack URL comes from the Secret)."""
    events: tuple[NotifyEvent, ...] = ALL_EVENTS
    """In the order of ``NotifyEvent``, each once."""

    def wants(self, event: NotifyEvent) -> bool:
        return event in self.events


def parse_notify(value: object) -> tuple[NotifyTarget, ...]:
    """``spec.notify``: the targets in spec order (absent: none)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError("spec.notify", "must be a list")
    if len(value) > MAX_TARGETS:
        raise SpecError("spec.notify", f"has {len(value)} targets; at most {MAX_TARGETS} are allowed")
    targets: list[NotifyTarget] = []
    for index, item in enumerate(value):
        target = _parse_target(item, f"spec.notify[{index}]")
        if any(other.name == target.name for other in targets):
            raise SpecError(f"spec.notify[{index}].name", f"{target.name!r} is used by another target")
        targets.append(target)
    return tuple(targets)


def _parse_target(value: object, field: str) -> NotifyTarget:
    item = known_mapping(value, field, {"name", "webhook", "slack", "events"})
    name = item.get("name")
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL_RE.fullmatch(name):
        raise SpecError(f"{field}.name", f"{name!r} must be a DNS-1123 label: at most 63 lowercase letters, digits "
                                         "or '-', starting and ending with a letter or digit")
    kinds = [kind for kind in ("webhook", "slack") if kind in item]
    if len(kinds) != 1:
        raise SpecError(field, f"set exactly one of webhook or slack (got: {', '.join(kinds) or 'none'})")
    events = _parse_events(item.get("events"), f"{field}.events")
    if "webhook" in item:
        webhook = known_mapping(item["webhook"], f"{field}.webhook", {"url", "secretRef"})
        url = webhook.get("url")
        if not isinstance(url, str) or not URL_RE.match(url):
            raise SpecError(f"{field}.webhook.url", f"{url!r} must be an http:// or https:// URL with a host")
        secret, key = _secret_ref(webhook.get("secretRef"), f"{field}.webhook.secretRef", WEBHOOK_SECRET_KEY,
                                  "the Secret holding the HMAC key that signs each message")
        return NotifyTarget(name, "webhook", secret, key, url=url, events=events)
    slack = known_mapping(item["slack"], f"{field}.slack", {"secretRef"})
    secret, key = _secret_ref(slack.get("secretRef"), f"{field}.slack.secretRef", SLACK_SECRET_KEY,
                              "the Secret holding the incoming-webhook URL")
    return NotifyTarget(name, "slack", secret, key, events=events)


def _secret_ref(value: object, field: str, default_key: str, what: str) -> tuple[str, str]:
    if value is None:
        raise SpecError(field, f"is required: {what}")
    ref = known_mapping(value, field, {"name", "key"})
    name = ref.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN_RE.fullmatch(name):
        raise SpecError(f"{field}.name", f"{name!r} must be the name of a Secret (DNS-1123 subdomain)")
    key = ref.get("key", default_key)
    if not isinstance(key, str) or len(key) > 253 or not SECRET_KEY_RE.fullmatch(key):
        raise SpecError(f"{field}.key", f"{key!r} must be a key of a Secret (letters, digits, '-', '_' or '.')")
    return name, key


def _parse_events(value: object, field: str) -> tuple[NotifyEvent, ...]:
    if value is None:
        return ALL_EVENTS
    if not isinstance(value, list) or not value:
        raise SpecError(field, "must be a non-empty list of events (omit it for all)")
    for index, event in enumerate(value):
        if event not in ALL_EVENTS:
            raise SpecError(f"{field}[{index}]", f"{event!r} is not one of {', '.join(ALL_EVENTS)}")
    return tuple(event for event in ALL_EVENTS if event in value)
