"""A pod's volumes, written where its containers will see them (bind-mounted by ``launcher.py``).

Each volume is a directory ``<pod dir>/volumes/<name>``. ConfigMap, Secret, downward API and projected
volumes are written like kubelet's atomic writer does: the files live in a timestamped ``..<time>``
directory, ``..data`` links to it, and each top-level name links into ``..data`` (so ``ls -la`` shows what
it shows in a real pod). Modes follow ``defaultMode``/``mode`` (default 0644). ``serviceAccountToken``
sources are requested with the TokenRequest API as the node, bound to the pod. ``emptyDir`` is an empty
directory (0777); ``hostPath`` is the host's path itself. Other volume types raise :class:`VolumeError`:
the pod then stays ``ContainerCreating`` with the error as its message.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from kubelet.envvars import ConfigError, field_value, resource_value

Obj = dict[str, Any]
Files = dict[str, tuple[bytes, int]]
API_DATA = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(Exception):
    """A volume cannot be set up (kubelet reports FailedMount and retries)."""


class VolumeSources(Protocol):
    def config_map_bytes(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def secret_bytes(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def token(self, pod: Obj, audience: str | None, expiration: int) -> str: ...


def write_atomic(directory: Path, files: Files) -> None:
    """Publish ``files`` (relative path -> (content, mode)) in ``directory`` in one rename."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 10**9:09d}"
    stamp.mkdir()
    for rel, (content, mode) in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    link = directory / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(stamp.name)
    link.replace(directory / "..data")
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        entry = directory / top
        if not entry.is_symlink():
            entry.symlink_to(f"..data/{top}")
    for old in directory.iterdir():
        if old.name.startswith("..") and old.name not in ("..data", stamp.name) and old.is_dir():
            shutil.rmtree(old)
        elif not old.name.startswith("..") and old.name not in tops:
            old.unlink()


def _keyed(kind: str, source: Obj, data: dict[str, bytes] | None, default_mode: int) -> Files:
    """ConfigMap/Secret data as files: every key, or only ``items`` (key -> path, mode)."""
    name = source.get("name") or source.get("secretName") or ""
    if data is None:
        if source.get("optional"):
            return {}
        raise VolumeError(f'{kind} "{name}" not found')
    items = source.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    files: Files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"{kind} {name} references non-existent key: {item['key']}")
        files[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return files


def _downward(pod: Obj, items: list[Obj], default_mode: int) -> Files:
    files: Files = {}
    for item in items:
        try:
            if item.get("fieldRef"):
                value = field_value(pod, item["fieldRef"]["fieldPath"])
            else:
                ref = item["resourceFieldRef"]
                value = resource_value(pod, ref.get("containerName") or pod["spec"]["containers"][0]["name"], ref)
        except ConfigError as exc:
            raise VolumeError(str(exc)) from exc
        files[item["path"]] = (value.encode(), item.get("mode", default_mode))
    return files


def volume_files(pod: Obj, volume: Obj, api: VolumeSources) -> Files:
    """The files of one API-data volume (configMap, secret, downwardAPI or projected)."""
    namespace = pod["metadata"]["namespace"]
    if "configMap" in volume:
        source = volume["configMap"]
        mode = source.get("defaultMode", 0o644)
        return _keyed("configmap", source, api.config_map_bytes(namespace, source["name"]), mode)
    if "secret" in volume:
        source = volume["secret"]
        mode = source.get("defaultMode", 0o644)
        return _keyed("secret", source, api.secret_bytes(namespace, source["secretName"]), mode)
    if "downwardAPI" in volume:
        source = volume["downwardAPI"]
        return _downward(pod, source.get("items") or [], source.get("defaultMode", 0o644))
    projected = volume["projected"]
    mode = projected.get("defaultMode", 0o644)
    files: Files = {}
    for source in projected.get("sources") or []:
        if "configMap" in source:
            ref = source["configMap"]
            files |= _keyed("configmap", ref, api.config_map_bytes(namespace, ref["name"]), mode)
        elif "secret" in source:
            ref = source["secret"]
            files |= _keyed("secret", ref, api.secret_bytes(namespace, ref["name"]), mode)
        elif "downwardAPI" in source:
            files |= _downward(pod, source["downwardAPI"].get("items") or [], mode)
        elif "serviceAccountToken" in source:
            ref = source["serviceAccountToken"]
            token = api.token(pod, ref.get("audience"), int(ref.get("expirationSeconds") or 3600))
            files[ref["path"]] = (token.encode(), mode)
    return files


def set_up(pod: Obj, pod_dir: Path, api: VolumeSources) -> dict[str, Obj]:
    """Write every volume of the pod; return name -> {"path": host path, "readOnly": API data or not}."""
    out: dict[str, Obj] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        directory = pod_dir / "volumes" / name
        if any(kind in volume for kind in API_DATA):
            write_atomic(directory, volume_files(pod, volume, api))
            out[name] = {"path": str(directory), "readOnly": True}
        elif "emptyDir" in volume:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o777)
            out[name] = {"path": str(directory), "readOnly": False}
        elif "hostPath" in volume:
            path = volume["hostPath"]["path"]
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                os.makedirs(path, exist_ok=True)
            if not os.path.exists(path):
                raise VolumeError(f"hostPath {path} does not exist")
            out[name] = {"path": path, "readOnly": False}
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(f"volume {name}: type {kinds} is not supported by the local node")
    return out
