"""Fixtures for integration tests against real git repositories made with the ``git`` CLI in tmp dirs.

The repositories are built with the git command line, not with pygit2, so the code under test and the
fixtures do not share an implementation. Identity and dates come from the environment, so no global git
configuration is read or needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from bluegreen.gitsource import GitSource

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
        pytest.skip("the git command line is needed to build test repositories")


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
