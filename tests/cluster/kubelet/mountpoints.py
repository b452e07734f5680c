"""Mount points that do not exist on the host.

A bind mount needs an existing directory (or file, for a ``subPath`` file) to mount on, and creating one
inside a private mount namespace still creates it on the shared filesystem. So the node creates the
missing path components itself, counts the pods using each, records them in a ledger file in the state
dir, and removes what it created (deepest first, only if still empty) once no pod of this node uses it and
no mount namespace on the machine mounts anything there. ``sweep`` does the same for everything in the
ledger: at simnode start and at ``controlplane.py down``, after the pod processes were reaped. Only the
standard library is used (``down`` imports this).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import threading
from pathlib import Path


def resolve(path: str) -> tuple[str, list[str]]:
    """(the longest existing prefix of ``path`` with its symlinks resolved, the components missing after it)."""
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    existing = "/"
    for index, part in enumerate(parts):
        candidate = posixpath.join(existing, part)
        if not os.path.lexists(candidate):
            return os.path.realpath(existing), parts[index:]
        existing = candidate
    return os.path.realpath(existing), []


def mounted_elsewhere(path: str) -> bool:
    """Whether any other mount namespace on this machine has a mount at or under ``path``."""
    own = os.readlink("/proc/self/ns/mnt")
    seen = {own}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{entry.name}/ns/mnt")
            if ns in seen:
                continue
            seen.add(ns)
            with open(f"/proc/{entry.name}/mountinfo") as info:
                for line in info:
                    point = line.split()[4].encode().decode("unicode_escape")
                    if point == path or point.startswith(path + "/"):
                        return True
        except OSError:
            continue
    return False


class MountPoints:
    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.lock = threading.Lock()
        self.users: dict[str, int] = {}
        self.created: list[str] = self._load()

    def _load(self) -> list[str]:
        try:
            return list(json.loads(self.ledger.read_text()))
        except (OSError, ValueError):
            return []

    def _save(self) -> None:
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.ledger.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.created))
        tmp.replace(self.ledger)

    def acquire(self, path: str, is_dir: bool) -> tuple[str, list[str]]:
        """Make sure ``path`` exists on the host; return (host path, the created paths this use holds)."""
        with self.lock:
            base, missing = resolve(path)
            chain = [posixpath.join(base, *missing[: i + 1]) for i in range(len(missing))]
            target = chain[-1] if chain else base
            for index, component in enumerate(chain):
                self.created.append(component)
                self._save()
                if index < len(chain) - 1 or is_dir:
                    os.mkdir(component)
                else:
                    Path(component).touch()
            held = [c for c in self.created if target == c or target.startswith(c + "/")]
            for component in held:
                self.users[component] = self.users.get(component, 0) + 1
            return target, held

    def release(self, held: list[str]) -> None:
        """A pod no longer uses these: remove those nobody uses any more."""
        with self.lock:
            for component in held:
                self.users[component] = self.users.get(component, 1) - 1
            unused = [c for c in held if self.users.get(c, 0) <= 0]
            self._remove(unused)

    def sweep(self) -> None:
        """Remove every recorded path no pod of this node uses (all of them at start and at down)."""
        with self.lock:
            self._remove([c for c in self.created if self.users.get(c, 0) <= 0])

    def _remove(self, paths: list[str]) -> None:
        for component in sorted(set(paths), key=len, reverse=True):
            if mounted_elsewhere(component):
                continue
            with contextlib.suppress(FileNotFoundError):
                try:
                    if os.path.isdir(component) and not os.path.islink(component):
                        os.rmdir(component)
                    elif os.path.getsize(component) == 0:
                        os.unlink(component)
                    else:
                        continue
                except OSError:  # not empty: something else put files there; leave it recorded
                    continue
            self.users.pop(component, None)
            self.created = [c for c in self.created if c != component]
        self._save()
