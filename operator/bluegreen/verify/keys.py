"""The trusted public keys from a Secret: armored OpenPGP blocks (``*.asc``) and SSH key lines (``*.pub``),
each checked to be a well-formed public key (never a private one) before any verifier sees it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bluegreen.core.errors import VerifyError
from bluegreen.verify.tools import secret_label

_PGP_KEY_BLOCK_RE: Final = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----[ \t]*\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S
)
_SSH_KEY_TYPES: Final = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
_TAG_PUBLIC_KEY: Final = 6
_TAGS_SECRET_KEY: Final = frozenset({5, 7})


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys whose signatures are trusted."""

    openpgp: tuple[bytes, ...] = ()
    """Armored OpenPGP public key blocks, as ``gpg --export --armor`` writes them (a block may hold several keys)."""
    ssh: tuple[str, ...] = ()
    """SSH public key lines, e.g. ``ssh-ed25519 AAAA... comment``."""

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes], *, secret_name: str = "") -> TrustedKeys:
        """Keys from a Secret's decoded ``data``: ``*.asc`` entries hold armored OpenPGP public keys, ``*.pub``
        entries SSH public key lines (blank lines and ``#`` comments are skipped); other entries are ignored.

        Raises ``VerifyError("InvalidTrustedKeys")`` naming the offending entry, or if no key is found.
        """
        where = secret_label(secret_name)
        openpgp: list[bytes] = []
        ssh: list[str] = []
        for entry in sorted(data):
            suffix = entry.lower()
            if suffix.endswith(".asc"):
                openpgp.extend(_openpgp_blocks(data[entry], f"{where} key {entry!r}"))
            elif suffix.endswith(".pub"):
                ssh.extend(_ssh_lines(data[entry], f"{where} key {entry!r}"))
        if not openpgp and not ssh:
            found = f" (it has: {', '.join(sorted(data))})" if data else " (it is empty)"
            raise _invalid(f"{where} holds no trusted key: add *.asc OpenPGP or *.pub SSH public keys{found}")
        return cls(openpgp=tuple(openpgp), ssh=tuple(ssh))


def _invalid(message: str) -> VerifyError:
    return VerifyError("InvalidTrustedKeys", message)


def _openpgp_blocks(value: bytes, label: str) -> list[bytes]:
    """The armored public key blocks in ``value``, each checked to be a well-formed public key."""
    if b"PRIVATE KEY BLOCK" in value:
        raise _invalid(f"{label} holds an OpenPGP private key: export only the public key (gpg --export --armor)")
    matches = list(_PGP_KEY_BLOCK_RE.finditer(value))
    if not matches:
        raise _invalid(
            f"{label} is not an armored OpenPGP public key "
            "(expected -----BEGIN PGP PUBLIC KEY BLOCK-----, as written by gpg --export --armor)"
        )
    for number, match in enumerate(matches, 1):
        problem = _key_block_problem(match.group(1))
        if problem:
            raise _invalid(f"{label}: key block {number} {problem}")
    return [match.group(0) + b"\n" for match in matches]


def _key_block_problem(armored_body: bytes) -> str | None:
    """Why an armored key block's body is not a well-formed OpenPGP public key, or None."""
    data = _dearmor(armored_body)
    if data is None:
        return "is not valid base64"
    packets = _packets(data)
    if not packets:
        return "is damaged (its OpenPGP packets are truncated or malformed)"
    if _TAGS_SECRET_KEY & {tag for tag, _ in packets}:
        return "holds a private key: export only the public key (gpg --export --armor)"
    if packets[0][0] != _TAG_PUBLIC_KEY:
        return "does not start with a public key"
    return None


def _dearmor(body: bytes) -> bytes | None:
    """Decode an armor body: optional header lines and a blank line, base64 lines, an optional checksum line."""
    lines = [line.strip() for line in body.strip().splitlines()]
    if b"" in lines:
        lines = lines[lines.index(b"") + 1 :]
    data = [line for line in lines if line and not line.startswith(b"=")]
    try:
        return base64.b64decode(b"".join(data), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def _packets(data: bytes) -> list[tuple[int, bytes]] | None:
    """(tag, body) of each OpenPGP packet in ``data``, or None unless the packets exactly fill it."""
    packets: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x80:
            return None
        if header & 0x40:
            tag, (length, pos) = header & 0x3F, _new_length(data, pos + 1)
        else:
            tag, (length, pos) = (header >> 2) & 0x0F, _old_length(data, pos + 1, header & 0x03)
        if length < 0 or pos + length > len(data):
            return None
        packets.append((tag, data[pos : pos + length]))
        pos += length
    return packets


def _new_length(data: bytes, pos: int) -> tuple[int, int]:
    """(body length, body offset) of a new-format packet; length -1 if malformed or partial."""
    first = data[pos] if pos < len(data) else 255
    if first < 192:
        return first, pos + 1
    if first < 224 and pos + 1 < len(data):
        return ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
    if first == 255 and pos + 5 <= len(data):
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
    return -1, pos


def _old_length(data: bytes, pos: int, length_type: int) -> tuple[int, int]:
    """(body length, body offset) of an old-format packet; length -1 if malformed or indeterminate."""
    size = {0: 1, 1: 2, 2: 4}.get(length_type, 0)
    if not size or pos + size > len(data):
        return -1, pos
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def openpgp_fingerprint(block: bytes) -> str | None:
    """Fingerprint of the primary key of an armored v4 key block (what gpg prints), or None."""
    match = _PGP_KEY_BLOCK_RE.search(block)
    packets = _packets(_dearmor(match.group(1)) or b"") if match else None
    if not packets or packets[0][0] != _TAG_PUBLIC_KEY or packets[0][1][:1] != b"\x04":
        return None
    body = packets[0][1]
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False).hexdigest().upper()


def _ssh_lines(value: bytes, label: str) -> list[str]:
    """The SSH public key lines in ``value``, each checked to be a well-formed public key."""
    text = value.decode("utf-8", errors="replace")
    if "PRIVATE KEY" in text:
        raise _invalid(f"{label} holds a private key: use the public key (the .pub file next to it)")
    lines: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            ssh_key_blob(line)
        except ValueError as exc:
            raise _invalid(f"{label}: line {number} {exc}") from None
        lines.append(line)
    if not lines:
        raise _invalid(f"{label} holds no SSH public key (expected lines like 'ssh-ed25519 AAAA... comment')")
    return lines


def ssh_key_blob(line: str) -> bytes:
    """The binary public key of an SSH public key line; ValueError saying what is wrong."""
    fields = line.split()
    if not fields or fields[0] not in _SSH_KEY_TYPES:
        raise ValueError(
            f"does not start with a supported SSH key type ({', '.join(sorted(_SSH_KEY_TYPES))}); "
            "expected 'ssh-ed25519 AAAA... comment' as in a .pub file"
        )
    try:
        blob = base64.b64decode(fields[1] if len(fields) > 1 else "", validate=True)
        key_type = SshReader(blob).string()
    except (binascii.Error, ValueError):
        raise ValueError("has a damaged key (the text after the key type is not a valid key)") from None
    if key_type != fields[0].encode():
        raise ValueError(f"has a key of type {key_type.decode(errors='replace')!r} labelled {fields[0]!r}")
    return blob


class SshReader:
    """Reads the SSH wire format (RFC 4251): uint32 lengths followed by bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes; ValueError if there are fewer."""
        if size < 0 or self._pos + size > len(self._data):
            raise ValueError("truncated")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def uint32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def string(self) -> bytes:
        return self.take(self.uint32())
