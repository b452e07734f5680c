"""The one timestamp format of status fields, annotations and Events: ``2024-05-01T10:00:00Z`` (UTC). Pure."""

from __future__ import annotations

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime) -> str:
    """``moment`` in UTC, to the second."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: object) -> datetime | None:
    """A timestamp written by ``format_time``; None for anything else (absent, empty, malformed)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
