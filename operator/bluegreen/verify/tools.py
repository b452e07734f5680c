"""What the OpenPGP and SSH checks share: the verdict type, one check's context, and running a verifier
tool in a private temporary directory with a minimal environment and a time limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from bluegreen.core.errors import Outcome, VerifyError

Reason = Literal[
    "Verified",
    "Unsigned",
    "UntrustedSigner",
    "BadSignature",
    "UnsupportedSignature",
    "InvalidTrustedKeys",
]

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
GIT_NAMESPACE: Final = "git"


@dataclass(frozen=True)
class Verdict(Outcome):
    """Whether a commit may be deployed, and why, in words fit for a status condition and an Event."""

    signer: str | None = None
    """OpenPGP primary-key fingerprint or SSH ``SHA256:`` fingerprint, when known."""


@dataclass(frozen=True)
class Check:
    """One verification: the commit's short id, where the keys came from, the subprocess time limit."""

    commit: str
    where: str
    timeout: float

    def verdict(self, reason: Reason, rest: str, signer: str | None = None) -> Verdict:
        """A verdict whose message is ``commit <short sha> <rest>``."""
        return Verdict(ok=reason == "Verified", reason=reason, message=f"commit {self.commit} {rest}", signer=signer)


@contextmanager
def private_dir() -> Iterator[Path]:
    """A new directory only this user can read (mkdtemp makes it 0700), removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="bluegreen-verify-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(argv: Sequence[str], stdin: bytes, home: Path, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a verifier with a minimal environment whose HOME is ``home``; VerifyError if it cannot run."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "GNUPGHOME": str(home), "LC_ALL": "C"}
    try:
        return subprocess.run(list(argv), input=stdin, capture_output=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        raise VerifyError("VerifierUnavailable", f"{argv[0]} is not installed (needed to verify commits)") from None
    except subprocess.TimeoutExpired:
        raise VerifyError("VerifierUnavailable", f"{argv[0]} did not finish within {timeout:g}s") from None


def secret_label(secret_name: str) -> str:
    return f"Secret {secret_name!r}" if secret_name else "the trusted keys Secret"
