"""The local node's files on disk: mount points it creates and removes, and atomically written volumes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubelet.mountpoints import MountPoints
from kubelet.volumes import volume_files, write_atomic


def test_created_mount_points_are_counted_and_removed_when_unused(tmp_path: Path) -> None:
    ledger = tmp_path / "state" / "mountpoints.json"
    points = MountPoints(ledger)
    target, held_a = points.acquire(str(tmp_path / "etc" / "app" / "config"), is_dir=True)
    assert target == str(tmp_path / "etc" / "app" / "config") and os.path.isdir(target)
    assert held_a == [str(tmp_path / "etc"), str(tmp_path / "etc" / "app"), target]
    assert json.loads(ledger.read_text()) == held_a
    _, held_b = points.acquire(str(tmp_path / "etc" / "app" / "secret"), is_dir=True)
    assert held_b == [str(tmp_path / "etc"), str(tmp_path / "etc" / "app"), str(tmp_path / "etc" / "app" / "secret")]
    points.release(held_a)
    assert not os.path.exists(target) and (tmp_path / "etc" / "app" / "secret").is_dir(), "b still uses etc/app"
    points.release(held_b)
    assert not (tmp_path / "etc").exists()
    assert json.loads(ledger.read_text()) == []


def test_existing_paths_are_never_removed_and_files_are_made_for_file_mounts(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    points = MountPoints(tmp_path / "ledger.json")
    _, held = points.acquire(str(tmp_path / "keep"), is_dir=True)
    assert held == []
    target, held = points.acquire(str(tmp_path / "keep" / "file.conf"), is_dir=False)
    assert os.path.isfile(target) and os.path.getsize(target) == 0
    points.release(held)
    assert (tmp_path / "keep").is_dir() and not os.path.exists(target)


def test_sweep_removes_what_a_previous_run_recorded_but_not_what_got_content(tmp_path: Path) -> None:
    first = MountPoints(tmp_path / "ledger.json")
    first.acquire(str(tmp_path / "a" / "b"), is_dir=True)
    first.acquire(str(tmp_path / "c"), is_dir=True)
    (tmp_path / "c" / "somebody's file").write_text("x")
    MountPoints(tmp_path / "ledger.json").sweep()  # a new run: nobody uses anything
    assert not (tmp_path / "a").exists()
    assert (tmp_path / "c").exists(), "not empty: left alone"
    assert json.loads((tmp_path / "ledger.json").read_text()) == [str(tmp_path / "c")]


def test_write_atomic_publishes_through_data_links(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    write_atomic(volume, {"a.txt": (b"one", 0o644), "dir/b.txt": (b"two", 0o600)})
    assert (volume / "a.txt").read_text() == "one" and (volume / "dir" / "b.txt").read_text() == "two"
    assert os.readlink(volume / "a.txt") == "..data/a.txt"
    assert oct((volume / "dir" / "b.txt").stat().st_mode & 0o777) == "0o600"
    write_atomic(volume, {"a.txt": (b"uno", 0o644)})
    assert (volume / "a.txt").read_text() == "uno" and not (volume / "dir").exists()
    assert len([p for p in volume.iterdir() if p.name.startswith("..2")]) == 1, "the old payload is removed"


class Sources:
    def config_map_bytes(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return {"k1": b"v1", "k2": b"v2"} if name == "cm" else None

    def secret_bytes(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return {"token": b"t"} if name == "sec" else None

    def token(self, pod: dict, audience: str | None, expiration: int) -> str:  # type: ignore[type-arg]
        return f"jwt-for-{pod['metadata']['name']}-{audience}-{expiration}"


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
       "spec": {"containers": [{"name": "c"}]}, "status": {}}


def test_volume_files() -> None:
    sources = Sources()
    items = {"configMap": {"name": "cm", "items": [{"key": "k2", "path": "sub/two", "mode": 0o400}]}}
    assert volume_files(POD, items, sources) == {"sub/two": (b"v2", 0o400)}
    assert volume_files(POD, {"secret": {"secretName": "sec"}}, sources) == {"token": (b"t", 0o644)}
    assert volume_files(POD, {"configMap": {"name": "gone", "optional": True}}, sources) == {}
    projected = {"projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "token", "audience": "api", "expirationSeconds": 600}},
        {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"secret": {"name": "sec", "items": [{"key": "token", "path": "secret-token"}]}}]}}
    assert volume_files(POD, projected, sources) == {
        "token": (b"jwt-for-p-api-600", 0o440), "labels": (b'app="x"', 0o440), "secret-token": (b"t", 0o440)}


def test_missing_sources_are_volume_errors() -> None:
    import pytest
    from kubelet.volumes import VolumeError

    with pytest.raises(VolumeError, match='configmap "gone" not found'):
        volume_files(POD, {"configMap": {"name": "gone"}}, Sources())
    with pytest.raises(VolumeError, match="non-existent key: nope"):
        volume_files(POD, {"configMap": {"name": "cm", "items": [{"key": "nope", "path": "x"}]}}, Sources())
