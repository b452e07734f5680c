"""OpenPGP: ``gpg`` with a throw-away home into which only the trusted keys are imported; the decision is read
from its machine-readable ``--status-fd`` lines, never from its human text or exit code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from bluegreen.verify.keys import openpgp_fingerprint
from bluegreen.verify.tools import Check, Verdict, private_dir, run

_GPG_STATUS_PREFIX: Final = "[GNUPG:] "
_GPG_NO_PUBKEY: Final = "9"
_GPG_UNKNOWN_ALGORITHM: Final = "4"


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


def verify_openpgp(check: Check, sig: bytes, payload: bytes, blocks: tuple[bytes, ...]) -> Verdict:
    with private_dir() as home:
        imported: frozenset[str] = frozenset()
        if blocks:
            imported, failed = _gpg_import(home, blocks, check.timeout)
            if failed:
                return check.verdict("InvalidTrustedKeys", f"cannot be verified: {failed}")
        (home / "commit.sig").write_bytes(sig)
        done = run(_gpg(home, "--verify", str(home / "commit.sig"), "-"), payload, home, check.timeout)
    return _openpgp_verdict(check, _status(done.stdout), imported)


def _gpg_import(home: Path, blocks: tuple[bytes, ...], timeout: float) -> tuple[frozenset[str], str]:
    """Import the trusted keys; (their fingerprints, "" or why some could not be imported)."""
    status = _status(run(_gpg(home, "--import"), b"".join(blocks), home, timeout).stdout)
    imported = frozenset(args[1] for keyword, args in status if keyword == "IMPORT_OK" and len(args) > 1)
    missing = sorted({fpr for fpr in map(openpgp_fingerprint, blocks) if fpr and fpr not in imported})
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


def _openpgp_verdict(check: Check, status: list[tuple[str, list[str]]], trusted: frozenset[str]) -> Verdict:
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


def _one_openpgp_signature(check: Check, status: dict[str, list[str]], trusted: frozenset[str]) -> Verdict:
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


def _errsig_verdict(check: Check, errsig: list[str]) -> Verdict:
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
