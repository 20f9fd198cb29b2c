"""Proxy mode: for apps that bind the port they read from $PORT instead of taking a socket.

pitstop keeps listening on the public address and forwards to the current instance, which
listens on a private port of its own. A swap is `set_backend(new)`, then `drain(old)`, then
stopping the old instance: new requests go to the new instance at once, requests in flight
on the old one complete, and keep-alive clients never see an error or a closed connection.

All methods must be called from the event loop's thread. Works on asyncio's default loop
and on uvloop alike.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pitstop.supervisor.proxy import http11
from pitstop.supervisor.proxy.fast import FastServer
from pitstop.supervisor.proxy.http import HttpHandler, Pool
from pitstop.supervisor.proxy.limits import (
    CountedStreamProtocol,
    Gate,
    PausableServer,
    Timeouts,
    connection_limit,
    quiet_accept_errors,
    raise_fd_limit,
)
from pitstop.supervisor.proxy.routing import Backend, Router
from pitstop.supervisor.proxy.tcp import TcpHandler

if TYPE_CHECKING:
    from pitstop.taskfile.service import ProxyMode  # one definition, with the service keys

__all__ = ["Backend", "Proxy", "Timeouts", "free_port"]

DEFAULT_MAX_CONNECTIONS = 1000

log = logging.getLogger(__name__)

_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Proxy:
    """Forwards connections from pitstop's listening sockets to the current backend."""

    def __init__(
        self,
        mode: ProxyMode = "http",
        wait_timeout: float = 30.0,
        drain_timeout: float = 30.0,
        timeouts: Timeouts | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if mode not in ("http", "tcp"):
            raise ValueError(f"unknown proxy mode {mode!r}; expected 'http' or 'tcp'")
        self.mode: ProxyMode = mode
        self.drain_timeout = drain_timeout
        self.timeouts = timeouts or Timeouts()
        self._max_connections = max_connections
        self._router = Router(wait_timeout)
        self._pool = Pool(self._router, self.timeouts)
        self._handler: _Handler = (
            HttpHandler(self._router, self._pool, self.timeouts)
            if mode == "http"
            else TcpHandler(self._router, self.timeouts)
        )
        self._gate = Gate(max_connections)
        # http: requests go through the callback-based fast path (fast.py), which hands a
        # connection to the stream-based HttpHandler (http.py) when a request needs it.
        self._fast = (
            FastServer(self._router, self._serve, self._gate, self.timeouts)
            if mode == "http"
            else None
        )
        self._undo_quiet: Callable[[], None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def backend(self) -> Backend | None:
        """The backend new requests go to, if any."""
        return self._router.current

    async def start(self, sockets: list[socket.socket]) -> None:
        """Serve on already-bound listening sockets.

        The proxy listens on duplicates, so the caller keeps ownership of `sockets`.
        """
        self._gate.limit = connection_limit(self._max_connections, raise_fd_limit())
        self._undo_quiet = quiet_accept_errors(asyncio.get_running_loop())
        for sock in sockets:
            listener = PausableServer(sock, self._protocol)
            self._gate.listeners.append(listener)
            await listener.start()
        log.debug("proxy (%s) listening on %d socket(s)", self.mode, len(sockets))

    def _protocol(self) -> asyncio.BaseProtocol:
        if self._fast is not None:
            return self._fast.protocol()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=http11.MAX_HEAD, loop=loop)
        return CountedStreamProtocol(reader, self._serve, self._gate)

    @property
    def connections(self) -> int:
        """Client connections open right now (counted against max_connections)."""
        return self._gate.open

    def set_backend(self, backend: Backend | None) -> Backend | None:
        """Send new requests (http) or connections (tcp) to `backend`; return the previous."""
        return self._router.set_backend(backend)

    def unavailable(self, reason: str) -> None:
        """No backend: requests wait up to wait_timeout, then get 503 with `reason`."""
        self._router.unavailable(reason)

    def in_flight(self, backend: Backend) -> int:
        """Requests (http) or connections (tcp) in flight on `backend` right now."""
        return self._router.in_flight(backend)

    @property
    def unrouted(self) -> int:
        """Requests (http) or connections (tcp) that failed because no backend came."""
        return self._router.unrouted

    @property
    def waiting(self) -> int:
        """Requests (http) or connections (tcp) waiting for a backend to appear."""
        return self._router.waiting

    async def drain(self, backend: Backend, timeout: float | None = None) -> bool:
        """Wait until nothing is in flight on `backend`; True if it drained in time.

        Past the timeout, what is still in flight on it is cut off. Its idle keep-alive
        connections are closed either way, so the instance can be stopped right after.
        """
        limit = self.drain_timeout if timeout is None else timeout
        drained = await self._router.drain(backend, limit)
        self._pool.close_backend(backend)
        if self._fast is not None:
            self._fast.pool.close_backend(backend)
        return drained

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        self._closing = True
        for listener in self._gate.listeners:
            await listener.close()
        self._gate.listeners.clear()
        if self._undo_quiet is not None:
            self._undo_quiet()
            self._undo_quiet = None
        if self._fast is not None:
            await self._fast.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._pool.close_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._handler(reader, writer)
        except asyncio.CancelledError:
            # Only close() cancels these tasks, and they end right here. Letting the
            # cancellation out would make asyncio (3.11) log it as an error of the server.
            if not self._closing:
                raise
        finally:
            if task is not None:
                self._connections.discard(task)


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that nothing listens on right now, for a new instance's $PORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
