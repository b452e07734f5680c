"""Run a command inside an unpacked image root filesystem the way a container runtime with
``readOnlyRootFilesystem: true`` would: the root filesystem mounted read-only, only the given volumes
writable, ``/tmp`` a fresh tmpfs, ``/proc`` and ``/dev`` provided, as the given uid:gid, with exactly the
given environment (nothing inherited). Uses a private mount namespace (``unshare --mount``) and ``chroot``
of the host, so nothing of the image (no shell) is needed to get there. Needs root. Standard library only.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Bind:
    """Host path ``source`` mounted at ``target`` (a path inside the image, which must exist there)."""

    source: Path
    target: str
    writable: bool = False


def command(rootfs: Path, argv: Sequence[str], *, env: Mapping[str, str], user: str = "65532:65532",
            binds: Sequence[Bind] = (), tmpfs: Sequence[str] = ("/tmp",)) -> list[str]:
    """The host command line that runs ``argv`` inside ``rootfs``."""
    root = str(rootfs.resolve())
    q = shlex.quote
    steps = [
        f"mount --bind {q(root)} {q(root)}",
        f"mount -o remount,bind,ro {q(root)}",
        f"mount -t proc -o nosuid,nodev,noexec proc {q(root + '/proc')}",
        f"mount --rbind /dev {q(root + '/dev')}",
    ]
    for path in tmpfs:
        steps.append(f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {q(root + path)}")
    for bind in binds:
        target = q(root + bind.target)
        steps.append(f"mount --bind {q(str(bind.source))} {target}")
        if not bind.writable:
            steps.append(f"mount -o remount,bind,ro {target}")
    uid, _, gid = user.partition(":")
    gid = gid or uid
    assignments = " ".join(q(f"{key}={value}") for key, value in env.items())
    steps.append(f"exec env -i {assignments} chroot --userspec={q(uid)}:{q(gid)} --groups={q(gid)} {q(root)} "
                 + " ".join(q(arg) for arg in argv))
    return ["unshare", "--mount", "--propagation", "private", "--", "bash", "-euc", "\n".join(steps)]


def popen(rootfs: Path, argv: Sequence[str], *, env: Mapping[str, str], user: str = "65532:65532",
          binds: Sequence[Bind] = (), tmpfs: Sequence[str] = ("/tmp",), **kwargs: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` in ``rootfs``; the process is the command itself (every step ``exec``s)."""
    return subprocess.Popen(command(rootfs, argv, env=env, user=user, binds=binds, tmpfs=tmpfs), **kwargs)


def run(rootfs: Path, argv: Sequence[str], *, env: Mapping[str, str], user: str = "65532:65532",
        binds: Sequence[Bind] = (), tmpfs: Sequence[str] = ("/tmp",),
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` in ``rootfs`` to completion (``subprocess.run`` keyword arguments pass through)."""
    return subprocess.run(command(rootfs, argv, env=env, user=user, binds=binds, tmpfs=tmpfs), **kwargs)
