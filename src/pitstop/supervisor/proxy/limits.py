"""What bounds the proxy: timeouts, the number of open connections, the fd limit.

The proxy accepts connections itself (not through loop.create_server) so that it can stop
accepting at its connection limit, leaving new connections waiting in the listen backlog
instead of taking file descriptors it does not have; so that an accept() error such as
EMFILE pauses accepting and is logged at most once a second, without a traceback; and so
that every accepted TCP socket gets TCP_NODELAY on every event loop (asyncio's own accept
path skips it for sockets made by socket.create_server, and Nagle's algorithm then meets
the client's delayed ACK: ~40 ms per keep-alive request).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# fds kept free for everything but client connections: listeners, the app's pipes, files.
_RESERVED_FDS = 64
# How long accepting pauses after an accept() error that more accepting cannot cure.
_ERROR_PAUSE = 0.1
# At most this many connections accepted per wake-up, so accepting cannot starve the rest.
_ACCEPT_BATCH = 64
_FD_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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
    """Counts open client connections; acceptors wait while the count is at the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._waiting: list[Acceptor] = []

    def full(self) -> bool:
        return self.open >= self.limit

    def enter(self) -> None:
        self.open += 1

    def leave(self) -> None:
        self.open -= 1
        if self._waiting and self.open < self.limit:
            waiting, self._waiting = self._waiting, []
            for acceptor in waiting:
                acceptor.resume()

    def wait(self, acceptor: Acceptor) -> None:
        self._waiting.append(acceptor)


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


class Acceptor:
    """Accepts connections on one listening socket and hands each one to `on_accept`."""

    def __init__(
        self, sock: socket.socket, gate: Gate, on_accept: Callable[[socket.socket], None]
    ) -> None:
        self._sock = sock
        self._gate = gate
        self._on_accept = on_accept
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._closed = False
        self._errors = _RateLimitedLog()
        self._retry: asyncio.TimerHandle | None = None
        sock.setblocking(False)

    def resume(self) -> None:
        if not self._reading and not self._closed:
            self._reading = True
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _pause(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._sock.fileno())

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            if self._gate.full():
                # New connections wait in the listen backlog until one of ours ends.
                self._pause()
                self._gate.wait(self)
                return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                self._errors.warning(f"proxy: cannot accept connections: {exc}")
                if exc.errno in _FD_ERRORS:
                    self._pause()
                    self._retry = self._loop.call_later(_ERROR_PAUSE, self.resume)
                return
            set_nodelay(conn)
            conn.setblocking(False)
            self._gate.enter()
            self._on_accept(conn)

    def close(self) -> None:
        self._closed = True
        self._pause()
        if self._retry is not None:
            self._retry.cancel()
        self._sock.close()


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
