"""Commit signature verification with real keys and real commits signed by the git CLI.

OpenPGP keys live in throw-away GnuPG homes, SSH keys are made with ssh-keygen, commits are signed by
``git commit`` (``commit.gpgsign``) and their signature is read back with pygit2, as the operator does.
Every test also runs with ``tempfile.tempdir`` pointing at a directory of its own, so the verifier's
temporary directories can be checked for leftovers.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
import pytest

from bluegreen.core.errors import VerifyError
from bluegreen.verify.keys import TrustedKeys
from bluegreen.verify.tools import Verdict
from bluegreen.verify.verifier import verify_commit

if TYPE_CHECKING:
    from conftest import GitRepo

pytestmark = pytest.mark.integration

SECRET = "trusted-keys"
FAKED_PAST = "20240501T100000"  # the expired key is made and used at this (faked) time


@pytest.fixture(autouse=True)
def _require_tools() -> None:
    missing = [tool for tool in ("gpg", "gpgconf", "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: run tests/servers/install-deps.sh (Debian gnupg, openssh-client)")


@pytest.fixture(autouse=True)
def verify_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the verifier's temporary directories go during the test."""
    path = tmp_path / "verify-tmp"
    path.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(path))
    return path


# --- signers ---------------------------------------------------------------------------------------------


class GpgHome:
    """A GnuPG home directory of one test signer, driven through the gpg CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(mode=0o700, parents=True)

    def gpg(self, *args: str, program: str = "gpg") -> bytes:
        """Run ``gpg --homedir <home> --batch args...`` and return its stdout."""
        done = subprocess.run(
            [program, "--homedir", str(self.path), "--batch", *args], capture_output=True, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def new_key(self, uid: str, usage: str = "sign", expire: str = "never", *, faked_time: str = "") -> str:
        """Make an unprotected ed25519 key and return its fingerprint."""
        faked = ["--faked-system-time", faked_time] if faked_time else []
        self.gpg(*faked, "--passphrase", "", "--quick-gen-key", uid, "ed25519", usage, expire)
        listing = self.gpg("--with-colons", "--list-keys", f"={uid}").decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def add_signing_subkey(self, fingerprint: str) -> None:
        self.gpg("--passphrase", "", "--quick-add-key", fingerprint, "ed25519", "sign", "never")

    def export(self, *fingerprints: str) -> bytes:
        """Armored public keys, as ``gpg --export --armor`` writes them."""
        return self.gpg("--armor", "--export", *fingerprints)

    def revoke(self, fingerprint: str) -> None:
        """Import the revocation certificate gpg made with the key."""
        certificate = (self.path / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
        (self.path / "revoke.asc").write_text(certificate.replace(":-----BEGIN", "-----BEGIN"))
        self.gpg("--import", str(self.path / "revoke.asc"))

    def close(self) -> None:
        """Stop the gpg-agent that signing started."""
        subprocess.run(["gpgconf", "--homedir", str(self.path), "--kill", "all"], capture_output=True, check=False)


def git_config_env(**config: str) -> dict[str, str]:
    """``git -c key=value`` for every ``config`` item (``_`` in a name stands for ``.``), as environment."""
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for index, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key.replace("_", ".")
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


@dataclass(frozen=True)
class OpenPGPSigner:
    home: GpgHome
    fingerprint: str
    program: str = "gpg"

    def public_key(self) -> bytes:
        return self.home.export(self.fingerprint)

    def sign_env(self) -> dict[str, str]:
        return {
            "GNUPGHOME": str(self.home.path),
            **git_config_env(commit_gpgsign="true", gpg_format="openpgp", gpg_program=self.program,
                             user_signingkey=self.fingerprint),
        }  # fmt: skip


@dataclass(frozen=True)
class SSHSigner:
    private_key: Path

    @property
    def public_key_path(self) -> Path:
        return self.private_key.with_suffix(".pub")

    def public_key(self) -> bytes:
        return self.public_key_path.read_bytes()

    def fingerprint(self) -> str:
        """``SHA256:...`` as ssh-keygen prints it."""
        done = subprocess.run(["ssh-keygen", "-l", "-f", str(self.public_key_path)], capture_output=True, check=True)
        return done.stdout.decode().split()[1]

    def sign_env(self) -> dict[str, str]:
        return git_config_env(commit_gpgsign="true", gpg_format="ssh", user_signingkey=str(self.public_key_path))


Signer = OpenPGPSigner | SSHSigner


def new_ssh_signer(directory: Path, name: str) -> SSHSigner:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.com", "-f", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    return SSHSigner(path)


@dataclass(frozen=True)
class Signers:
    alice: OpenPGPSigner
    carol: OpenPGPSigner
    mallory: OpenPGPSigner
    sam: OpenPGPSigner  # signs with a subkey
    bob: SSHSigner
    dan: SSHSigner
    eve: SSHSigner


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signers]:
    """Trusted-to-be and untrusted signers, made once for the module."""
    base = tmp_path_factory.mktemp("signers")
    home = GpgHome(base / "gnupg")
    sam = home.new_key("Sam <sam@example.com>", "cert")
    home.add_signing_subkey(sam)
    try:
        yield Signers(
            alice=OpenPGPSigner(home, home.new_key("Alice <alice@example.com>")),
            carol=OpenPGPSigner(home, home.new_key("Carol <carol@example.com>")),
            mallory=OpenPGPSigner(home, home.new_key("Mallory <mallory@example.com>")),
            sam=OpenPGPSigner(home, sam),
            bob=new_ssh_signer(base, "bob"),
            dan=new_ssh_signer(base, "dan"),
            eve=new_ssh_signer(base, "eve"),
        )
    finally:
        home.close()


@pytest.fixture
def repo(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    return make_repo("repo")


def commit(repo: GitRepo, message: str, signer: Signer | None = None) -> str:
    """A new commit, signed by ``signer`` through ``git commit`` when given."""
    return repo.commit(message, {"deploy/app.yaml": message.encode()}, env=signer.sign_env() if signer else None)


def signature_of(repo: GitRepo, sha: str) -> tuple[bytes, bytes] | None:
    """(signature, signed payload) as pygit2 reads it, None for an unsigned commit."""
    signature, payload = pygit2.Repository(str(repo.path))[sha].gpg_signature
    return None if signature is None else (signature, payload)


def keys_of(**entries: bytes) -> TrustedKeys:
    """TrustedKeys from Secret data; ``_`` in an entry name stands for ``.`` (``alice_asc`` -> ``alice.asc``)."""
    return TrustedKeys.from_secret_data({name.replace("_", "."): value for name, value in entries.items()},
                                        secret_name=SECRET)  # fmt: skip


def verify(repo: GitRepo, sha: str, keys: TrustedKeys) -> Verdict:
    return verify_commit(sha, signature_of(repo, sha), keys, secret_name=SECRET)


def rewrite_message(repo: GitRepo, sha: str, message: str) -> str:
    """A new commit object with ``sha``'s headers (its gpgsig too) but another message, as an attacker would."""
    raw = subprocess.run(["git", "cat-file", "commit", sha], cwd=repo.path, capture_output=True, check=True).stdout
    headers = raw.split(b"\n\n", 1)[0]
    rewritten = headers + b"\n\n" + message.encode() + b"\n"
    done = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=repo.path, input=rewritten,
                          capture_output=True, check=True)  # fmt: skip
    return done.stdout.decode().strip()


# --- verdicts --------------------------------------------------------------------------------------------


def test_openpgp_commit_by_trusted_key_is_verified(repo: GitRepo, signers: Signers) -> None:
    sha = commit(repo, "release v1", signers.alice)

    verdict = verify(repo, sha, keys_of(alice_asc=signers.alice.public_key()))

    assert (verdict.ok, verdict.reason, verdict.signer) == (True, "Verified", signers.alice.fingerprint)
    assert verdict.message.startswith(f"commit {sha[:7]} is signed by trusted OpenPGP key {signers.alice.fingerprint}")
    assert "Alice <alice@example.com>" in verdict.message


def test_ssh_commit_by_trusted_key_is_verified(repo: GitRepo, signers: Signers) -> None:
    sha = commit(repo, "release v1", signers.bob)

    verdict = verify(repo, sha, keys_of(bob_pub=signers.bob.public_key()))

    assert (verdict.ok, verdict.reason, verdict.signer) == (True, "Verified", signers.bob.fingerprint())
    assert verdict.message == f"commit {sha[:7]} is signed by trusted SSH key {signers.bob.fingerprint()} (ssh-ed25519)"


def test_signing_subkey_counts_as_its_primary_key(repo: GitRepo, signers: Signers) -> None:
    sha = commit(repo, "release v1", signers.sam)

    verdict = verify(repo, sha, keys_of(sam_asc=signers.sam.public_key()))

    assert (verdict.reason, verdict.signer) == ("Verified", signers.sam.fingerprint)


def test_unsigned_commit_is_refused(repo: GitRepo, signers: Signers) -> None:
    sha = commit(repo, "release v1")
    assert signature_of(repo, sha) is None

    verdict = verify(repo, sha, keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key()))

    assert (verdict.ok, verdict.reason, verdict.signer) == (False, "Unsigned", None)
    assert verdict.message == (
        f"commit {sha[:7]} is not signed; only commits signed by a key in Secret '{SECRET}' are deployed"
    )


def test_openpgp_commit_by_untrusted_key_is_refused(repo: GitRepo, signers: Signers) -> None:
    sha = commit(repo, "release v1", signers.mallory)

    verdict = verify(repo, sha, keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key()))

    assert (verdict.ok, verdict.reason, verdict.signer) == (False, "UntrustedSigner", signers.mallory.fingerprint)
    assert verdict.message == (
        f"commit {sha[:7]} is signed by OpenPGP key {signers.mallory.fingerprint} which is not in Secret '{SECRET}'"
    )


def test_ssh_commit_by_untrusted_key_is_refused(repo: GitRepo, signers: Signers) -> None:
    sha = commit(repo, "release v1", signers.eve)

    verdict = verify(repo, sha, keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key()))

    assert (verdict.ok, verdict.reason, verdict.signer) == (False, "UntrustedSigner", signers.eve.fingerprint())
    assert f"SSH key {signers.eve.fingerprint()} (ssh-ed25519) which is not in Secret '{SECRET}'" in verdict.message


def test_users_own_keyring_is_not_consulted(
    repo: GitRepo, signers: Signers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mallory's key is in the keyring (GNUPGHOME) of the user running the operator, but not in the Secret."""
    sha = commit(repo, "release v1", signers.mallory)
    monkeypatch.setenv("GNUPGHOME", str(signers.mallory.home.path))

    verdict = verify(repo, sha, keys_of(alice_asc=signers.alice.public_key()))

    assert verdict.reason == "UntrustedSigner"


@pytest.mark.parametrize("kind", ["openpgp", "ssh"])
@pytest.mark.parametrize("tamper", ["rewritten-commit", "flipped-byte"])
def test_tampered_commit_has_a_bad_signature(repo: GitRepo, signers: Signers, kind: str, tamper: str) -> None:
    signer: Signer = signers.alice if kind == "openpgp" else signers.bob
    keys = keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key())
    signed = commit(repo, "release v1", signer)
    original = signature_of(repo, signed)
    assert original is not None
    if tamper == "rewritten-commit":
        sha = rewrite_message(repo, signed, "release v1 with a backdoor")
        signature = signature_of(repo, sha)
        assert signature is not None and signature[0] == original[0] and signature[1] != original[1]
    else:
        sha = signed
        signature = (original[0], original[1].replace(b"release v1", b"release v2"))

    verdict = verify_commit(sha, signature, keys, secret_name=SECRET)

    assert (verdict.ok, verdict.reason) == (False, "BadSignature")
    assert "does not match its content" in verdict.message
    expected_signer = signers.alice.fingerprint if kind == "openpgp" else signers.bob.fingerprint()
    assert verdict.signer == expected_signer


def test_tampered_commit_by_untrusted_ssh_key_has_a_bad_signature(repo: GitRepo, signers: Signers) -> None:
    sha = rewrite_message(repo, commit(repo, "release v1", signers.eve), "release v1 with a backdoor")

    verdict = verify(repo, sha, keys_of(bob_pub=signers.bob.public_key()))

    assert verdict.reason == "BadSignature"


def test_ssh_signature_for_another_namespace_is_refused(repo: GitRepo, signers: Signers, tmp_path: Path) -> None:
    """A signature bob made with ``ssh-keygen -Y sign -n file`` over the commit's payload is not a git one."""
    sha = commit(repo, "release v1")
    payload = pygit2.Repository(str(repo.path))[sha].read_raw()
    (tmp_path / "payload").write_bytes(payload)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "file", "-f", str(signers.bob.private_key),
                    str(tmp_path / "payload")], check=True, capture_output=True)  # fmt: skip
    signature = ((tmp_path / "payload.sig").read_bytes(), payload)

    verdict = verify_commit(sha, signature, keys_of(bob_pub=signers.bob.public_key()), secret_name=SECRET)

    assert (verdict.reason, verdict.signer) == ("BadSignature", signers.bob.fingerprint())
    assert "namespace 'file', not 'git'" in verdict.message


def _inline_signed_as_signature(signers: Signers, payload: bytes) -> bytes:
    """Alice's inline-signed message with other content, armored as if it were a detached signature."""
    message = subprocess.run(
        ["gpg", "--homedir", str(signers.alice.home.path), "--batch", "--pinentry-mode", "loopback", "--passphrase",
         "", "--armor", "--sign", "-u", signers.alice.fingerprint], input=b"image: evil\n", capture_output=True,
        check=True).stdout  # fmt: skip
    return message.replace(b"PGP MESSAGE", b"PGP SIGNATURE")


MALFORMED_SIGNATURES: dict[str, Callable[[Signers, bytes], bytes]] = {
    "inline-signed-message": _inline_signed_as_signature,
    "openpgp-garbage": lambda s, p: b"-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n"
                                    b"-----END PGP SIGNATURE-----\n",
    "ssh-garbage": lambda s, p: b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n",
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED_SIGNATURES))
def test_malformed_signature_is_refused(repo: GitRepo, signers: Signers, case: str) -> None:
    sha = commit(repo, "release v1")
    payload = pygit2.Repository(str(repo.path))[sha].read_raw()
    signature = (MALFORMED_SIGNATURES[case](signers, payload), payload)
    keys = keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key())

    verdict = verify_commit(sha, signature, keys, secret_name=SECRET)

    assert (verdict.ok, verdict.reason) == (False, "BadSignature")
    assert verdict.message.startswith(f"commit {sha[:7]} has a malformed")


def test_revoked_openpgp_key_is_not_trusted(repo: GitRepo, tmp_path: Path) -> None:
    home = GpgHome(tmp_path / "revoked")
    try:
        dave = OpenPGPSigner(home, home.new_key("Dave <dave@example.com>"))
        sha = commit(repo, "release v1", dave)
        home.revoke(dave.fingerprint)

        verdict = verify(repo, sha, keys_of(dave_asc=dave.public_key()))
    finally:
        home.close()

    assert (verdict.ok, verdict.reason, verdict.signer) == (False, "UntrustedSigner", dave.fingerprint)
    assert verdict.message.endswith(f"OpenPGP key {dave.fingerprint} which is revoked")


def test_expired_openpgp_key_is_not_trusted(repo: GitRepo, tmp_path: Path) -> None:
    """The key was made in May 2024, valid for two days, and signed the commit while it was valid."""
    home = GpgHome(tmp_path / "expired")
    wrapper = tmp_path / "gpg-in-the-past"
    wrapper.write_text(f'#!/bin/sh\nexec gpg --faked-system-time {FAKED_PAST} "$@"\n')
    wrapper.chmod(0o755)
    try:
        fingerprint = home.new_key("Olga <olga@example.com>", expire="2d", faked_time=FAKED_PAST)
        olga = OpenPGPSigner(home, fingerprint, program=str(wrapper))
        sha = commit(repo, "release v1", olga)

        verdict = verify(repo, sha, keys_of(olga_asc=olga.public_key()))
    finally:
        home.close()

    assert (verdict.ok, verdict.reason, verdict.signer) == (False, "UntrustedSigner", fingerprint)
    assert verdict.message.endswith(f"OpenPGP key {fingerprint} which expired on 2024-05-03")


def test_x509_signature_is_unsupported(repo: GitRepo, tmp_path: Path) -> None:
    assert shutil.which("gpgsm"), "needs gpgsm: run tests/servers/install-deps.sh (Debian package gpgsm)"
    home = GpgHome(tmp_path / "gpgsm")
    (home.path / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    request = tmp_path / "certificate.txt"
    request.write_text("Key-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\nSerial: random\n"
                       "Name-DN: CN=Test Signer\nName-Email: x509@example.com\n")  # fmt: skip
    wrapper = tmp_path / "gpgsm-wrapper"
    wrapper.write_text('#!/bin/sh\nexec gpgsm --disable-crl-checks --pinentry-mode loopback --passphrase "" "$@"\n')
    wrapper.chmod(0o755)
    try:
        certificate = home.gpg("--pinentry-mode", "loopback", "--passphrase", "", "--gen-key", str(request),
                               program="gpgsm")  # fmt: skip
        (tmp_path / "certificate.der").write_bytes(certificate)
        home.gpg("--import", str(tmp_path / "certificate.der"), program="gpgsm")
        listing = home.gpg("--with-colons", "--list-keys", program="gpgsm").decode()
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        (home.path / "trustlist.txt").write_text(f"{fingerprint} S relax\n")
        env = {"GNUPGHOME": str(home.path), **git_config_env(commit_gpgsign="true", gpg_format="x509",
               gpg_x509_program=str(wrapper), user_signingkey=fingerprint)}  # fmt: skip
        sha = repo.commit("release v1", env=env)
    finally:
        home.close()
    signature = signature_of(repo, sha)
    assert signature is not None and signature[0].startswith(b"-----BEGIN SIGNED MESSAGE-----")

    verdict = verify_commit(sha, signature, TrustedKeys(ssh=("ssh-ed25519 AAAA",)), secret_name=SECRET)

    assert (verdict.ok, verdict.reason) == (False, "UnsupportedSignature")
    assert verdict.message == (
        f"commit {sha[:7]} has an X.509 (gpgsm) signature; only OpenPGP and SSH signatures are supported"
    )


def test_secret_with_both_kinds_of_keys(repo: GitRepo, signers: Signers) -> None:
    keys = keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key())
    by_alice = commit(repo, "release v1", signers.alice)
    by_bob = commit(repo, "release v2", signers.bob)

    assert [verify(repo, sha, keys).reason for sha in (by_alice, by_bob)] == ["Verified", "Verified"]
    assert (len(keys.openpgp), len(keys.ssh)) == (1, 1)


def test_any_of_several_trusted_keys_is_enough(repo: GitRepo, signers: Signers) -> None:
    """Two OpenPGP key blocks in one .asc entry, two SSH keys (with a comment and a blank line) in one .pub entry."""
    pub = b"# the release team\n" + signers.bob.public_key() + b"\n" + signers.dan.public_key()
    keys = keys_of(team_asc=signers.alice.public_key() + signers.carol.public_key(), team_pub=pub)
    shas = [commit(repo, f"release v{n}", signer) for n, signer in enumerate([signers.carol, signers.dan], 1)]

    verdicts = [verify(repo, sha, keys) for sha in shas]

    assert [(v.reason, v.signer) for v in verdicts] == [
        ("Verified", signers.carol.fingerprint),
        ("Verified", signers.dan.fingerprint()),
    ]
    assert (len(keys.openpgp), len(keys.ssh)) == (2, 2)


def test_one_key_block_with_several_keys(repo: GitRepo, signers: Signers) -> None:
    """``gpg --export --armor alice carol`` writes both keys into one armored block."""
    keys = keys_of(team_asc=signers.alice.home.export(signers.alice.fingerprint, signers.carol.fingerprint))
    sha = commit(repo, "release v1", signers.carol)

    assert (verify(repo, sha, keys).reason, len(keys.openpgp)) == ("Verified", 1)


def test_keys_in_separate_entries_are_all_trusted(repo: GitRepo, signers: Signers) -> None:
    keys = keys_of(alice_asc=signers.alice.public_key(), carol_asc=signers.carol.public_key())
    sha = commit(repo, "release v1", signers.carol)

    assert verify(repo, sha, keys).reason == "Verified"
    assert len(keys.openpgp) == 2


def test_signature_kind_without_trusted_keys_of_that_kind(repo: GitRepo, signers: Signers) -> None:
    """Only SSH keys are trusted: an OpenPGP signature cannot be trusted, and the other way round."""
    openpgp_sha = commit(repo, "release v1", signers.alice)
    ssh_sha = commit(repo, "release v2", signers.bob)

    assert verify(repo, openpgp_sha, keys_of(bob_pub=signers.bob.public_key())).reason == "UntrustedSigner"
    assert verify(repo, ssh_sha, keys_of(alice_asc=signers.alice.public_key())).reason == "UntrustedSigner"


def test_key_gpg_cannot_import_makes_the_key_set_invalid(repo: GitRepo, signers: Signers) -> None:
    """Carol's key with a byte of its user-ID self-signature changed: well-formed, but gpg refuses it."""
    sha = commit(repo, "release v1", signers.alice)
    damaged = _edit_armored(signers.carol.public_key(), _flip_near_end)
    keys = TrustedKeys(openpgp=(signers.alice.public_key(), damaged))

    verdict = verify_commit(sha, signature_of(repo, sha), keys, secret_name=SECRET)

    assert (verdict.ok, verdict.reason) == (False, "InvalidTrustedKeys")
    assert f"gpg could not import OpenPGP key {signers.carol.fingerprint}" in verdict.message


def _edit_armored(armored: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """An armored key block whose binary content went through ``edit`` (checksum line dropped)."""
    lines = armored.decode().splitlines()
    start, end = lines.index("") + 1, next(i for i, line in enumerate(lines) if line.startswith("="))
    body = base64.encodebytes(edit(base64.b64decode("".join(lines[start:end])))).decode()
    return f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{body}-----END PGP PUBLIC KEY BLOCK-----\n".encode()


def _flip_near_end(data: bytes) -> bytes:
    """Change a byte inside the last packet (the user ID's self-signature)."""
    return data[:-12] + bytes([data[-12] ^ 0xFF]) + data[-11:]


# --- the Secret ------------------------------------------------------------------------------------------


def test_from_secret_data_reads_only_asc_and_pub_entries(signers: Signers) -> None:
    data = {
        "bob.pub": b"\n# bob's laptop\n" + signers.bob.public_key() + b"\n\n",
        "alice.asc": signers.alice.public_key(),
        "README.md": b"keys of the release team",
    }

    keys = TrustedKeys.from_secret_data(data, secret_name=SECRET)

    assert keys == TrustedKeys(openpgp=(signers.alice.public_key(),), ssh=(signers.bob.public_key().decode().strip(),))


def _private_openpgp(signers: Signers) -> bytes:
    return signers.alice.home.gpg(
        "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", signers.alice.fingerprint
    )


def _truncated_openpgp(signers: Signers) -> bytes:
    return _edit_armored(signers.alice.public_key(), lambda data: data[:-5])


def _mislabelled_ssh(signers: Signers) -> bytes:
    return b"ssh-rsa " + signers.bob.public_key().split()[1]


INVALID_SECRETS: dict[str, tuple[Callable[[Signers], dict[str, bytes]], str]] = {
    "garbage-asc": (lambda s: {"alice.asc": b"hello world\n"}, "key 'alice.asc' is not an armored OpenPGP public key"),
    "garbage-pub": (lambda s: {"bob.pub": b"not a key\n"}, "key 'bob.pub': line 1 does not start with a supported"),
    "empty-secret": (lambda s: {}, "holds no trusted key: add *.asc OpenPGP or *.pub SSH public keys (it is empty)"),
    "no-key-entries": (lambda s: {"alice.gpg": s.alice.public_key()}, "holds no trusted key: add *.asc OpenPGP or "
                       "*.pub SSH public keys (it has: alice.gpg)"),
    "empty-pub": (lambda s: {"bob.pub": b"# nobody yet\n"}, "key 'bob.pub' holds no SSH public key"),
    "openpgp-private-key": (lambda s: {"alice.asc": _private_openpgp(s)}, "key 'alice.asc' holds an OpenPGP private"),
    "ssh-private-key": (lambda s: {"bob.pub": s.bob.private_key.read_bytes()}, "key 'bob.pub' holds a private key"),
    "truncated-openpgp": (lambda s: {"alice.asc": _truncated_openpgp(s)}, "key 'alice.asc': key block 1 is damaged"),
    "bad-base64-openpgp": (lambda s: {"alice.asc": s.alice.public_key().replace(b"\n\n", b"\n\n!!", 1)},
                           "key 'alice.asc': key block 1 is not valid base64"),
    "mislabelled-ssh": (lambda s: {"bob.pub": _mislabelled_ssh(s)}, "a key of type 'ssh-ed25519' labelled 'ssh-rsa'"),
    "bad-base64-ssh": (lambda s: {"bob.pub": b"ssh-ed25519 AAAA!!!! bob"}, "key 'bob.pub': line 1 has a damaged key"),
    "allowed-signers-line": (lambda s: {"bob.pub": b"bob@example.com " + s.bob.public_key()},
                             "line 1 does not start with a supported SSH key type"),
    "one-bad-entry-of-two": (lambda s: {"alice.asc": s.alice.public_key(), "z.pub": b"junk"}, "key 'z.pub': line 1"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(INVALID_SECRETS))
def test_from_secret_data_refuses_invalid_keys(signers: Signers, case: str) -> None:
    make_data, expected = INVALID_SECRETS[case]
    data = make_data(signers)

    with pytest.raises(VerifyError) as caught:
        TrustedKeys.from_secret_data(data, secret_name=SECRET)

    assert caught.value.reason == "InvalidTrustedKeys"
    assert caught.value.message.startswith(f"Secret '{SECRET}'")
    assert expected in caught.value.message
    secret_material = [line for value in data.values() for line in value.split() if len(line) > 24]
    assert not [line for line in secret_material if line.decode(errors="replace") in caught.value.message]


# --- the tools -------------------------------------------------------------------------------------------


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and text in cmdline:
            found.append(cmdline)
    return found


def test_no_temporary_files_or_processes_are_left_behind(repo: GitRepo, signers: Signers, verify_tmp: Path) -> None:
    keys = keys_of(alice_asc=signers.alice.public_key(), bob_pub=signers.bob.public_key())
    shas = [commit(repo, f"release v{n}", signer) for n, signer in enumerate(
        [signers.alice, signers.bob, signers.mallory, signers.eve], 1)]  # fmt: skip
    shas.append(rewrite_message(repo, shas[0], "tampered"))
    shas.append(rewrite_message(repo, shas[1], "tampered"))
    broken = TrustedKeys(openpgp=(_edit_armored(signers.carol.public_key(), _flip_near_end),))

    reasons = [verify(repo, sha, keys).reason for sha in shas]
    reasons.append(verify_commit(shas[0], signature_of(repo, shas[0]), broken).reason)

    assert reasons == ["Verified", "Verified", "UntrustedSigner", "UntrustedSigner", "BadSignature", "BadSignature",
                       "InvalidTrustedKeys"]  # fmt: skip
    assert list(verify_tmp.iterdir()) == []
    assert _processes_mentioning(str(verify_tmp)) == []


def _fake_tool(directory: Path, name: str, script: str) -> None:
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


def test_gpg_runs_in_a_private_home(
    repo: GitRepo, signers: Signers, tmp_path: Path, verify_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in gpg records its home and arguments; it claims to import Alice's key and reports nothing else."""
    sha = commit(repo, "release v1", signers.alice)
    keys = keys_of(alice_asc=signers.alice.public_key())
    record = tmp_path / "record"
    _fake_tool(tmp_path / "bin", "gpg", "\n".join([
        f'stat -c "%a %n" "$2" >> {record}; echo "$GNUPGHOME" >> {record}; echo "$*" >> {record}',
        f'echo "[GNUPG:] IMPORT_OK 1 {signers.alice.fingerprint}"',
        'echo "[GNUPG:] IMPORT_RES 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0"',
    ]))  # fmt: skip
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    verdict = verify(repo, sha, keys)

    import_home, import_env, import_args, verify_home, verify_env, verify_args = record.read_text().splitlines()
    mode, home = import_home.split(" ", 1)
    assert (mode, import_env, verify_home, verify_env) == ("700", home, import_home, home)
    assert Path(home).parent == verify_tmp and not Path(home).exists()
    assert "--import" in import_args.split() and "--verify" in verify_args.split()
    assert {"--no-autostart", "--no-options", "--status-fd"} <= set(verify_args.split())
    assert (verdict.reason, verdict.message) == ("BadSignature", f"commit {sha[:7]} has a malformed OpenPGP signature")


GPG_STATUS_CASES = {
    # A good signature by a key that was not imported (a polluted keyring) is not trusted.
    "good-by-unimported-key": (["NEWSIG", "GOODSIG {m16} Mallory", "VALIDSIG {m} 2024-05-01 0 0 4 0 22 8 00 {m}"],
                               "UntrustedSigner", "{m}"),
    # Every signature must be good: a second one by an unknown key spoils the first.
    "good-then-unknown": (["NEWSIG", "GOODSIG {a16} Alice", "VALIDSIG {a} 2024-05-01 0 0 4 0 22 8 00 {a}",
                           "NEWSIG", "ERRSIG {m16} 22 8 00 0 9 {m}", "NO_PUBKEY {m16}"], "UntrustedSigner", "{m}"),
    "unknown-algorithm": (["NEWSIG", "ERRSIG {a16} 99 8 00 0 4 -"], "UnsupportedSignature", "{a16}"),
    "expired-signature": (["NEWSIG", "EXPSIG {a16} Alice", "VALIDSIG {a} 2024-05-01 0 0 4 0 22 8 00 {a}"],
                          "BadSignature", "{a}"),
    "bad-signature-names-the-full-fingerprint": (["NEWSIG", "BADSIG {a16} Alice"], "BadSignature", "{a}"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(GPG_STATUS_CASES))
def test_verdict_follows_gpg_status_lines(
    repo: GitRepo, signers: Signers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A stand-in gpg imports Alice's key and then reports the given status lines for the signature."""
    lines, reason, signer = GPG_STATUS_CASES[case]
    a, m = signers.alice.fingerprint, signers.mallory.fingerprint
    names = {"a": a, "m": m, "a16": a[-16:], "m16": m[-16:]}
    sha = commit(repo, "release v1", signers.alice)
    signature, keys = signature_of(repo, sha), keys_of(alice_asc=signers.alice.public_key())
    verify_output = "; ".join(f'echo "[GNUPG:] {line.format(**names)}"' for line in lines)
    _fake_tool(tmp_path / "bin", "gpg", f"""case "$*" in
  *--verify*) {verify_output} ;;
  *) echo "[GNUPG:] IMPORT_OK 1 {a}"; echo "[GNUPG:] IMPORT_RES 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0" ;;
esac""")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    verdict = verify_commit(sha, signature, keys, secret_name=SECRET)

    assert (verdict.ok, verdict.reason, verdict.signer) == (False, reason, signer.format(**names))


def test_verifier_that_hangs_is_stopped(
    repo: GitRepo, signers: Signers, tmp_path: Path, verify_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = commit(repo, "release v1", signers.bob)
    signature = signature_of(repo, sha)
    _fake_tool(tmp_path / "bin", "ssh-keygen", "exec sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(VerifyError) as caught:
        verify_commit(sha, signature, keys_of(bob_pub=signers.bob.public_key()), timeout_seconds=0.5)

    assert (caught.value.reason, caught.value.message) == (
        "VerifierUnavailable",
        "ssh-keygen did not finish within 0.5s",
    )
    assert list(verify_tmp.iterdir()) == []
    assert _processes_mentioning(str(verify_tmp)) == []


def test_missing_verifier_is_an_error_not_a_verdict(
    repo: GitRepo, signers: Signers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = commit(repo, "release v1", signers.alice)
    signature, keys = signature_of(repo, sha), keys_of(alice_asc=signers.alice.public_key())
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(VerifyError) as caught:
        verify_commit(sha, signature, keys)

    assert caught.value.reason == "VerifierUnavailable"
    assert caught.value.message == "gpg is not installed (needed to verify commits)"
