"""What a notification looks like on the wire: the signed JSON of a webhook target and the message of a
Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat). Pure.

A webhook body carries the notification's ``id`` (the same on every attempt: receivers drop duplicates by it)
and the ``timestamp`` of the attempt (receivers refuse old ones: together they stop replays). Its signature is
HMAC-SHA256 of the exact body bytes keyed by the Secret's value, in ``X-Bluegreen-Signature: sha256=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from bluegreen.core.notifications import Notification
from bluegreen.core.notify_spec import NotifyEvent
from bluegreen.core.timestamps import format_time

SCHEMA_VERSION = "bluegreen.dev/notification/v1"
SIGNATURE_HEADER = "X-Bluegreen-Signature"
EVENT_HEADER = "X-Bluegreen-Event"
DELIVERY_HEADER = "X-Bluegreen-Delivery"
SIGNATURE_PREFIX = "sha256="
SLACK_COLORS = {NotifyEvent.STARTED: "#439fe0", NotifyEvent.PROMOTED: "#2eb886",
                NotifyEvent.ROLLED_BACK: "#daa038", NotifyEvent.FAILED: "#a30200"}
DETAIL_LIMIT = 1000
"""Characters of ``detail`` in a Slack message (a check's answer can be long)."""


def webhook_payload(note: Notification, sent_at: datetime) -> dict[str, Any]:
    """The JSON document a webhook target receives."""
    return {
        "apiVersion": SCHEMA_VERSION,
        "id": note.id,
        "event": str(note.event),
        "timestamp": format_time(sent_at),
        "release": {"namespace": note.release.namespace, "name": note.release.name, "uid": note.release.uid},
        "color": note.color,
        "activeColor": note.active_color,
        "commit": {"sha": note.revision, "short": note.short_revision, "author": note.author,
                   "message": note.message},
        "outcome": note.outcome,
        "reason": note.reason,
        "detail": note.detail,
        "startedAt": note.started_at,
        "finishedAt": note.finished_at,
        "durationSeconds": note.duration_seconds,
        "summary": summary(note),
    }


def webhook_body(note: Notification, sent_at: datetime) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON, UTF-8."""
    return json.dumps(webhook_payload(note, sent_at), separators=(",", ":"), ensure_ascii=False).encode()


def signature(key: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``."""
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(key: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does: compare in constant time."""
    return header is not None and hmac.compare_digest(signature(key, body), header)


def webhook_headers(note: Notification, key: bytes, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: signature(key, body),
            EVENT_HEADER: str(note.event), DELIVERY_HEADER: note.id}


def summary(note: Notification) -> str:
    """One line for humans, e.g. ``shop/shop: green promoted, commit 0123456789ab "v2" by Dev (14s)``."""
    what = {
        NotifyEvent.STARTED: f"releasing to {note.color or 'the idle colour'}",
        NotifyEvent.PROMOTED: f"{note.color or '?'} promoted",
        NotifyEvent.ROLLED_BACK: f"rolled back to {note.active_color or '?'}",
        NotifyEvent.FAILED: f"release failed ({note.reason or note.outcome})",
    }[note.event]
    took = f" ({note.duration_seconds}s)" if note.duration_seconds is not None else ""
    by = f" by {note.author}" if note.author else ""
    return f"{note.release}: {what}, commit {note.short_revision} \"{note.message}\"{by}{took}"


def slack_payload(note: Notification) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` plus one attachment with fields. Slack, Mattermost and Rocket.Chat
    all render this shape (Block Kit ``blocks`` are Slack-only, so none are sent)."""
    fields = [
        _field("Release", str(note.release)),
        _field("Event", str(note.event)),
        _field("Colour", note.color or "-"),
        _field("Serving", note.active_color or "-"),
        _field("Commit", f"`{note.short_revision}` {note.message}".strip(), short=False),
        _field("Full commit", note.revision, short=False),
        _field("Author", note.author or "-"),
        _field("Reason", note.reason or "-"),
    ]
    if note.duration_seconds is not None:
        fields.append(_field("Duration", f"{note.duration_seconds}s"))
    if note.detail:
        detail = note.detail[:DETAIL_LIMIT] + ("..." if len(note.detail) > DETAIL_LIMIT else "")
        fields.append(_field("Detail", detail, short=False))
    text = escape(summary(note))
    return {"text": text, "attachments": [{"fallback": text, "color": SLACK_COLORS[note.event], "fields": fields,
                                           "footer": f"bluegreen-operator · notification {note.id}"}]}


def slack_body(note: Notification) -> bytes:
    return json.dumps(slack_payload(note), separators=(",", ":"), ensure_ascii=False).encode()


def escape(text: str) -> str:
    """Slack's mrkdwn control characters (``&``, ``<``, ``>``) as entities: an author's ``<email>`` or a commit
    message cannot become a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _field(title: str, value: str, short: bool = True) -> dict[str, Any]:
    return {"title": title, "value": escape(value), "short": short}
