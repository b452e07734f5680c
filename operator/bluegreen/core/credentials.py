"""Git credentials from a Kubernetes Secret's data: parsed and checked here, used by the git adapter. Pure.

``repr`` and ``fingerprint`` never reveal a value; ``secret_strings`` lists what must be scrubbed from
any message.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final
from urllib.parse import quote

from bluegreen.core.errors import SourceError

SSH_HOST_KEY_TYPES: Final = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
})
"""Host key types libssh2 reads from known_hosts; other lines (and @markers) would make it reject the file."""
_SECRET_TEXT_KEYS: Final = {
    "username": "username", "password": "password", "bearerToken": "bearer_token", "passphrase": "ssh_passphrase",
}
SECRET_BYTES_KEYS: Final = {"identity": "ssh_identity", "known_hosts": "known_hosts", "caFile": "ca_bundle"}
_FINGERPRINT_SALT: Final = b"bluegreen-operator/credentials/v1"
_FINGERPRINT_ITERATIONS: Final = 20_000


@dataclass(frozen=True, repr=False)
class Credentials:
    """Git credentials from a Kubernetes Secret; ``repr`` and ``fingerprint`` never reveal a value."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    ssh_identity: bytes | None = None
    """Private key (OpenSSH or PEM format)."""
    ssh_passphrase: str | None = None
    known_hosts: bytes | None = None
    """Trusted SSH host keys, ``ssh-keyscan`` format."""
    ca_bundle: bytes | None = None
    """PEM certificates of the CAs trusted for HTTPS instead of the system's."""

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> Credentials:
        """Credentials from a Secret's (base64-decoded) data.

        Keys: ``username``, ``password``, ``bearerToken``, ``identity``, ``passphrase``, ``known_hosts``,
        ``caFile``; others (e.g. ``identity.pub``) are ignored. Empty values count as absent and trailing
        newlines of one-line values are dropped. Raises ``SourceError("InvalidSecret")`` naming the key
        at fault, never its value.
        """
        values: dict[str, Any] = {}
        for key, attr in _SECRET_TEXT_KEYS.items():
            values[attr] = _secret_text(key, data.get(key))
        for key, attr in SECRET_BYTES_KEYS.items():
            values[attr] = _secret_bytes(key, data.get(key))
        credentials = cls(**values)
        credentials._validate()
        return credentials

    def fingerprint(self) -> str:
        """A stable hex digest of every field: equal for equal credentials, revealing no value."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        # Salted and iterated, so that a leaked fingerprint does not make a weak password quick to guess.
        return hashlib.pbkdf2_hmac("sha256", self._canonical(), _FINGERPRINT_SALT, _FINGERPRINT_ITERATIONS).hex()

    def __repr__(self) -> str:
        present = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return f"Credentials({', '.join(present) or 'none'} set)"

    def secret_strings(self) -> tuple[str, ...]:
        """Values that must never appear in a message (longest first), including encoded forms."""
        values = [v for v in (self.password, self.bearer_token, self.ssh_passphrase) if v]
        if self.username and self.password:
            values.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        if self.ssh_identity:
            values += [line for line in self.ssh_identity.decode("utf-8", "replace").splitlines() if len(line) >= 16]
        encoded = [quote(v, safe="") for v in values]
        return tuple(sorted({v for v in values + encoded if v}, key=len, reverse=True))

    def _canonical(self) -> bytes:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            raw = value.encode("utf-8") if isinstance(value, str) else value
            parts.append(f"{f.name}=-".encode() if raw is None else f"{f.name}={len(raw)}:".encode() + raw)
        return b"\n".join(parts)

    def _validate(self) -> None:
        if self.password is not None and self.username is None:
            raise _invalid_secret("password", "is set but username is not: add username too (for a token, "
                                  "the user name your git host expects with it)")
        if self.bearer_token is not None and (self.username is not None or self.password is not None):
            raise _invalid_secret("bearerToken", "cannot be combined with username/password: keep one of them")
        if self.bearer_token is not None and not re.fullmatch(r"[\x21-\x7e]+", self.bearer_token):
            raise _invalid_secret("bearerToken", "must be printable ASCII without spaces")
        if self.ssh_passphrase is not None and self.ssh_identity is None:
            raise _invalid_secret("passphrase", "is set but identity (the private key) is not")
        if self.ssh_identity is not None and not _looks_like_private_key(self.ssh_identity):
            raise _invalid_secret("identity", "is not a private key in OpenSSH or PEM format "
                                  "('-----BEGIN ... PRIVATE KEY-----')")
        if self.known_hosts is not None and not known_host_entries(self.known_hosts):
            raise _invalid_secret("known_hosts", "has no usable line: expected 'host key-type base64-key' "
                                  f"lines as printed by ssh-keyscan, key types {', '.join(sorted(SSH_HOST_KEY_TYPES))}")
        if self.ca_bundle is not None and b"-----BEGIN CERTIFICATE-----" not in self.ca_bundle:
            raise _invalid_secret("caFile", "holds no PEM certificate ('-----BEGIN CERTIFICATE-----')")


def _invalid_secret(key: str, problem: str) -> SourceError:
    return SourceError("InvalidSecret", f"The Secret's key {key!r} {problem}.")


def _secret_bytes(key: str, raw: object) -> bytes | None:
    if raw is None:
        return None
    if not isinstance(raw, bytes | bytearray):
        raise _invalid_secret(key, "must be given as bytes (the Secret's data, base64-decoded)")
    return bytes(raw) if raw.strip() else None


def _secret_text(key: str, raw: object) -> str | None:
    data = _secret_bytes(key, raw)
    if data is None:
        return None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise _invalid_secret(key, "is not UTF-8 text") from None
    if any(c in text for c in "\r\n\x00"):
        raise _invalid_secret(key, "must be a single line")
    return text or None


def _looks_like_private_key(data: bytes) -> bool:
    return data.isascii() and b"-----BEGIN " in data and b"PRIVATE KEY-----" in data


def known_host_entries(data: bytes) -> list[tuple[str, str, str]]:
    """(host patterns, key type, base64 key) of each known_hosts line libssh2 can use."""
    entries = []
    for raw in data.decode("utf-8", "replace").splitlines():
        parts = raw.split()
        if len(parts) < 3 or parts[0].startswith(("#", "@")) or parts[1] not in SSH_HOST_KEY_TYPES:
            continue
        try:
            base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        entries.append((parts[0], parts[1], parts[2]))
    return entries
