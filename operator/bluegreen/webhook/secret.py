"""The webhooks' shared secret, from a file (a mounted Secret) re-read whenever it changes."""

from __future__ import annotations

import os
from pathlib import Path

from bluegreen.core.errors import ReasonedError
from bluegreen.logs import get_logger


class WebhookSecretError(ReasonedError):
    """The secret file is missing, unreadable or empty (reason ``WebhookSecretUnavailable``)."""

    def __init__(self, message: str) -> None:
        super().__init__("WebhookSecretUnavailable", message)


class SecretFile:
    """The shared secret, read from a file (a mounted Secret) and re-read whenever the file changes.

    Kubernetes updates a mounted Secret by swapping a symlink to a new directory: the file's inode and
    modification time change, which a ``stat`` per request notices, so rotating the Secret takes effect
    without a restart. Leading and trailing whitespace (a newline left by ``echo``) is ignored. When the
    file disappears or becomes empty, :meth:`__call__` returns None and every request is refused (fail closed).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int, int] | None = None
        self._secret: bytes | None = None
        self._problem: str | None = None
        self._loaded = False
        self.log = get_logger("bluegreen.webhook")

    def load(self) -> bytes:
        """Read the secret now; raise :class:`WebhookSecretError` saying what is wrong (used at start)."""
        secret = self()
        if secret is None:
            raise WebhookSecretError(f"webhook secret file {self.path}: {self._problem}")
        return secret

    def __call__(self) -> bytes | None:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_ino, info.st_dev, info.st_size)
            if stamp == self._stamp:
                return self._secret
            secret = self.path.read_bytes().strip()
        except OSError as exc:
            self._unavailable(f"cannot be read ({exc.strerror or type(exc).__name__})")
            return None
        if not secret:
            self._unavailable("is empty")
            return None
        if self._loaded and secret != self._secret:
            self.log.info("webhook secret reloaded", action="Webhook", path=str(self.path))
        self._stamp, self._secret, self._problem, self._loaded = stamp, secret, None, True
        return secret

    def _unavailable(self, problem: str) -> None:
        if self._problem != problem and self._loaded:
            self.log.error("webhook secret unavailable: refusing every webhook", action="Webhook",
                           path=str(self.path), problem=problem)
        self._stamp, self._secret, self._problem = None, None, problem
