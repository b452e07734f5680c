"""Decide whether a commit is signed by a trusted key: only such commits are deployed.

``TrustedKeys.from_secret_data`` reads the trusted public keys from a Secret (``*.asc``: armored OpenPGP
public keys, ``*.pub``: SSH public key lines) and refuses anything else loudly. ``verify_commit`` takes the
signature and signed payload of one commit (as git stores them in the ``gpgsig`` header) and returns a
``Verdict`` whose ``reason`` is a CamelCase word for a status condition and whose ``message`` is one sentence.

The cryptography is left to the standard tools, run as subprocesses with time limits and a minimal
environment in a private temporary directory (mode 0700, removed afterwards):

- OpenPGP: ``gpg`` with a throw-away home into which only the trusted keys are imported; the decision is
  read from its machine-readable ``--status-fd`` lines, never from its human text or exit code (gpg exits 0
  for a good signature by a revoked key). ``--no-autostart`` keeps gpg-agent and dirmngr from starting.
- SSH (git's ``gpg.format=ssh``): ``ssh-keygen -Y verify`` against an allowed-signers file built from the
  trusted keys. The signer's public key is read from the signature itself, which tells an unknown signer
  (``UntrustedSigner``, if ``ssh-keygen -Y check-novalidate`` accepts the signature) from a tampered
  commit (``BadSignature``).

X.509 (gpgsm) signatures are not supported. Apart from those subprocesses the module is pure: no network,
no logging, no key material in messages (only fingerprints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Final

from bluegreen.core.errors import Outcome, VerifyError
from bluegreen.verify.gpg import verify_openpgp
from bluegreen.verify.keys import TrustedKeys
from bluegreen.verify.ssh import verify_ssh
from bluegreen.verify.tools import DEFAULT_TIMEOUT_SECONDS, Check, Reason, Verdict, secret_label

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS", "CommitVerifier", "Reason", "TrustedKeys", "Verdict", "VerifyError", "verify_commit",
]

_PGP_SIGNATURE: Final = b"-----BEGIN PGP SIGNATURE-----"
_SSH_SIGNATURE: Final = b"-----BEGIN SSH SIGNATURE-----"
_X509_SIGNATURE: Final = b"-----BEGIN SIGNED MESSAGE-----"


def verify_commit(
    commit_sha: str,
    signature: tuple[bytes, bytes] | None,
    keys: TrustedKeys,
    *,
    secret_name: str = "",
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Verdict:
    """Check ``signature`` = (signature, signed payload) of ``commit_sha`` against ``keys``.

    ``None`` (or an empty signature) means the commit is unsigned. Raises ``VerifyError("VerifierUnavailable")``
    when gpg or ssh-keygen is missing or exceeds ``timeout_seconds``.
    """
    check = Check(commit=commit_sha[:7], where=secret_label(secret_name), timeout=timeout_seconds)
    if signature is None or not signature[0].strip():
        return check.verdict("Unsigned", f"is not signed; only commits signed by a key in {check.where} are deployed")
    sig, payload = signature
    head = sig.lstrip()
    if head.startswith(_PGP_SIGNATURE):
        return verify_openpgp(check, sig, payload, keys.openpgp)
    if head.startswith(_SSH_SIGNATURE):
        return verify_ssh(check, sig, payload, keys.ssh)
    kind = "an X.509 (gpgsm)" if head.startswith(_X509_SIGNATURE) else "an unrecognised"
    return check.verdict("UnsupportedSignature", f"has {kind} signature; only OpenPGP and SSH signatures are supported")


class CommitVerifier:
    """The ``Verifier`` of ``bluegreen.core.protocols``: trusted keys from a Secret's data, then ``verify_commit``."""

    def __init__(self, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout_seconds = timeout_seconds

    def verify(self, commit_sha: str, signature: tuple[bytes, bytes] | None, trusted_keys: Mapping[str, bytes], *,
               secret_name: str) -> Outcome:
        """The verdict on ``commit_sha`` (its ``commit`` set). Raises ``VerifyError`` when the keys are unusable or
        the verifier cannot run: nothing to cache."""
        keys = TrustedKeys.from_secret_data(trusted_keys, secret_name=secret_name)
        verdict = verify_commit(commit_sha, signature, keys, secret_name=secret_name,
                                timeout_seconds=self.timeout_seconds)
        return replace(verdict, commit=commit_sha)
