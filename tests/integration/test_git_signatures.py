"""GitSource.signature: the ``gpgsig`` signature and signed payload of commits signed by the git CLI.

The pair is checked with the signers' own tools (``ssh-keygen -Y verify``, ``gpg --verify``), so a wrong
payload (one byte off) fails the test. gpg runs in a throw-away home whose agent is stopped afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git.source import GitSource

if TYPE_CHECKING:
    from conftest import GitRepo

pytestmark = pytest.mark.integration

MAIN = GitRef("branch", "main")
SIGNER = "signer@example.com"


def run(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), input=stdin, capture_output=True, env=env, check=False)


@pytest.fixture
def repo(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("signed")
    repo.commit("unsigned base", {"a.txt": b"a\n"})
    return repo


@pytest.fixture
def gnupg_home(tmp_path: Path) -> Iterator[Path]:
    """An empty GnuPG home; its agent (started by gpg on demand) is stopped afterwards."""
    if shutil.which("gpg") is None:
        pytest.fail("gpg is missing: run tests/servers/install-deps.sh")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    yield home
    run("gpgconf", "--homedir", str(home), "--kill", "all")


def signed_commit(repo: GitRepo, *config: str, env: dict[str, str] | None = None) -> str:
    repo.write("b.txt", b"signed change\n")
    settings = [arg for item in config for arg in ("-c", item)]
    repo.git(*settings, "commit", "--quiet", "-S", "-m", "signed", env=env)
    return repo.head()


def test_unsigned_commit_has_no_signature(source: GitSource, repo: GitRepo) -> None:
    sha = source.fetch(repo.url, MAIN).sha
    assert source.signature(repo.url, sha) is None


def test_ssh_signature_and_payload_verify(source: GitSource, repo: GitRepo, tmp_path: Path) -> None:
    key = tmp_path / "signing-key"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", SIGNER, "-f", str(key)).check_returncode()
    sha = signed_commit(repo, "gpg.format=ssh", f"user.signingkey={key}")
    source.fetch(repo.url, MAIN)

    found = source.signature(repo.url, sha[:12])
    assert found is not None
    signature, payload = found
    assert signature.startswith(b"-----BEGIN SSH SIGNATURE-----")
    assert payload.startswith(b"tree ") and b"gpgsig" not in payload and payload.endswith(b"signed\n")

    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'{SIGNER} namespaces="git" {key.with_suffix(".pub").read_text()}')
    (tmp_path / "sig").write_bytes(signature)
    verify = ("ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", SIGNER, "-n", "git", "-s", str(tmp_path / "sig"))
    assert run(*verify, stdin=payload).returncode == 0
    assert run(*verify, stdin=payload.replace(b"signed", b"signeD")).returncode != 0


def test_openpgp_signature_and_payload_verify(
    source: GitSource, repo: GitRepo, gnupg_home: Path, tmp_path: Path
) -> None:
    env = {"GNUPGHOME": str(gnupg_home), "PATH": "/usr/bin:/bin"}
    made = run("gpg", "--batch", "--passphrase", "", "--quick-gen-key", SIGNER, "ed25519", "sign", "1d", env=env)
    assert made.returncode == 0, made.stderr
    sha = signed_commit(repo, "gpg.format=openpgp", f"user.signingkey={SIGNER}", env=env)
    source.fetch(repo.url, MAIN)

    found = source.signature(repo.url, sha)
    assert found is not None
    signature, payload = found
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    sig_file, payload_file = tmp_path / "sig.asc", tmp_path / "payload"
    sig_file.write_bytes(signature)
    payload_file.write_bytes(payload)
    assert run("gpg", "--batch", "--verify", str(sig_file), str(payload_file), env=env).returncode == 0
    payload_file.write_bytes(payload + b"\n")
    assert run("gpg", "--batch", "--verify", str(sig_file), str(payload_file), env=env).returncode != 0


def test_signature_of_a_commit_not_in_the_mirror(source: GitSource, repo: GitRepo) -> None:
    with pytest.raises(SourceError) as caught:
        source.signature(repo.url, repo.head())
    assert caught.value.reason == "RefNotFound"
    with pytest.raises(SourceError) as caught:
        source.signature(repo.url, "not-hex")
    assert caught.value.reason == "InvalidRef"
