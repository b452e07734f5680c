"""From a pod's spec to what the launcher needs for one container: the environment kubelet would give
(image env, HOSTNAME, the variables of ``envvars``, the node's marker), the command line after ``$(VAR)``
expansion, the bind mounts (with their host mount points prepared) and the working directory."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from kubelet import processes
from kubelet.containers import Launch
from kubelet.envvars import ConfigError, container_environment, service_variables, services_for_pod
from kubelet.expansion import expand, mapping_for
from kubelet.images import command_line, image_config, is_local
from kubelet.mountpoints import MountPoints
from kubelet.nodeapi import NodeAPI

Obj = dict[str, Any]
HOST_IP = "127.0.0.1"


class CreateError(Exception):
    """The runtime cannot create the container (kubelet: CreateContainerError), e.g. no command."""


class ImageError(Exception):
    """The image is not one the node can run (kubelet: ErrImageNeverPull): not a ``local/`` image."""


def hostname(pod: Obj) -> str:
    return str(pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]


def hosts_file(pod: Obj, ip: str) -> str:
    """Kubelet's managed /etc/hosts."""
    return ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
            f"{ip}\t{hostname(pod)}\n")


def with_addresses(pod: Obj, ip: str) -> Obj:
    """The pod as the downward API sees it once it has its addresses."""
    status = {**(pod.get("status") or {}), "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": HOST_IP}
    return {**pod, "status": status}


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class LaunchBuilder:
    def __init__(self, api: NodeAPI, images_dir: Path, mountpoints: MountPoints) -> None:
        self.api = api
        self.images_dir = images_dir
        self.mountpoints = mountpoints

    def environment(self, pod: Obj, container: Obj) -> dict[str, str]:
        """kubelet's variables for ``container`` (raises ConfigError, ApiException)."""
        namespace = pod["metadata"]["namespace"]
        local = self.api.services(namespace)
        master = local if namespace == "default" else self.api.services("default")
        service_env = service_variables(services_for_pod(pod, local, master))
        return container_environment(pod, container, self.api, service_env)

    def build(self, pod: Obj, container: Obj, ip: str, volumes: dict[str, Obj], pod_dir: Path,
              restart: int, held: list[str]) -> Launch:
        """A Launch for one run; mount points it created on the host are appended to ``held``."""
        if not is_local(container.get("image", "")):
            raise ImageError(f'Container image "{container.get("image", "")}" is not present on the local node: '
                             "next to local/ images, only local/ images run")
        view = with_addresses(pod, ip)
        declared = self.environment(view, container)
        image = image_config(container.get("image", ""), self.images_dir)
        lookup = mapping_for(declared)
        argv = command_line(image, [expand(a, lookup) for a in container.get("command") or []],
                            [expand(a, lookup) for a in container.get("args") or []])
        if not argv:
            raise CreateError("no command specified: the image has no default command")
        marker = f"{pod_dir}:{container['name']}:{restart}"
        env = {**image.env, "HOSTNAME": hostname(pod), **declared, processes.MARKER: marker}
        mounts = self.mounts(pod, container, volumes, pod_dir, ip, held)
        cwd = posixpath.normpath(container.get("workingDir") or image.working_dir)
        if not any(_under(cwd, m["target"]) for m in mounts):
            held.extend(self.mountpoints.acquire(cwd, is_dir=True)[1])
        log = pod_dir / "logs" / container["name"] / f"{restart}.log"
        return Launch(argv, env, cwd, mounts, hostname(pod), log)

    def mounts(self, pod: Obj, container: Obj, volumes: dict[str, Obj], pod_dir: Path, ip: str,
               held: list[str]) -> list[Obj]:
        """Bind mounts, parents first; a missing mount point is made inside the enclosing mount's source
        when there is one, else on the host through the MountPoints ledger."""
        mounts: list[Obj] = []
        wanted = sorted(container.get("volumeMounts") or [], key=lambda m: posixpath.normpath(m["mountPath"]))
        for mount in wanted:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise ConfigError(f"volume {mount['name']!r} is not defined in the pod")
            source = volume["path"]
            if mount.get("subPath"):
                source = posixpath.join(source, mount["subPath"])
                if not os.path.exists(source):
                    os.makedirs(source, exist_ok=True)
            target = posixpath.normpath("/" + mount["mountPath"])
            self._prepare(target, os.path.isdir(source), mounts, held)
            mounts.append({"source": source, "target": target,
                           "readOnly": bool(mount.get("readOnly")) or volume["readOnly"]})
        if not any(m["target"] == "/etc/hosts" for m in mounts):
            hosts = pod_dir / "etc-hosts"
            hosts.write_text(hosts_file(pod, ip))
            mounts.append({"source": str(hosts), "target": "/etc/hosts", "readOnly": False})
        return mounts

    def _prepare(self, target: str, is_dir: bool, earlier: list[Obj], held: list[str]) -> None:
        enclosing = [m for m in earlier if _under(target, m["target"]) and m["target"] != target]
        if enclosing:
            parent = max(enclosing, key=lambda m: len(m["target"]))
            inside = posixpath.join(parent["source"], posixpath.relpath(target, parent["target"]))
            if not os.path.lexists(inside):
                if is_dir:
                    os.makedirs(inside, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(inside), exist_ok=True)
                    Path(inside).touch()
            return
        if os.path.lexists(target) and os.path.isdir(target) != is_dir:
            raise ConfigError(f"mount point {target} exists on this machine and is not a "
                              f"{'directory' if is_dir else 'file'}")
        held.extend(self.mountpoints.acquire(target, is_dir)[1])  # counts a use even when it exists
