"""Fixtures for integration tests against real git repositories made with the ``git`` CLI in tmp dirs.

The repositories are built with the git command line, not with pygit2, so the code under test and the
fixtures do not share an implementation. Identity and dates come from the environment, so no global git
configuration is read or needed.

Real git servers on loopback (``tests/servers/gitservers.py``: sshd, git http-backend behind HTTPS, git
daemon) serve bare copies of such repositories; each server fixture stops its server afterwards and fails
if any process it started is left. Their packages come from ``tests/servers/install-deps.sh``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from bluegreen.git.source import GitSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import gitservers

BASE_TIME = 1_714_557_600  # 2024-05-01T10:00:00Z
DEFAULT_AUTHOR = ("Alice Example", "alice@example.com")


class GitRepo:
    """A non-bare repository with a work tree, driven through the ``git`` CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._clock = BASE_TIME
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run ``git args...`` in the work tree and return its stripped stdout."""
        full_env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": DEFAULT_AUTHOR[0],
            "GIT_AUTHOR_EMAIL": DEFAULT_AUTHOR[1],
            "GIT_COMMITTER_NAME": "Committer Bot",
            "GIT_COMMITTER_EMAIL": "bot@example.com",
            "GIT_AUTHOR_DATE": f"@{self._clock} +0000",
            "GIT_COMMITTER_DATE": f"@{self._clock} +0000",
            **(env or {}),
        }
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=full_env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    @property
    def url(self) -> str:
        """The repository as a plain absolute local path."""
        return str(self.path)

    def write(self, relpath: str, content: bytes) -> None:
        """Write a file in the work tree and stage it."""
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        self.git("add", "--", relpath)

    def symlink(self, relpath: str, target: str) -> None:
        """Create a symbolic link in the work tree and stage it."""
        link = self.path / relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        self.git("add", "--", relpath)

    def commit(
        self,
        message: str,
        files: Mapping[str, bytes] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Write ``files``, commit all staged changes a minute after the last commit, return the sha."""
        for relpath, content in (files or {}).items():
            self.write(relpath, content)
        self._clock += 60
        self.git("commit", "--quiet", "--allow-empty", "-m", message, env=env)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        """Full sha of ``rev``."""
        return self.git("rev-parse", f"{rev}^{{commit}}")


@pytest.fixture(autouse=True)
def _require_git_cli() -> None:
    if shutil.which("git") is None:
        pytest.fail("the git command line is needed to build test repositories (Debian package git)")


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    """Factory: an empty repository in ``tmp_path/<name>``."""

    def make(name: str) -> GitRepo:
        return GitRepo(tmp_path / name)

    return make


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """Where mirrors go."""
    return tmp_path / "cache"


@pytest.fixture
def source(cache_dir: Path) -> GitSource:
    """A GitSource with a short network timeout."""
    return GitSource(cache_dir, timeout_seconds=5.0)


# --- real servers on loopback -------------------------------------------------------------------------------

SERVER_TOOLS = ("sshd", "ssh-keygen", "ssh-keyscan", "openssl", "git")


@pytest.fixture(scope="session", autouse=True)
def _no_server_left() -> Iterator[None]:
    """After the session, no process of any server started by these fixtures may be running."""
    yield
    left = gitservers.leftover_groups()
    assert not left, f"server process groups left running: {left}"


@pytest.fixture(scope="session")
def _server_tools() -> None:
    """The programs the servers need; missing ones fail the test (run tests/servers/install-deps.sh)."""
    missing = [t for t in SERVER_TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run tests/servers/install-deps.sh")


@dataclass(frozen=True)
class SshKeys:
    """Client keys: ``client`` is authorized on every SSH server, ``other`` nowhere, ``protected`` has a
    passphrase (``gitservers.PASSPHRASE``) and is authorized too."""

    client: gitservers.SshKey
    other: gitservers.SshKey
    protected: gitservers.SshKey


@pytest.fixture(scope="session")
def ssh_keys(_server_tools: None, tmp_path_factory: pytest.TempPathFactory) -> SshKeys:
    base = tmp_path_factory.mktemp("ssh-keys")
    return SshKeys(
        client=gitservers.SshKey.generate(base / "client", "client"),
        other=gitservers.SshKey.generate(base / "other", "other"),
        protected=gitservers.SshKey.generate(base / "protected", "protected", passphrase=gitservers.PASSPHRASE),
    )


@dataclass(frozen=True)
class Tls:
    """``ca`` signs ``server``; ``other_ca`` signs nothing used here; ``self_signed`` is its own issuer."""

    ca: gitservers.TlsFiles
    other_ca: gitservers.TlsFiles
    server: gitservers.TlsFiles
    self_signed: gitservers.TlsFiles


@pytest.fixture(scope="session")
def tls(_server_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Tls:
    base = tmp_path_factory.mktemp("tls")
    ca = gitservers.make_ca(base, "test-ca")
    return Tls(
        ca=ca,
        other_ca=gitservers.make_ca(base, "other-ca"),
        server=gitservers.issue_server_cert(base, "server", ca),
        self_signed=gitservers.issue_server_cert(base, "self-signed", None),
    )


@dataclass(frozen=True)
class Served:
    """The directory of bare repositories that every server of one test serves."""

    root: Path

    def publish(self, name: str, repo: GitRepo) -> Path:
        """Serve a bare copy of ``repo`` as ``name``."""
        return gitservers.publish(self.root, name, repo.path)

    def push(self, name: str, repo: GitRepo) -> None:
        """Mirror ``repo``'s branches and tags (force, prune) into the served ``name``."""
        gitservers.push(repo.path, self.root / name)

    def delete(self, name: str) -> None:
        shutil.rmtree(self.root / name)


@pytest.fixture
def served(tmp_path: Path) -> Served:
    root = tmp_path / "served"
    root.mkdir()
    return Served(root)


@pytest.fixture
def ssh_server(
    _server_tools: None, tmp_path: Path, served: Served, ssh_keys: SshKeys
) -> Iterator[gitservers.SshServer]:
    """sshd on loopback serving ``served`` to the ``client`` and ``protected`` keys."""
    server = gitservers.SshServer(tmp_path / "sshd", served.root, [ssh_keys.client, ssh_keys.protected])
    yield server
    server.stop()


@pytest.fixture
def https_server(_server_tools: None, served: Served, tls: Tls) -> Iterator[gitservers.HttpsGitServer]:
    """git http-backend behind HTTPS (certificate by ``tls.ca``), basic auth and a bearer token."""
    users = {gitservers.HTTP_USER: gitservers.HTTP_PASSWORD}
    auth = gitservers.HttpAuth(users=users, tokens={gitservers.HTTP_TOKEN})
    server = gitservers.HttpsGitServer(served.root, tls.server, auth)
    yield server
    server.stop()


@pytest.fixture
def git_daemon(_server_tools: None, tmp_path: Path, served: Served) -> Iterator[gitservers.GitDaemon]:
    """git daemon on loopback exporting ``served``."""
    daemon = gitservers.GitDaemon(tmp_path / "daemon", served.root)
    yield daemon
    daemon.stop()
