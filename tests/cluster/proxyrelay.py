"""TCP relaying for the service proxy: one listener per ClusterIP:port, each connection paired with a backend.

A ``Listener`` accepts on ``clusterIP:port`` and hands every new connection to a backend chosen round-robin
from the backends it holds *at accept time*; replacing the backends (``Listener.backends = ...``) only
affects later connections, so an open connection stays with its pod, as with conntrack. Relaying uses
asyncio protocols paired back to back: bytes go straight from one transport to the other, with bounded
write buffers (reading from one side pauses while the other side's buffer is full), half-close passed on
(``shutdown(SHUT_WR)`` when one side finishes sending) and both sides closed when either is gone. A reset
is passed on as a reset. A connection that cannot be given a backend is reset at once, never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import dataclass

from proxytable import Backend

log = logging.getLogger("serviceproxy")

WRITE_BUFFER_HIGH = 256 * 1024  # bytes buffered towards one side before reading from the other pauses
CONNECT_TIMEOUT = 3.0
CONNECT_ATTEMPTS = 3  # backends tried (round-robin) before a connection is refused


@dataclass
class RelayStats:
    accepted: int = 0  # client connections accepted
    relayed: int = 0  # of those, paired with a backend
    refused: int = 0  # of those, reset for want of a reachable backend
    open_sockets: int = 0  # client and backend sockets not yet closed (0 when idle: no leak)


def reset(transport: asyncio.Transport) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0), like kube-proxy's REJECT rule answers."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Side(asyncio.Protocol):
    """One end of a relayed connection; ``peer`` is the other end."""

    def __init__(self, stats: RelayStats, peer: _Side | None = None) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.got_eof = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.stats.open_sockets += 1
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        """The other program finished sending: pass the half-close on; close both once both ends are done."""
        self.got_eof = True
        peer = self.peer
        if peer is None or peer.transport is None or peer.closed:
            return False
        if peer.got_eof:
            peer.transport.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep this side open: it may still receive what the peer sends back

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.stats.open_sockets -= 1
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            if exc is not None:
                reset(peer.transport)
            else:
                peer.transport.close()  # flushes what is buffered first


class _ClientSide(_Side):
    """The accepted connection: reading waits until a backend is connected."""

    def __init__(self, listener: Listener) -> None:
        super().__init__(listener.stats)
        self.listener = listener
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        stats = self.stats
        stats.accepted += 1
        candidates = self.listener.pick(CONNECT_ATTEMPTS)
        assert self.transport is not None
        if not candidates:
            stats.refused += 1
            reset(self.transport)
            return
        self.transport.pause_reading()
        self.connecting = asyncio.get_running_loop().create_task(self.connect(candidates))

    async def connect(self, candidates: list[Backend]) -> None:
        loop = asyncio.get_running_loop()
        for backend in candidates:
            if self.closed:
                return
            try:
                # the backend side knows its peer from the start: what the backend sends goes to the client
                _, side = await asyncio.wait_for(
                    loop.create_connection(lambda: _Side(self.stats, self), backend.ip, backend.port),
                    CONNECT_TIMEOUT,
                )
            except (OSError, TimeoutError) as exc:
                log.info("%s: backend %s unreachable: %s", self.listener.label, backend, exc)
                continue
            assert side.transport is not None
            if self.closed:  # the client went away while we connected
                side.transport.close()
                return
            self.peer = side
            self.stats.relayed += 1
            assert self.transport is not None
            self.transport.resume_reading()
            return
        self.stats.refused += 1
        if self.transport is not None and not self.closed:
            reset(self.transport)


class Listener:
    """A listening socket on one ClusterIP:port whose connections go to ``backends`` round-robin."""

    def __init__(self, label: str, address: tuple[str, int], backends: tuple[Backend, ...], stats: RelayStats):
        self.label = label
        self.address = address
        self.backends = backends
        self.stats = stats
        self._next = 0
        self._server: asyncio.Server | None = None

    def pick(self, count: int) -> list[Backend]:
        """Up to ``count`` distinct backends starting at the round-robin position (which advances by one)."""
        backends = self.backends
        if not backends:
            return []
        start = self._next % len(backends)
        self._next = start + 1
        return [backends[(start + i) % len(backends)] for i in range(min(count, len(backends)))]

    async def open(self) -> None:
        host, port = self.address
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _ClientSide(self), host, port, reuse_address=True, backlog=1024
        )

    def bound(self) -> tuple[str, int]:
        """The address actually listened on (``port`` 0 asks for any free port)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def close(self) -> None:
        """Stop accepting; connections already relayed carry on until either end closes them."""
        if self._server is not None:
            self._server.close()
            self._server = None
