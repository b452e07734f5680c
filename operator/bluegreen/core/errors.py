"""The shared error and outcome types: a failure or a check result a status condition can report. Pure.

Every error a user must act on is a ``ReasonedError``: ``reason`` is a CamelCase word for a status condition
and an Event, ``message`` one sentence that says what to fix (``str(error)`` is the message). Every check
result is an ``Outcome`` (ok or not, reason, message, and the commit it is about).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Outcome:
    """Result of a check reported in a condition: the latest look at git, a signature verification."""

    ok: bool
    reason: str
    message: str
    commit: str | None = None
    """The commit the outcome is about, when there is one."""


class ReasonedError(Exception):
    """A failure with a CamelCase ``reason`` (for conditions and Events) and a ``message`` for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message

    def outcome(self, commit: str | None = None) -> Outcome:
        """This failure as a not-ok ``Outcome``."""
        return Outcome(False, self.reason, self.message, commit)


SourceReason = Literal[
    "RepositoryUnreachable",
    "RepositoryNotFound",
    "RefNotFound",
    "InvalidRef",
    "PathNotFound",
    "InvalidPath",
    "NotAFile",
    "ManifestTooLarge",
    "TooManyFiles",
    "InvalidURL",
    "FetchFailed",
    "InvalidSecret",
    "SecretNotFound",
    "AuthenticationFailed",
    "KnownHostsMissing",
    "HostKeyMismatch",
    "HostKeyUnknown",
    "CertificateInvalid",
]
"""Why reading from git failed. ``SecretNotFound`` is raised by callers that look the Secret up."""


class SourceError(ReasonedError):
    """Reading from git failed (see docs/git-auth.md for the reasons)."""

    def __init__(self, reason: SourceReason, message: str) -> None:
        super().__init__(reason, message)
        self.reason: SourceReason = reason


class ClusterError(ReasonedError):
    """A cluster problem the user must know about, e.g. a same-named Deployment that is not ours."""


class VerifyError(ReasonedError):
    """Trusted keys that cannot be used (``InvalidTrustedKeys``) or a verifier that could not run
    (``VerifierUnavailable``: gpg or ssh-keygen missing or too slow). Never a verdict about a commit."""
