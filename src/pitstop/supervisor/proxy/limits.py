"""What bounds the proxy: timeouts, the number of open connections, the fd limit.

Connections are accepted by the event loop's own server (loop.create_server, which on
uvloop accepts in C) on a duplicate of each listening socket. At the connection limit that
server is closed: the listening socket itself stays open, so new connections wait in its
listen backlog until a connection ends and a new server on a new duplicate takes over.
accept() errors such as EMFILE, which the loops report through the exception handler with a
traceback (uvloop once per refused connection), are logged at most once a second, in one
line. Every client and upstream TCP socket gets TCP_NODELAY on every loop: asyncio's own
accept path skips it for sockets made by socket.create_server, and Nagle's algorithm then
meets the client's delayed ACK (~40 ms per keep-alive request).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# fds kept free for everything but client connections: listeners, the app's pipes, files.
_RESERVED_FDS = 64
# The listen backlog, and so also how many connections asyncio accepts per wake-up.
BACKLOG = 128
_ACCEPT_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
)


@dataclass(frozen=True)
class Timeouts:
    """How long the proxy waits for each thing; past it, the connection is closed.

    head: from the first byte of a request to the end of its head (then 408).
    body: between two reads of a request body (then 408).
    keepalive: an idle client connection between requests, or before the first byte.
    connect: opening a connection to the app (then 504).
    response: from the request to the head of the app's response (then 504).
    """

    head: float = 10.0
    body: float = 30.0
    keepalive: float = 60.0
    connect: float = 5.0
    response: float = 60.0


def set_nodelay(sock: socket.socket | None) -> None:
    """Turn Nagle's algorithm off on a TCP socket (a no-op on unix sockets)."""
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # e.g. the peer has already reset the connection
            log.debug("proxy: cannot set TCP_NODELAY: %s", exc)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.debug("proxy: cannot raise the fd limit to %d: %s", target, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limit(wanted: int, fd_limit: int) -> int:
    """`wanted`, lowered so that each connection can hold a client and an upstream fd."""
    fits = max(1, (fd_limit - _RESERVED_FDS) // 2)
    if wanted > fits:
        log.warning(
            "proxy: max_connections %d lowered to %d to fit the fd limit of %d",
            wanted,
            fits,
            fd_limit,
        )
    return min(wanted, fits)


class Gate:
    """Counts open client connections; at the limit, every listener stops accepting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.listeners: list[PausableServer] = []

    def full(self) -> bool:
        return self.open >= self.limit

    def enter(self) -> None:
        self.open += 1
        if self.open >= self.limit:
            for listener in self.listeners:
                listener.pause()

    def leave(self) -> None:
        self.open -= 1
        if self.open < self.limit:
            for listener in self.listeners:
                listener.resume()


class PausableServer:
    """Serves one listening socket with loop.create_server on a duplicate of it."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self._sock = sock
        self._factory = factory
        self._server: asyncio.AbstractServer | None = None
        self._opening: asyncio.Task[None] | None = None
        self._wanted = True
        self._closed = False

    async def start(self) -> None:
        await self._open()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._factory, sock=self._sock.dup(), backlog=BACKLOG)
        if self._wanted and not self._closed:
            self._server = server
        else:  # paused or closed while it was being made
            server.close()

    def pause(self) -> None:
        self._wanted = False
        if self._server is not None:
            # Only this duplicate closes; connections queue in the socket's backlog.
            self._server.close()
            self._server = None

    def resume(self) -> None:
        self._wanted = True
        if self._server is None and self._opening is None and not self._closed:
            self._opening = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        try:
            await self._open()
        except OSError as exc:
            log.warning("proxy: cannot accept connections: %s", exc)
        finally:
            self._opening = None
        if self._wanted and self._server is None and not self._closed:
            self.resume()

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None


class CountedStreamProtocol(asyncio.StreamReaderProtocol):
    """A stream connection that counts against the gate from connection_made to its end."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        connected: Any,
        gate: Gate,
        counted: bool = False,
    ) -> None:
        super().__init__(reader, connected)
        self._gate = gate
        self._counted = counted  # a connection handed over from the fast path already is

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._counted:
            self._counted = True
            self._gate.enter()
            set_nodelay(transport.get_extra_info("socket"))
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._gate.leave()
        super().connection_lost(exc)


class _RateLimitedLog:
    """Logs a repeating condition at most once per `every` seconds, with a count."""

    def __init__(self, every: float = 1.0) -> None:
        self._every = every
        self._last = -every
        self._skipped = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._skipped += 1
            return
        more = f" ({self._skipped} more since the last report)" if self._skipped else ""
        log.warning("%s%s", message, more)
        self._last, self._skipped = now, 0


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Report accept() errors once a second in one line; returns what undoes it."""
    previous = loop.get_exception_handler()
    limited = _RateLimitedLog()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRORS:
            limited.warning(f"proxy: cannot accept connections: {exc}")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return lambda: loop.set_exception_handler(previous)


class Deadline:
    """One movable deadline, for a connection whose deadline moves at every request.

    Moving it later costs no timer operation: the timer fires at the old time, sees the new
    one and sleeps again. Only moving it earlier reschedules.
    """

    __slots__ = ("_at", "_callback", "_handle", "_handle_at", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._at: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0

    def set(self, seconds: float) -> None:
        at = self._at = self._loop.time() + seconds
        if self._handle is None or at < self._handle_at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(at, self._fire)
            self._handle_at = at

    def clear(self) -> None:
        self._at = None

    def cancel(self) -> None:
        self._at = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        at = self._at
        if at is None:
            return
        if self._loop.time() < at:
            self._handle = self._loop.call_at(at, self._fire)
            self._handle_at = at
            return
        self._at = None
        self._callback()


class Timed:
    """What a Sweeper watches: `due` (loop time, or None) and what to do past it."""

    due: float | None

    def expired(self) -> None:
        raise NotImplementedError


class Sweeper:
    """The deadlines of many connections, checked by one timer every `tick` seconds.

    A connection's deadline is then a float it sets, with no timer made or cancelled per
    connection or per request; a deadline is met up to one tick late.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self._loop = loop
        self._tick = tick
        self._members: set[Timed] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, member: Timed) -> None:
        self._members.add(member)
        if self._handle is None:
            self._handle = self._loop.call_later(self._tick, self._sweep)

    def discard(self, member: Timed) -> None:
        self._members.discard(member)

    def _sweep(self) -> None:
        now = self._loop.time()
        late = [m for m in self._members if m.due is not None and m.due <= now]
        for member in late:
            member.due = None
            member.expired()
        self._handle = self._loop.call_later(self._tick, self._sweep) if self._members else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
