"""Leave nothing behind: kill every process of this node's pods (found by their marker variable, so also
what escaped its process group) and remove the mount points the node created on the host. Run at simnode
start and stop, and by ``controlplane.py down`` (standard library only)."""

from __future__ import annotations

import shutil
from pathlib import Path

from kubelet.mountpoints import MountPoints
from kubelet.processes import reap


def node_dir(state_dir: Path) -> Path:
    return state_dir / "node"


def clean_node(state_dir: Path, remove_pods: bool = False) -> int:
    """Reap the pod processes and sweep the mount points; returns how many processes were killed."""
    pods = node_dir(state_dir) / "pods"
    killed = reap(f"{pods.resolve()}/")
    MountPoints(node_dir(state_dir) / "mountpoints.json").sweep()
    if remove_pods:
        shutil.rmtree(pods, ignore_errors=True)
    return killed
