"""When a notification delivery is tried again, and after how long. Pure.

A delivery is retried after a network error (refused, reset, timed out), an HTTP 5xx or a 429, at most
``attempts`` times in all, never after another answer (2xx is delivered; 3xx and other 4xx are final: the
receiver said no, asking again changes nothing). The wait before attempt n+1 is exponential with jitter:
``d = min(backoff_max, backoff_first * 2**(n-1))``, a random point of ``[d/2, d]``; a ``Retry-After`` (seconds
or an HTTP date) replaces it, up to ``retry_after_max``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retries, backoff and the timeout of one attempt, in seconds."""

    attempts: int = 4
    timeout_seconds: float = 5.0
    """Connecting, and each read of the answer."""
    backoff_first: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 60.0

    def backoff(self, attempt: int, rand: float) -> float:
        """The wait after failed attempt number ``attempt`` (1, 2, ...); ``rand`` in [0, 1)."""
        ceiling = min(self.backoff_max, self.backoff_first * 2.0 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * rand

    def next_delay(self, attempt: int, status: int | None, rand: float,
                   retry_after: float | None = None) -> float | None:
        """Seconds before the next attempt after attempt ``attempt`` got ``status`` (None: a network error), or
        None: do not try again."""
        if attempt >= self.attempts or not retryable(status):
            return None
        if retry_after is not None:
            return min(self.retry_after_max, max(0.0, retry_after))
        return self.backoff(attempt, rand)


def delivered(status: int) -> bool:
    return 200 <= status < 300


def retryable(status: int | None) -> bool:
    """A network error (None), 429 Too Many Requests or a 5xx."""
    return status is None or status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: ``120`` or ``Wed, 21 Oct 2015 07:28:00 GMT``; None when absent or
    malformed (then the backoff applies)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())
