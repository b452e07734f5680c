"""A kube-proxy stand-in for the local control plane: every Service answers at ``spec.clusterIP:port``.

The Service CIDR of the local control plane is a loopback range (default 127.96.0.0/16), so each ClusterIP
is an address of this machine. This process lists and watches Services and EndpointSlices (the API
kube-proxy v1.20 follows; Endpoints cannot hold loopback addresses, EndpointSlices can) with the
``system:kube-proxy`` identity, and for every TCP port of every Service with a ClusterIP listens on
``clusterIP:port`` while the port has at least one ready endpoint. Each new connection is relayed to one
of the ready endpoints (round-robin) at the endpoint port whose name is the Service port's name. With no
ready endpoint the address is not listened on, so a connect is refused at once, as kube-proxy's REJECT
rule does. Watch events are applied to the table as they arrive; connections already open stay with their
backend. When a watch cannot resume (410 Gone, or any error) the resource is listed again.

Run: ``python serviceproxy.py --kubeconfig proxy.kubeconfig``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from proxyrelay import Listener, RelayStats
from proxytable import ObjKey, ServiceTable

log = logging.getLogger("serviceproxy")

WATCH_SECONDS = 300
RETRY_SECONDS = 0.5
RESYNC_SECONDS = 10.0  # listeners that could not be opened are retried this often
STATS_SECONDS = 60.0
SERVICES = "/api/v1/services"
ENDPOINT_SLICES = "/apis/discovery.k8s.io/v1beta1/endpointslices"

Obj = dict[str, Any]


class WatchGone(Exception):
    """The watch cannot resume from its resourceVersion: list again."""


class ApiClient:
    """Just enough of an API client: GET a list, stream a watch, authenticated by a kubeconfig's token."""

    def __init__(self, kubeconfig: Path) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in doc["contexts"] if c["name"] == doc["current-context"])
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        self.ssl = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
        self.headers = {"Authorization": f"Bearer {user['token']}", "Accept": "application/json"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self.session = aiohttp.ClientSession(
            headers=self.headers, connector=aiohttp.TCPConnector(ssl=self.ssl, limit=8)
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def list(self, path: str) -> Obj:
        assert self.session is not None
        async with self.session.get(self.server + path, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            resp.raise_for_status()
            result: Obj = await resp.json()
            return result

    async def watch(self, path: str, version: str) -> AsyncIterator[Obj]:
        """The events of one watch request, from ``version`` on, until the server ends it."""
        assert self.session is not None
        params = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=WATCH_SECONDS + 30)
        async with self.session.get(self.server + path, params=params, timeout=timeout) as resp:
            if resp.status == 410:
                raise WatchGone(f"{path}: 410 Gone")
            resp.raise_for_status()
            pending = bytearray()
            async for chunk in resp.content.iter_any():
                pending += chunk
                while (end := pending.find(b"\n")) >= 0:
                    line = bytes(pending[:end])
                    del pending[: end + 1]
                    if line.strip():
                        yield json.loads(line)


async def list_and_watch(
    api: ApiClient,
    path: str,
    replace: Callable[[list[Obj]], None],
    apply: Callable[[str, Obj], None],
    stopping: asyncio.Event,
) -> None:
    """Keep ``apply``ing the events of ``path``; ``replace`` with a fresh listing whenever a watch can't resume."""
    while not stopping.is_set():
        try:
            listing = await api.list(path)
            replace(listing["items"])
            version = listing["metadata"]["resourceVersion"]
            while not stopping.is_set():
                async for event in api.watch(path, version):
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        raise WatchGone(f"{path}: {obj.get('code')} {obj.get('message')}")
                    version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        apply(kind, obj)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a new listing brings the truth, whatever went wrong
            if not stopping.is_set():
                log.warning("%s: watch restarting with a new list: %s", path, exc)
                await asyncio.sleep(RETRY_SECONDS)


class ServiceProxy:
    """The table of Services and EndpointSlices, and the listeners derived from it."""

    def __init__(self) -> None:
        self.table = ServiceTable()
        self.stats = RelayStats()
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.owners: dict[tuple[str, int], ObjKey] = {}  # the Service each listener serves
        self.dirty: set[ObjKey] = set()  # Services whose listeners may have to change
        self.failed: set[ObjKey] = set()  # Services with a listener that could not be opened: retried
        self.wake = asyncio.Event()

    # ---- the watches feed these ------------------------------------------------------------------
    def changed(self, services: Iterable[ObjKey]) -> None:
        self.dirty.update(services)
        self.wake.set()

    def replace_services(self, items: list[Obj]) -> None:
        self.changed(self.table.replace_services(items))
        log.info("listed %d services", len(items))

    def replace_slices(self, items: list[Obj]) -> None:
        self.changed(self.table.replace_slices(items))
        log.info("listed %d endpointslices", len(items))

    def apply_service(self, kind: str, obj: Obj) -> None:
        self.changed(self.table.apply_service(kind, obj))

    def apply_slice(self, kind: str, obj: Obj) -> None:
        self.changed(self.table.apply_slice(kind, obj))

    # ---- listeners -------------------------------------------------------------------------------
    async def reconcile_forever(self, stopping: asyncio.Event) -> None:
        """Bring the listeners of every changed Service in line, one Service at a time."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), RESYNC_SECONDS)
            self.wake.clear()
            services, self.dirty = self.dirty | self.failed, set()
            self.failed = set()
            for service in sorted(services):
                await self.reconcile(service)

    async def reconcile(self, service: ObjKey) -> None:
        """Make one Service's listeners match its routes: open, re-point or close them."""
        wanted = {r.address: r for r in self.table.routes(service) if r.backends}
        for address in [a for a, owner in self.owners.items() if owner == service and a not in wanted]:
            self.close_listener(address, "no ready endpoint, or the port is gone")
        for address, route in wanted.items():
            listener = self.listeners.get(address)
            if listener is not None and self.owners[address] == service and listener.label == route.label():
                if listener.backends != route.backends:
                    listener.backends = route.backends
                    log.info("%s: backends %s", route.label(), ", ".join(map(str, route.backends)))
                continue
            if listener is not None:
                self.close_listener(address, f"rebinding for {route.label()}")
            listener = Listener(route.label(), address, route.backends, self.stats)
            try:
                await listener.open()
            except OSError as exc:
                log.error("%s: cannot listen on %s:%d: %s", route.label(), *address, exc)
                self.failed.add(service)
                continue
            self.listeners[address], self.owners[address] = listener, service
            log.info("%s: listening on %s:%d -> %s", route.label(), *address, ", ".join(map(str, route.backends)))

    def close_listener(self, address: tuple[str, int], why: str) -> None:
        listener = self.listeners.pop(address)
        del self.owners[address]
        listener.close()
        log.info("%s: closed %s:%d (%s)", listener.label, *address, why)

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        self.owners.clear()

    async def log_stats_forever(self, stopping: asyncio.Event) -> None:
        last = None
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), STATS_SECONDS)
            current = (len(self.listeners), self.stats)
            if current != last:
                log.info("stats: %d listeners, %s", len(self.listeners), self.stats)
                last = (len(self.listeners), RelayStats(**vars(self.stats)))


async def run(kubeconfig: Path) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    proxy = ServiceProxy()
    async with ApiClient(kubeconfig) as api:
        tasks = [
            asyncio.create_task(list_and_watch(api, SERVICES, proxy.replace_services, proxy.apply_service, stopping)),
            asyncio.create_task(
                list_and_watch(api, ENDPOINT_SLICES, proxy.replace_slices, proxy.apply_slice, stopping)
            ),
            asyncio.create_task(proxy.reconcile_forever(stopping)),
            asyncio.create_task(proxy.log_stats_forever(stopping)),
        ]
        log.info("service proxy started against %s", api.server)
        await stopping.wait()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        proxy.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the system:kube-proxy user")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run(args.kubeconfig))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
