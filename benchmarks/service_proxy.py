"""The local control plane's service proxy (tests/cluster/serviceproxy.py), measured in one run.

Two HTTP backends run in a child process on loopback addresses, behind a selector-less Service whose
EndpointSlice this script writes. It prints:

- update latency: from just before an EndpointSlice PATCH that moves the Service from one backend to the
  other to the first new connection answered by the new backend (median, p90, max over ``--switches``);
- throughput and latency of short HTTP requests (a new connection each, ``Connection: close``), a bounded
  count at a fixed concurrency, straight to a backend and through ``clusterIP:port``.

Usage: ``python benchmarks/service_proxy.py [--requests 4000] [--concurrency 8] [--switches 20]`` with
$KUBECONFIG set (``make cluster-up``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cluster"))
from kubesetup import fresh_namespace

NAMESPACE = "bluegreen-bench-proxy"
BACKENDS = {"a": ("127.151.0.10", 8080), "b": ("127.151.0.11", 8080)}
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


# ---- the backends (child process) ----------------------------------------------------------------------
async def serve() -> None:
    async def answer(name: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(name), name))
        await writer.drain()
        writer.close()

    for name, (ip, port) in BACKENDS.items():
        await asyncio.start_server(functools.partial(answer, name.encode()), ip, port, backlog=1024)
    print("serving", flush=True)
    await asyncio.Event().wait()


# ---- the client ----------------------------------------------------------------------------------------
async def request(address: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(REQUEST)
    response = await reader.read()
    writer.close()
    return response.rsplit(b"\r\n\r\n", 1)[-1]


async def load(address: tuple[str, int], count: int, concurrency: int) -> tuple[float, list[float]]:
    """``count`` requests by ``concurrency`` workers; (requests per second, latencies in ms)."""
    latencies: list[float] = []
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            assert await request(address) in (b"a", b"b")
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), latencies


def get(address: tuple[str, int]) -> bytes | None:
    try:
        return asyncio.run(request(address))
    except ConnectionError:
        return None


def endpoint_slice(backend: str) -> dict[str, object]:
    return {"apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
            "metadata": {"name": "web-bench", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": BACKENDS[backend][1], "protocol": "TCP"}],
            "endpoints": [{"addresses": [BACKENDS[backend][0]], "conditions": {"ready": True}}]}


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--switches", type=int, default=20)
    args = parser.parse_args()
    config.load_kube_config()
    api = client.ApiClient()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    fresh_namespace(core, NAMESPACE)
    backends = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    try:
        assert backends.stdout is not None and backends.stdout.readline() == b"serving\n"
        service = core.create_namespaced_service(NAMESPACE, {"metadata": {"name": "web"}, "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
        cluster = (service.spec.cluster_ip, 80)

        slices = ("discovery.k8s.io", "v1beta1", NAMESPACE, "endpointslices")

        def point_at(name: str) -> float:
            """Give the Service one ready endpoint, backend ``name``; return the time just before."""
            started = time.monotonic()
            custom.patch_namespaced_custom_object(*slices, "web-bench", endpoint_slice(name))
            return started

        custom.create_namespaced_custom_object(*slices, endpoint_slice("a"))
        deadline = time.monotonic() + 10
        while get(cluster) != b"a":
            assert time.monotonic() < deadline, "the Service never answered"
            time.sleep(0.01)

        lags = []
        for i in range(args.switches):
            target = "b" if i % 2 == 0 else "a"
            started = point_at(target)
            while get(cluster) != target.encode():
                pass
            lags.append((time.monotonic() - started) * 1000)
        print(f"update latency over {len(lags)} EndpointSlice changes (PATCH included): median "
              f"{statistics.median(lags):.1f} ms, p90 {quantile(lags, 0.9):.1f} ms, max {max(lags):.1f} ms")

        for label, address in (("direct", BACKENDS["a"]), ("through the proxy", cluster)):
            asyncio.run(load(address, 200, args.concurrency))  # warm-up
            rate, latencies = asyncio.run(load(address, args.requests, args.concurrency))
            print(f"{label:>18}: {rate:7.0f} requests/s, latency median {statistics.median(latencies):.2f} ms, "
                  f"p99 {quantile(latencies, 0.99):.2f} ms ({args.requests} requests, new connection each, "
                  f"concurrency {args.concurrency})")
    finally:
        backends.terminate()
        backends.wait()
        core.delete_namespace(NAMESPACE)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        asyncio.run(serve())
    else:
        sys.exit(main())
