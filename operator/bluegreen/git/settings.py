"""libgit2's process-wide settings: the SSH homedir (where it finds known_hosts), shared by operations that
need the same one and never waited for (another one runs in a child process), and private files for secrets
handed to it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.git.known_hosts import clean_known_hosts
from bluegreen.git.remote import Remote


class SettingGate:
    """One process-wide setting shared by operations that need the same value. It never makes anyone wait.

    The first holder of a value runs ``setup`` (which returns its cleanup); the last one to leave runs the
    cleanup. Operations needing the value currently held join the holders; one needing another value is
    refused at once (``hold`` yields False) and runs where the setting is its own: a child process
    (``bluegreen.git.isolated``). So a holder that hangs on a silent server (up to the network timeout)
    delays nobody, whatever value they need.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: str | None = None
        self._holders = 0
        self._cleanup: Callable[[], None] | None = None

    @contextlib.contextmanager
    def hold(self, key: str, setup: Callable[[], Callable[[], None]]) -> Iterator[bool]:
        """Yield True while the setting has the value named ``key``; False (at once) when it holds another."""
        with self._lock:
            held = self._holders == 0 or self._key == key
            if held:
                if self._holders == 0:
                    self._cleanup = setup()
                    self._key = key
                self._holders += 1
        try:
            yield held
        finally:
            if held:
                self._release()

    def _release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders:
                return
            cleanup, self._cleanup, self._key = self._cleanup, None, None
        if cleanup is not None:
            cleanup()


HOMEDIR = SettingGate()
"""Guards ``pygit2.settings.homedir``, where libgit2 finds ``.ssh/known_hosts``."""


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    """A fresh 0700 temporary directory, removed with everything in it afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by the owner only (0600) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ssh_home(known_hosts: bytes, remote: Remote) -> Callable[[], None]:
    """Point libgit2's homedir at a new private directory holding ``known_hosts``; return its cleanup."""
    home = Path(tempfile.mkdtemp(prefix="bluegreen-ssh-"))
    try:
        (home / ".ssh").mkdir(mode=0o700)
        write_private(home / ".ssh" / "known_hosts", known_hosts)
        pygit2.settings.homedir = str(home)
    except (OSError, pygit2.GitError) as exc:
        shutil.rmtree(home, ignore_errors=True)
        raise SourceError("FetchFailed", f"Cannot prepare known_hosts for {remote.display}: {exc}.") from None
    return lambda: shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def transport_settings(remote: Remote, credentials: Credentials | None) -> Iterator[bool]:
    """Hold the process-wide settings this operation depends on (the SSH homedir) while it runs; yields False
    (at once) when another operation holds them with another value: then run it in a child process."""
    if remote.scheme != "ssh" or credentials is None or credentials.known_hosts is None:
        yield True
        return
    known_hosts = clean_known_hosts(credentials.known_hosts)
    with HOMEDIR.hold(hashlib.sha256(known_hosts).hexdigest(), lambda: ssh_home(known_hosts, remote)) as held:
        yield held


def millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))
