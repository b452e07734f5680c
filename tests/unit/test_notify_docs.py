"""The receiver snippet of docs/notifications.md, run as written against messages the operator renders: it
accepts a signed message, rejects a wrong key, a changed body and an old timestamp, and drops a replay."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bluegreen.core.notifications import Notification, announce
from bluegreen.core.notify_messages import webhook_body, webhook_headers, webhook_payload
from bluegreen.core.spec import ReleaseRef

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
KEY = b"0123456789abcdef-key"


def snippet() -> dict[str, Any]:
    """The namespace of the doc's one ``python`` block, executed."""
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)
    return scope


def started() -> Notification:
    entry = {"revision": "4" * 40, "message": "v2", "author": "Dev <d@x>", "color": "green",
             "startedAt": "2026-01-01T10:00:00Z", "outcome": "InProgress", "reason": "NewRelease"}
    [note] = announce(ReleaseRef("shop", "shop", "u-1"), {}, {"history": [entry]})
    return note


def rendered(sent: datetime) -> tuple[bytes, dict[str, str]]:
    body = webhook_body(started(), sent)
    return body, webhook_headers(started(), KEY, body)


def test_the_documented_receiver_accepts_rejects_and_drops_replays() -> None:
    receive = snippet()["receive"]
    body, headers = rendered(datetime.now(UTC))
    note = receive(KEY, body, headers)
    assert note == json.loads(body) and note["event"] == "Started"
    assert receive(KEY, body, headers) is None, "the same id again: a replay, dropped"
    with pytest.raises(ValueError, match="bad signature"):
        receive(b"another key", body, headers)
    with pytest.raises(ValueError, match="bad signature"):
        receive(KEY, body.replace(b'"v2"', b'"v3"'), headers)
    with pytest.raises(ValueError, match="bad signature"):
        receive(KEY, body, {})
    old_body, old_headers = rendered(datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(ValueError, match="too old"):
        receive(KEY, old_body, old_headers)


def test_the_documented_example_matches_what_is_rendered() -> None:
    """Every field of the doc's JSON example is a field the operator sends, and the other way round."""
    found = re.search(r"```json\n(\{\n  \"apiVersion\".*?)```", DOC.read_text(), re.S)
    assert found is not None
    example = json.loads(found[1])
    sent = webhook_payload(started(), datetime.now(UTC))
    assert set(example) == set(sent)
    assert set(example["commit"]) == set(sent["commit"]) and set(example["release"]) == set(sent["release"])
