"""The CLI's one error type: a message for the user and the exit code it ends the command with."""

from __future__ import annotations

FAILED = 1
"""A refused or failed command (for ``diff``: there are differences)."""
DIFF_ERROR = 2
"""``diff`` could not compare (exit 1 means differences there, like ``kubectl diff``); also usage errors."""


class CliError(Exception):
    """Ends the command: ``message`` goes to stderr, ``code`` is the exit status."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
