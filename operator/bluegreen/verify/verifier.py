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

import base64
import binascii
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Reason", "TrustedKeys", "Verdict", "VerifyError", "verify_commit"]

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
"""The SSH signature namespace git uses for commits and tags."""

_PGP_SIGNATURE: Final = b"-----BEGIN PGP SIGNATURE-----"
_SSH_SIGNATURE: Final = b"-----BEGIN SSH SIGNATURE-----"
_X509_SIGNATURE: Final = b"-----BEGIN SIGNED MESSAGE-----"
_PGP_KEY_BLOCK_RE: Final = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----[ \t]*\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S
)
_SSH_SIGNATURE_RE: Final = re.compile(rb"-----BEGIN SSH SIGNATURE-----(.*?)-----END SSH SIGNATURE-----", re.S)
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
_GPG_STATUS_PREFIX: Final = "[GNUPG:] "
_GPG_NO_PUBKEY: Final = "9"
_GPG_UNKNOWN_ALGORITHM: Final = "4"
_SSH_IDENTITY: Final = "commit-signer"
"""Identity passed to ``ssh-keygen -Y verify``; the allowed-signers principal ``*`` matches it."""


class VerifyError(Exception):
    """Trusted keys that cannot be used (``InvalidTrustedKeys``) or a verifier that could not run
    (``VerifierUnavailable``: gpg or ssh-keygen missing or too slow). Never a verdict about a commit."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Verdict:
    """Whether a commit may be deployed, and why, in words fit for a status condition and an Event."""

    ok: bool
    reason: Reason
    message: str
    signer: str | None = None
    """OpenPGP primary-key fingerprint or SSH ``SHA256:`` fingerprint, when known."""


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
        where = _secret_label(secret_name)
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
    check = _Check(commit=commit_sha[:7], where=_secret_label(secret_name), timeout=timeout_seconds)
    if signature is None or not signature[0].strip():
        return check.verdict("Unsigned", f"is not signed; only commits signed by a key in {check.where} are deployed")
    sig, payload = signature
    head = sig.lstrip()
    if head.startswith(_PGP_SIGNATURE):
        return _verify_openpgp(check, sig, payload, keys.openpgp)
    if head.startswith(_SSH_SIGNATURE):
        return _verify_ssh(check, sig, payload, keys.ssh)
    kind = "an X.509 (gpgsm)" if head.startswith(_X509_SIGNATURE) else "an unrecognised"
    return check.verdict("UnsupportedSignature", f"has {kind} signature; only OpenPGP and SSH signatures are supported")


@dataclass(frozen=True)
class _Check:
    """One verification: the commit's short id, where the keys came from, the subprocess time limit."""

    commit: str
    where: str
    timeout: float

    def verdict(self, reason: Reason, rest: str, signer: str | None = None) -> Verdict:
        """A verdict whose message is ``commit <short sha> <rest>``."""
        return Verdict(ok=reason == "Verified", reason=reason, message=f"commit {self.commit} {rest}", signer=signer)


def _secret_label(secret_name: str) -> str:
    return f"Secret {secret_name!r}" if secret_name else "the trusted keys Secret"


def _invalid(message: str) -> VerifyError:
    return VerifyError("InvalidTrustedKeys", message)


# --- the trusted keys ------------------------------------------------------------------------------------


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


def _openpgp_fingerprint(block: bytes) -> str | None:
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
            _ssh_key_blob(line)
        except ValueError as exc:
            raise _invalid(f"{label}: line {number} {exc}") from None
        lines.append(line)
    if not lines:
        raise _invalid(f"{label} holds no SSH public key (expected lines like 'ssh-ed25519 AAAA... comment')")
    return lines


def _ssh_key_blob(line: str) -> bytes:
    """The binary public key of an SSH public key line; ValueError saying what is wrong."""
    fields = line.split()
    if not fields or fields[0] not in _SSH_KEY_TYPES:
        raise ValueError(
            f"does not start with a supported SSH key type ({', '.join(sorted(_SSH_KEY_TYPES))}); "
            "expected 'ssh-ed25519 AAAA... comment' as in a .pub file"
        )
    try:
        blob = base64.b64decode(fields[1] if len(fields) > 1 else "", validate=True)
        key_type = _SshReader(blob).string()
    except (binascii.Error, ValueError):
        raise ValueError("has a damaged key (the text after the key type is not a valid key)") from None
    if key_type != fields[0].encode():
        raise ValueError(f"has a key of type {key_type.decode(errors='replace')!r} labelled {fields[0]!r}")
    return blob


class _SshReader:
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


# --- subprocesses ----------------------------------------------------------------------------------------


@contextmanager
def _private_dir() -> Iterator[Path]:
    """A new directory only this user can read (mkdtemp makes it 0700), removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="bluegreen-verify-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run(argv: Sequence[str], stdin: bytes, home: Path, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a verifier with a minimal environment whose HOME is ``home``; VerifyError if it cannot run."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "GNUPGHOME": str(home), "LC_ALL": "C"}
    try:
        return subprocess.run(list(argv), input=stdin, capture_output=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        raise VerifyError("VerifierUnavailable", f"{argv[0]} is not installed (needed to verify commits)") from None
    except subprocess.TimeoutExpired:
        raise VerifyError("VerifierUnavailable", f"{argv[0]} did not finish within {timeout:g}s") from None


# --- OpenPGP ---------------------------------------------------------------------------------------------


def _gpg(home: Path, *args: str) -> list[str]:
    return [
        "gpg", "--homedir", str(home), "--batch", "--no-tty", "--no-options", "--no-autostart",
        "--disable-dirmngr", "--no-auto-key-retrieve", "--trust-model", "always", "--status-fd", "1", *args,
    ]


def _status(output: bytes) -> list[tuple[str, list[str]]]:
    """gpg's ``[GNUPG:] KEYWORD args...`` lines as (keyword, args)."""
    lines = output.decode("utf-8", errors="replace").splitlines()
    fields = [line[len(_GPG_STATUS_PREFIX) :].split(" ") for line in lines if line.startswith(_GPG_STATUS_PREFIX)]
    return [(words[0], words[1:]) for words in fields if words and words[0]]


def _verify_openpgp(check: _Check, sig: bytes, payload: bytes, blocks: tuple[bytes, ...]) -> Verdict:
    with _private_dir() as home:
        imported: frozenset[str] = frozenset()
        if blocks:
            imported, failed = _gpg_import(home, blocks, check.timeout)
            if failed:
                return check.verdict("InvalidTrustedKeys", f"cannot be verified: {failed}")
        (home / "commit.sig").write_bytes(sig)
        done = _run(_gpg(home, "--verify", str(home / "commit.sig"), "-"), payload, home, check.timeout)
    return _openpgp_verdict(check, _status(done.stdout), imported)


def _gpg_import(home: Path, blocks: tuple[bytes, ...], timeout: float) -> tuple[frozenset[str], str]:
    """Import the trusted keys; (their fingerprints, "" or why some could not be imported)."""
    status = _status(_run(_gpg(home, "--import"), b"".join(blocks), home, timeout).stdout)
    imported = frozenset(args[1] for keyword, args in status if keyword == "IMPORT_OK" and len(args) > 1)
    missing = sorted({fpr for fpr in map(_openpgp_fingerprint, blocks) if fpr and fpr not in imported})
    if missing:
        return imported, f"gpg could not import OpenPGP key {', '.join(missing)} (damaged, or without a user ID)"
    if not imported or not _all_imported(status):
        return imported, "gpg could not import every OpenPGP key (damaged, or without a user ID)"
    return imported, ""


def _all_imported(status: list[tuple[str, list[str]]]) -> bool:
    """IMPORT_RES <count> <no_user_id> <imported> <imported_rsa> <unchanged> ...: every key was taken."""
    counts = next((args for keyword, args in status if keyword == "IMPORT_RES"), [])
    if len(counts) < 5 or not all(count.isdigit() for count in counts[:5]):
        return False
    return int(counts[2]) + int(counts[4]) >= int(counts[0]) > 0


def _openpgp_verdict(check: _Check, status: list[tuple[str, list[str]]], trusted: frozenset[str]) -> Verdict:
    """The verdict over every signature gpg saw (each starts with NEWSIG): all must be good."""
    groups: list[dict[str, list[str]]] = []
    for keyword, args in status:
        if keyword == "NEWSIG":
            groups.append({})
        elif groups:
            groups[-1].setdefault(keyword, args)
    if not groups:
        return check.verdict("BadSignature", "has a malformed OpenPGP signature")
    verdicts = [_one_openpgp_signature(check, group, trusted) for group in groups]
    return next((verdict for verdict in verdicts if not verdict.ok), verdicts[0])


def _one_openpgp_signature(check: _Check, status: dict[str, list[str]], trusted: frozenset[str]) -> Verdict:
    if "ERRSIG" in status:
        return _errsig_verdict(check, status["ERRSIG"])
    signer = _openpgp_signer(status, trusted)
    if "BADSIG" in status:
        return check.verdict("BadSignature", f"has a signature by OpenPGP key {signer} that does not match "
                             "its content (modified after signing)", signer)
    if "REVKEYSIG" in status:
        return check.verdict("UntrustedSigner", f"is signed by OpenPGP key {signer} which is revoked", signer)
    if "EXPKEYSIG" in status:
        expired = _date(status.get("KEYEXPIRED", [""])[0])
        return check.verdict("UntrustedSigner", f"is signed by OpenPGP key {signer} which expired{expired}", signer)
    if "EXPSIG" in status:
        return check.verdict("BadSignature", f"has a signature by OpenPGP key {signer} which has expired", signer)
    if "GOODSIG" not in status or "VALIDSIG" not in status:
        return check.verdict("BadSignature", "has an OpenPGP signature that gpg did not accept", signer)
    if signer not in trusted:
        return check.verdict("UntrustedSigner", f"is signed by OpenPGP key {signer} which is not in {check.where}",
                             signer)
    user = unquote(" ".join(status["GOODSIG"][1:]))
    return check.verdict("Verified", f"is signed by trusted OpenPGP key {signer} ({user})", signer)


def _openpgp_signer(status: dict[str, list[str]], trusted: frozenset[str]) -> str | None:
    """The primary-key fingerprint from VALIDSIG, else that of the trusted key with the key id gpg named."""
    validsig = status.get("VALIDSIG", [])
    if len(validsig) > 9:
        return validsig[9]
    keyword = next((word for word in ("GOODSIG", "BADSIG", "REVKEYSIG", "EXPKEYSIG", "EXPSIG") if status.get(word)), "")
    key_id = status[keyword][0] if keyword else None
    return next((fpr for fpr in sorted(trusted) if key_id and fpr.endswith(key_id)), key_id)


def _errsig_verdict(check: _Check, errsig: list[str]) -> Verdict:
    """ERRSIG <keyid> <pkalgo> <hashalgo> <class> <time> <rc> [<fpr>]: gpg could not check the signature."""
    signer = errsig[6] if len(errsig) > 6 and errsig[6] != "-" else (errsig[0] if errsig else None)
    code = errsig[5] if len(errsig) > 5 else ""
    if code == _GPG_NO_PUBKEY:
        return check.verdict("UntrustedSigner", f"is signed by OpenPGP key {signer} which is not in {check.where}",
                             signer)
    if code == _GPG_UNKNOWN_ALGORITHM:
        return check.verdict("UnsupportedSignature", f"is signed with an algorithm gpg cannot check (key {signer})",
                             signer)
    return check.verdict("BadSignature", f"has a signature by OpenPGP key {signer} that gpg cannot check", signer)


def _date(timestamp: str) -> str:
    """`` on YYYY-MM-DD`` from a gpg timestamp (seconds since the epoch), or "" if it is not one."""
    if not timestamp.isdigit():
        return ""
    return datetime.fromtimestamp(int(timestamp), UTC).strftime(" on %Y-%m-%d")


# --- SSH -------------------------------------------------------------------------------------------------


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
        return _SshReader(self.public_key).string().decode(errors="replace")


def _parse_ssh_signature(armored: bytes) -> _SshSignature | None:
    """The signer's key and namespace of an armored SSHSIG (OpenSSH PROTOCOL.sshsig), or None if malformed."""
    match = _SSH_SIGNATURE_RE.search(armored)
    try:
        reader = _SshReader(base64.b64decode(b"".join(match.group(1).split()), validate=True) if match else b"")
        if reader.take(6) != b"SSHSIG" or reader.uint32() != 1:
            return None
        public_key, namespace = reader.string(), reader.string()
        _SshReader(public_key).string()
        return _SshSignature(public_key, namespace.decode("utf-8", errors="replace"))
    except (binascii.Error, ValueError):
        return None


def _verify_ssh(check: _Check, sig: bytes, payload: bytes, lines: tuple[str, ...]) -> Verdict:
    parsed = _parse_ssh_signature(sig)
    if parsed is None:
        return check.verdict("BadSignature", "has a malformed SSH signature")
    signer, described = parsed.fingerprint, f"SSH key {parsed.fingerprint} ({parsed.key_type})"
    if parsed.namespace != GIT_NAMESPACE:
        return check.verdict("BadSignature", f"has a signature by {described} made for namespace "
                             f"{parsed.namespace!r}, not {GIT_NAMESPACE!r}", signer)
    try:
        trusted = parsed.public_key in {_ssh_key_blob(line) for line in lines}
    except ValueError as exc:
        return check.verdict("InvalidTrustedKeys", f"cannot be verified: a trusted SSH key line {exc}")
    if not _ssh_keygen_accepts(check, sig, payload, lines if trusted else None):
        return check.verdict("BadSignature", f"has a signature by {described} that does not match its "
                             "content (modified after signing)", signer)
    if not trusted:
        return check.verdict("UntrustedSigner", f"is signed by {described} which is not in {check.where}", signer)
    return check.verdict("Verified", f"is signed by trusted {described}", signer)


def _ssh_keygen_accepts(check: _Check, sig: bytes, payload: bytes, trusted_lines: tuple[str, ...] | None) -> bool:
    """``ssh-keygen -Y verify`` against the trusted keys, or with None ``-Y check-novalidate`` (the signature
    matches the payload, whoever made it)."""
    with _private_dir() as tmp:
        (tmp / "commit.sig").write_bytes(sig)
        if trusted_lines is None:
            args = ["-Y", "check-novalidate"]
        else:
            (tmp / "allowed_signers").write_text(_allowed_signers(trusted_lines))
            args = ["-Y", "verify", "-f", str(tmp / "allowed_signers"), "-I", _SSH_IDENTITY]
        argv = ["ssh-keygen", *args, "-n", GIT_NAMESPACE, "-s", str(tmp / "commit.sig")]
        return _run(argv, payload, tmp, check.timeout).returncode == 0


def _allowed_signers(lines: tuple[str, ...]) -> str:
    """An ssh-keygen allowed-signers file: every trusted key, any identity, git's namespace only."""
    return "".join(f'* namespaces="{GIT_NAMESPACE}" {" ".join(line.split()[:2])}\n' for line in lines)
