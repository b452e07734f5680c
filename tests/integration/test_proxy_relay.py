"""The service proxy's relay (tests/cluster/proxyrelay.py) with real sockets on loopback, in this process.

Backends are asyncio servers on 127.0.0.1; the listener under test relays to them. What is checked: bytes
in both directions, half-close passed on, flow control (a client that does not read stops the backend
instead of filling the proxy's memory), round-robin, new backends only for new connections, resets for
connections that cannot be served, and every socket closed again (no file descriptor left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from proxyrelay import Listener, RelayStats
from proxytable import Backend

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


async def backend(handler: Handler) -> tuple[asyncio.Server, Backend]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, Backend("127.0.0.1", server.sockets[0].getsockname()[1])


def named(name: bytes) -> Handler:
    """A backend that answers every line with its name, until the client closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline():
            writer.write(name + b"\n")
            await writer.drain()
        writer.close()

    return handle


async def proxy(*backends: Backend) -> tuple[Listener, RelayStats]:
    stats = RelayStats()
    listener = Listener("test", ("127.0.0.1", 0), tuple(backends), stats)
    await listener.open()
    return listener, stats


async def ask(address: tuple[str, int]) -> bytes:
    """One connection, one line: the name of the backend that answered."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(b"who\n")
    answer = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return answer.strip()


async def settled(stats: RelayStats) -> None:
    """Wait until the relay has closed every socket it opened."""
    deadline = time.monotonic() + 5
    while stats.open_sockets and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert stats.open_sockets == 0, stats


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_relays_both_ways_round_robin_and_leaves_no_socket_open() -> None:
    async def scenario() -> None:
        server_a, a = await backend(named(b"a"))
        server_b, b = await backend(named(b"b"))
        listener, stats = await proxy(a, b)
        fds = open_fds()
        answers = [await ask(listener.bound()) for _ in range(200)]
        assert answers[:4] == [b"a", b"b", b"a", b"b"]
        assert answers.count(b"a") == answers.count(b"b") == 100
        await settled(stats)
        assert open_fds() == fds
        assert (stats.accepted, stats.relayed, stats.refused) == (200, 200, 0)
        listener.close()
        server_a.close()
        server_b.close()

    run(scenario)


def test_half_close_is_passed_on_and_the_answer_still_arrives() -> None:
    async def count_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's FIN
        writer.write(b"got %d bytes" % len(data))
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        server, target = await backend(count_until_eof)
        listener, stats = await proxy(target)
        reader, writer = await asyncio.open_connection(*listener.bound())
        writer.write(b"x" * 100_000)
        writer.write_eof()
        assert await reader.read() == b"got 100000 bytes"  # then EOF: the backend's close was passed on
        writer.close()
        await settled(stats)
        listener.close()
        server.close()

    run(scenario)


def test_a_client_that_does_not_read_stops_the_backend_instead_of_filling_memory() -> None:
    total = 64 * 1024 * 1024
    sent = hashlib.sha256()
    written = [0]

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = os.urandom(64 * 1024)
        while written[0] < total:
            writer.write(chunk)
            sent.update(chunk)
            written[0] += len(chunk)
            await writer.drain()
        writer.close()

    async def scenario() -> None:
        server, target = await backend(flood)
        listener, stats = await proxy(target)
        reader, writer = await asyncio.open_connection(*listener.bound(), limit=64 * 1024)
        await asyncio.sleep(1.0)
        stalled_at = written[0]
        await asyncio.sleep(0.5)
        # only kernel socket buffers (about 10 MiB here) and the proxy's bounded write buffer hold what was
        # not read; without flow control the proxy would have taken all 64 MiB into its memory
        assert written[0] == stalled_at < 32 * 1024 * 1024, written[0]
        received = hashlib.sha256()
        count = 0
        while data := await reader.read(1024 * 1024):
            received.update(data)
            count += len(data)
        assert count == total and received.digest() == sent.digest()
        writer.close()
        await settled(stats)
        listener.close()
        server.close()

    run(scenario)


def test_new_backends_are_used_by_new_connections_only() -> None:
    async def scenario() -> None:
        server_a, a = await backend(named(b"a"))
        server_b, b = await backend(named(b"b"))
        listener, stats = await proxy(a)
        reader, writer = await asyncio.open_connection(*listener.bound())
        writer.write(b"who\n")
        assert await reader.readline() == b"a\n"
        listener.backends = (b,)
        assert await ask(listener.bound()) == b"b"
        writer.write(b"again\n")
        assert await reader.readline() == b"a\n"  # the open connection stays with its backend
        writer.close()
        await settled(stats)
        listener.close()
        server_a.close()
        server_b.close()

    run(scenario)


async def expect_reset(address: tuple[str, int]) -> float:
    """Connect and read: the proxy must reset the connection; return how long that took."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(*address)
    with pytest.raises(ConnectionResetError):
        writer.write(b"hello\n")
        await writer.drain()
        if not await reader.read():
            raise AssertionError("closed with FIN, not reset")
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()
    return time.monotonic() - started


def test_connections_without_a_reachable_backend_are_reset_at_once() -> None:
    async def scenario() -> None:
        server, alive = await backend(named(b"alive"))
        gone_server, gone = await backend(named(b"gone"))
        gone_server.close()
        await gone_server.wait_closed()
        listener, stats = await proxy(gone, alive)
        assert await ask(listener.bound()) == b"alive"  # the unreachable backend is skipped
        listener.backends = (gone,)
        assert await expect_reset(listener.bound()) < 0.5
        listener.backends = ()
        assert await expect_reset(listener.bound()) < 0.5
        assert stats.refused == 2
        await settled(stats)
        listener.close()
        server.close()

    run(scenario)


def test_a_reset_from_the_backend_reaches_the_client_as_a_reset() -> None:
    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def scenario() -> None:
        server, target = await backend(reset_at_once)
        listener, stats = await proxy(target)
        assert await expect_reset(listener.bound()) < 0.5
        await settled(stats)
        listener.close()
        server.close()

    run(scenario)
