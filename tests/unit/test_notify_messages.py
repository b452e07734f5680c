"""Notification messages: the signed webhook JSON (body, headers, HMAC-SHA256 as a receiver checks it) and the
Slack-compatible incoming-webhook payload."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bluegreen.core.notifications import Notification
from bluegreen.core.notify_messages import (
    escape,
    signature,
    slack_body,
    slack_payload,
    summary,
    verify_signature,
    webhook_body,
    webhook_headers,
    webhook_payload,
)
from bluegreen.core.notify_spec import NotifyEvent
from bluegreen.core.spec import ReleaseRef

SHA = "0123456789abcdef0123456789abcdef01234567"
SENT = datetime(2026, 1, 1, 10, 0, 9, tzinfo=UTC)


def note(event: NotifyEvent = NotifyEvent.PROMOTED, **changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "event": event, "release": ReleaseRef("shop", "web", "u-1"), "revision": SHA, "author": "Dev <dev@x.io>",
        "message": "v2: faster <checkout> & more", "color": "green", "active_color": "green",
        "outcome": "Succeeded", "reason": "Promote", "detail": "", "started_at": "2026-01-01T10:00:00Z",
        "finished_at": "2026-01-01T10:00:07Z"}
    fields.update(changes)
    return Notification(**fields)


def test_the_webhook_document() -> None:
    promoted = note()
    assert webhook_payload(promoted, SENT) == {
        "apiVersion": "bluegreen.dev/notification/v1",
        "id": promoted.id,
        "event": "Promoted",
        "timestamp": "2026-01-01T10:00:09Z",
        "release": {"namespace": "shop", "name": "web", "uid": "u-1"},
        "color": "green",
        "activeColor": "green",
        "commit": {"sha": SHA, "short": "0123456789ab", "author": "Dev <dev@x.io>",
                   "message": "v2: faster <checkout> & more"},
        "outcome": "Succeeded",
        "reason": "Promote",
        "detail": "",
        "startedAt": "2026-01-01T10:00:00Z",
        "finishedAt": "2026-01-01T10:00:07Z",
        "durationSeconds": 7,
        "summary": 'shop/web: green promoted, commit 0123456789ab "v2: faster <checkout> & more" by Dev <dev@x.io> '
                   "(7s)",
    }
    body = webhook_body(promoted, SENT)
    assert body == json.dumps(webhook_payload(promoted, SENT), separators=(",", ":"), ensure_ascii=False).encode()


def test_unicode_is_sent_as_utf8() -> None:
    body = webhook_body(note(message="déploiement ✓"), SENT)
    assert "déploiement ✓".encode() in body


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = webhook_body(note(), SENT)
    key = b"s3cret-key"
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert signature(key, body) == expected
    headers = webhook_headers(note(), key, body)
    assert headers == {"Content-Type": "application/json", "X-Bluegreen-Signature": expected,
                       "X-Bluegreen-Event": "Promoted", "X-Bluegreen-Delivery": note().id}
    assert verify_signature(key, body, expected)
    assert not verify_signature(b"other-key", body, expected)
    assert not verify_signature(key, body + b" ", expected), "a changed body does not verify"
    assert not verify_signature(key, body, None)
    assert not verify_signature(key, body, expected.removeprefix("sha256="))


def test_every_attempt_has_its_own_timestamp_and_the_same_id() -> None:
    later = datetime(2026, 1, 1, 10, 5, 0, tzinfo=UTC)
    first, second = json.loads(webhook_body(note(), SENT)), json.loads(webhook_body(note(), later))
    assert (first["id"], first["timestamp"]) == (second["id"], "2026-01-01T10:00:09Z")
    assert second["timestamp"] == "2026-01-01T10:05:00Z"


@pytest.mark.parametrize(("event", "changes", "text"), [
    pytest.param(NotifyEvent.STARTED, {"outcome": "InProgress", "finished_at": None, "reason": "NewRelease"},
                 'shop/web: releasing to green, commit 0123456789ab "m" by A', id="started"),
    pytest.param(NotifyEvent.PROMOTED, {}, 'shop/web: green promoted, commit 0123456789ab "m" by A (7s)',
                 id="promoted"),
    pytest.param(NotifyEvent.ROLLED_BACK, {"active_color": "blue", "reason": "PostPromotionCheckFailed"},
                 'shop/web: rolled back to blue, commit 0123456789ab "m" by A (7s)', id="rolled-back"),
    pytest.param(NotifyEvent.FAILED, {"reason": "PrePromotionCheckFailed", "outcome": "Failed"},
                 'shop/web: release failed (PrePromotionCheckFailed), commit 0123456789ab "m" by A (7s)', id="failed"),
    pytest.param(NotifyEvent.FAILED, {"reason": "", "outcome": "Abandoned", "author": ""},
                 'shop/web: release failed (Abandoned), commit 0123456789ab "m" (7s)', id="failed-without-reason"),
])
def test_summaries(event: NotifyEvent, changes: dict[str, Any], text: str) -> None:
    assert summary(note(event, **{"message": "m", "author": "A", **changes})) == text


def test_the_slack_message() -> None:
    failed = note(NotifyEvent.FAILED, outcome="Failed", reason="PrePromotionCheckFailed", active_color="blue",
                  detail="check 'smoke' failed: GET http://x/: HTTP 500 <html>")
    payload = slack_payload(failed)
    assert payload["text"] == ('shop/web: release failed (PrePromotionCheckFailed), commit 0123456789ab '
                               '"v2: faster &lt;checkout&gt; &amp; more" by Dev &lt;dev@x.io&gt; (7s)')
    [attachment] = payload["attachments"]
    assert (attachment["fallback"], attachment["color"]) == (payload["text"], "#a30200")
    assert attachment["footer"] == f"bluegreen-operator · notification {failed.id}"
    assert {f["title"]: (f["value"], f["short"]) for f in attachment["fields"]} == {
        "Release": ("shop/web", True),
        "Event": ("Failed", True),
        "Colour": ("green", True),
        "Serving": ("blue", True),
        "Commit": ("`0123456789ab` v2: faster &lt;checkout&gt; &amp; more", False),
        "Full commit": (SHA, False),
        "Author": ("Dev &lt;dev@x.io&gt;", True),
        "Reason": ("PrePromotionCheckFailed", True),
        "Duration": ("7s", True),
        "Detail": ("check 'smoke' failed: GET http://x/: HTTP 500 &lt;html&gt;", False),
    }
    assert "blocks" not in payload, "Mattermost and Rocket.Chat render attachments, not Block Kit"
    assert json.loads(slack_body(failed)) == payload


def test_a_start_has_no_duration_field_and_a_long_detail_is_cut() -> None:
    started = slack_payload(note(NotifyEvent.STARTED, outcome="InProgress", finished_at=None))
    titles = [f["title"] for f in started["attachments"][0]["fields"]]
    assert "Duration" not in titles and "Detail" not in titles
    assert started["attachments"][0]["color"] == "#439fe0"
    long = slack_payload(note(NotifyEvent.FAILED, detail="x" * 5000))
    detail = next(f["value"] for f in long["attachments"][0]["fields"] if f["title"] == "Detail")
    assert detail == "x" * 1000 + "..."


def test_colours_per_event() -> None:
    colours = {event: slack_payload(note(event))["attachments"][0]["color"] for event in NotifyEvent}
    assert colours == {NotifyEvent.STARTED: "#439fe0", NotifyEvent.PROMOTED: "#2eb886",
                       NotifyEvent.ROLLED_BACK: "#daa038", NotifyEvent.FAILED: "#a30200"}


def test_escape_order_keeps_entities_single() -> None:
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"
    assert escape("&lt;") == "&amp;lt;"
