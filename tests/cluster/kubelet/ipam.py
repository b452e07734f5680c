"""Pod IPs: one loopback address per pod from the pod CIDR (default 127.244.0.0/16, flag ``--pod-cidr`` or
``BLUEGREEN_POD_CIDR``). All of 127.0.0.0/8 is routed to ``lo``, so every pod can listen on its own address
and many pods on the same port. IPs of pods that still exist are never reused."""

from __future__ import annotations

import ipaddress
import threading

DEFAULT_POD_CIDR = "127.244.0.0/16"


class IPAllocator:
    def __init__(self, cidr: str = DEFAULT_POD_CIDR) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._hosts = self.network.hosts()
        self._in_use: dict[str, str] = {}  # ip -> pod uid
        self._free: list[str] = []
        self._lock = threading.Lock()

    def claim(self, ip: str, uid: str) -> None:
        with self._lock:
            self._in_use[ip] = uid

    def allocate(self, uid: str) -> str:
        """A fresh address while the range lasts (like a real IPAM, recently freed IPs are reused last)."""
        with self._lock:
            while True:
                fresh = next(self._hosts, None)
                ip = str(fresh) if fresh is not None else self._free.pop()
                if ip not in self._in_use:
                    self._in_use[ip] = uid
                    return ip

    def release_uid(self, uid: str) -> None:
        with self._lock:
            for ip, owner in list(self._in_use.items()):
                if owner == uid:
                    del self._in_use[ip]
                    self._free.insert(0, ip)
