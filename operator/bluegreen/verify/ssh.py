"""SSH signatures (git's ``gpg.format=ssh``): ``ssh-keygen -Y verify`` against an allowed-signers file built
from the trusted keys; the signer's key read from the signature tells an unknown signer from a tampered commit."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from bluegreen.verify.keys import SshReader, ssh_key_blob
from bluegreen.verify.tools import GIT_NAMESPACE, Check, Verdict, private_dir, run

_SSH_SIGNATURE_RE: Final = re.compile(rb"-----BEGIN SSH SIGNATURE-----(.*?)-----END SSH SIGNATURE-----", re.S)
_SSH_IDENTITY: Final = "commit-signer"
"""Identity passed to ``ssh-keygen -Y verify``; the allowed-signers principal ``*`` matches it."""


@dataclass(frozen=True)
class _SshSignature:
    public_key: bytes
    namespace: str

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.public_key).digest()).decode().rstrip("=")

    @property
    def key_type(self) -> str:
        return SshReader(self.public_key).string().decode(errors="replace")


def _parse_ssh_signature(armored: bytes) -> _SshSignature | None:
    """The signer's key and namespace of an armored SSHSIG (OpenSSH PROTOCOL.sshsig), or None if malformed."""
    match = _SSH_SIGNATURE_RE.search(armored)
    try:
        reader = SshReader(base64.b64decode(b"".join(match.group(1).split()), validate=True) if match else b"")
        if reader.take(6) != b"SSHSIG" or reader.uint32() != 1:
            return None
        public_key, namespace = reader.string(), reader.string()
        SshReader(public_key).string()
        return _SshSignature(public_key, namespace.decode("utf-8", errors="replace"))
    except (binascii.Error, ValueError):
        return None


def verify_ssh(check: Check, sig: bytes, payload: bytes, lines: tuple[str, ...]) -> Verdict:
    parsed = _parse_ssh_signature(sig)
    if parsed is None:
        return check.verdict("BadSignature", "has a malformed SSH signature")
    signer, described = parsed.fingerprint, f"SSH key {parsed.fingerprint} ({parsed.key_type})"
    if parsed.namespace != GIT_NAMESPACE:
        return check.verdict("BadSignature", f"has a signature by {described} made for namespace "
                             f"{parsed.namespace!r}, not {GIT_NAMESPACE!r}", signer)
    try:
        trusted = parsed.public_key in {ssh_key_blob(line) for line in lines}
    except ValueError as exc:
        return check.verdict("InvalidTrustedKeys", f"cannot be verified: a trusted SSH key line {exc}")
    if not _ssh_keygen_accepts(check, sig, payload, lines if trusted else None):
        return check.verdict("BadSignature", f"has a signature by {described} that does not match its "
                             "content (modified after signing)", signer)
    if not trusted:
        return check.verdict("UntrustedSigner", f"is signed by {described} which is not in {check.where}", signer)
    return check.verdict("Verified", f"is signed by trusted {described}", signer)


def _ssh_keygen_accepts(check: Check, sig: bytes, payload: bytes, trusted_lines: tuple[str, ...] | None) -> bool:
    """``ssh-keygen -Y verify`` against the trusted keys, or with None ``-Y check-novalidate`` (the signature
    matches the payload, whoever made it)."""
    with private_dir() as tmp:
        (tmp / "commit.sig").write_bytes(sig)
        if trusted_lines is None:
            args = ["-Y", "check-novalidate"]
        else:
            (tmp / "allowed_signers").write_text(_allowed_signers(trusted_lines))
            args = ["-Y", "verify", "-f", str(tmp / "allowed_signers"), "-I", _SSH_IDENTITY]
        argv = ["ssh-keygen", *args, "-n", GIT_NAMESPACE, "-s", str(tmp / "commit.sig")]
        return run(argv, payload, tmp, check.timeout).returncode == 0


def _allowed_signers(lines: tuple[str, ...]) -> str:
    """An ssh-keygen allowed-signers file: every trusted key, any identity, git's namespace only."""
    return "".join(f'* namespaces="{GIT_NAMESPACE}" {" ".join(line.split()[:2])}\n' for line in lines)
