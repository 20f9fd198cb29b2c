"""The fast path: asyncio.Protocol on both sides, no task or StreamReader per request.

Most requests have no body or a small one and get a response framed by Content-Length or
chunked. Those are forwarded here by callbacks: the request head is scanned in the bytes
received, rewritten by cutting and appending lines (heads.py), and written to a pooled
upstream connection; the response is written to the client as it arrives. Back-pressure is
pause_reading() on the side that feeds a transport whose buffer is full. A request that
needs more (Upgrade, Expect: 100-continue, a chunked or large body) hands its client
connection to the stream path (http.py) for the rest of that connection's life. This path
doubled keep-alive throughput over the stream path alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pitstop.escape import escape
from pitstop.supervisor.proxy import heads, http11
from pitstop.supervisor.proxy.http11 import ChunkedBody, HttpError, error_response
from pitstop.supervisor.proxy.limits import (
    CountedStreamProtocol,
    Deadline,
    Gate,
    Sweeper,
    Timed,
    Timeouts,
    set_nodelay,
)
from pitstop.supervisor.proxy.routing import Backend, Flight, NoBackend, Router, Tally

log = logging.getLogger(__name__)

# Bodies up to this size are read whole before the request is sent, so it can be retried
# when a pooled connection turns out to be closed; larger ones go to the stream path.
BUFFERED_BODY = 64 * 1024
MAX_IDLE_PER_BACKEND = 256
# Unread client bytes kept while a request is in flight before the client is paused.
_CLIENT_BUFFER = http11.MAX_HEAD + BUFFERED_BODY
_Spawn = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# What a client connection's deadline stands for right now.
_IDLE, _HEAD, _BODY, _LINGER = 1, 2, 3, 4
# After an error response that closes the connection, how long the proxy keeps reading (and
# discarding) what the client still sends: closing with unread bytes makes the kernel send
# a reset, which can destroy the error response before the client has read it.
LINGER = 2.0


class _Link(asyncio.Protocol):
    """One pooled connection to a backend; relays a response to the exchange using it."""

    def __init__(self, pool: FastPool, backend: Backend) -> None:
        self.pool = pool
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.ex: _FastExchange | None = None
        self.reused = False
        self.alive = False
        self._buf = b""
        self._framing: http11.Framing = "none"
        self._head_done = False
        self._left = 0  # body bytes still due (length framing)
        self._chunks: ChunkedBody | None = None
        self._keep = False
        self._paused = False
        self._deadline = Deadline(asyncio.get_running_loop(), self._no_response)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True
        set_nodelay(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:  # nothing was asked: this connection can no longer be trusted
            self._drop()
            return
        if not self._head_done:
            self._buf += data
            self._read_heads(ex)
        elif self._framing == "length":
            left = self._left
            if len(data) < left:
                self._left = left - len(data)
                ex.client.write(data)
            else:
                self._keep &= len(data) == left
                ex.client.write(data if len(data) == left else data[:left])
                self._finish(ex)
        elif self._framing == "chunked":
            self._buf += data
            self._relay_chunks(ex)
        else:  # to EOF
            ex.client.write(data)

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._deadline.cancel()
        ex = self.ex
        if ex is None:
            return
        self.ex = None
        if self._head_done and self._framing == "eof":
            ex.tally.served += 1
            ex.done(keep_client=False)
        elif self._head_done or ex.answered:
            log.debug("proxy: response from %s cut short: %r", self.backend, exc)
            ex.cut()
        else:
            detail = f" ({exc})" if exc else ""
            ex.upstream_failed(f"closed the connection before responding{detail}", True)

    def pause_writing(self) -> None:
        pass  # only whole small request bodies are written here

    def resume_writing(self) -> None:
        pass

    # the exchange

    def send(self, ex: _FastExchange, data: bytes) -> None:
        self.ex = ex
        self._buf = b""
        self._head_done = False
        self._deadline.set(ex.client.timeouts.response)
        assert self.transport is not None
        self.transport.write(data)

    def _no_response(self) -> None:
        ex = self.ex
        if ex is None or self._head_done:
            return
        self.ex = None
        self._drop()
        seconds = ex.client.timeouts.response
        ex.fail(f"backend {self.backend} did not answer within {seconds:g}s", 504)

    def _read_heads(self, ex: _FastExchange) -> None:
        while True:
            buf = self._buf
            try:
                end = http11.find_head_end(buf)
                if end < 0:
                    return
                resp = http11.scan_response(buf[: end + 2], ex.method)
            except HttpError as exc:
                self._invalid(ex, exc.reason)
                return
            rest = buf[end + 4 :]
            if resp.status >= 200:
                break
            self._buf = rest  # interim (1xx): forwarded to HTTP/1.1 clients, except 100
            if resp.status != 100 and ex.version == b"HTTP/1.1":
                ex.client.write(heads.interim_response(resp))
                ex.answered = True
        self._deadline.clear()
        self._buf = b""
        self._head_done = True
        self._framing = framing = resp.framing
        keep_client = not (ex.close or framing == "eof")
        self._keep = not (resp.close or framing == "eof")
        ex.keep_client = keep_client
        ex.answered = True
        head = heads.client_response(resp, ex.version, keep_client)
        if framing == "length":
            self._left = left = resp.length
            if len(rest) < left:
                self._left = left - len(rest)
                ex.client.write(head + rest)
            else:
                self._keep &= len(rest) == left
                ex.client.write(head + rest[:left])
                self._finish(ex)
        elif framing == "none":
            self._keep &= not rest
            ex.client.write(head)
            self._finish(ex)
        elif framing == "chunked":
            ex.client.write(head)
            self._chunks = ChunkedBody()
            self._buf = rest
            self._relay_chunks(ex)
        else:
            ex.client.write(head + rest)

    def _relay_chunks(self, ex: _FastExchange) -> None:
        """Forward a chunked body in wire form, as far as it has arrived."""
        buf, chunks = self._buf, self._chunks
        assert chunks is not None
        try:
            pos = chunks.advance(buf)
        except HttpError as exc:
            log.debug("proxy: response from %s cut short: %r", self.backend, exc)
            self.ex = None
            self._drop()
            ex.cut()
            return
        if pos:
            ex.client.write(buf[:pos])
            self._buf = buf[pos:]
        if chunks.done:
            # Bytes after the body's end were never asked for: this link is not reusable.
            self._keep &= not self._buf
            self._buf = b""
            self._chunks = None
            self._finish(ex)

    def _invalid(self, ex: _FastExchange, reason: str) -> None:
        self.ex = None
        self._drop()
        ex.upstream_failed(f"sent an invalid response: {reason}", False)

    def _finish(self, ex: _FastExchange) -> None:
        self.ex = None
        self.resume()
        if self._keep and self.alive:
            self.pool.put(self)
        else:
            self._drop()
        ex.tally.served += 1
        ex.done(ex.keep_client)

    def _drop(self) -> None:
        self.alive = False
        self._deadline.cancel()
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if self.transport is not None and self.alive and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.alive and self._paused:
            self._paused = False
            self.transport.resume_reading()


class FastPool:
    """Idle keep-alive upstream connections of the fast path, per backend."""

    def __init__(self, router: Router, timeouts: Timeouts) -> None:
        self._router = router
        self._timeouts = timeouts
        self._idle: dict[Backend, list[_Link]] = {}
        self._hot_backend: Backend | None = None  # the backend used last, and its list
        self._hot: list[_Link] = []
        self.connecting: set[asyncio.Task[None]] = set()

    def take(self, backend: Backend) -> _Link | None:
        # Found without hashing a Backend (a dataclass, hashed in Python) per request.
        idle = self._hot if backend is self._hot_backend else self._idle.get(backend)
        while idle:
            # Newest first: the one least likely to have been closed by the backend.
            link = idle.pop()
            if link.alive:
                link.reused = True
                return link
        return None

    def put(self, link: _Link) -> None:
        backend, current = link.backend, self._router.current
        # A backend that is no longer current gets no new requests: do not keep its sockets.
        if backend is not current and backend != current:
            link._drop()
            return
        if backend is not self._hot_backend:
            self._hot_backend = backend
            self._hot = self._idle.setdefault(backend, [])
        if len(self._hot) >= MAX_IDLE_PER_BACKEND:
            link._drop()
        else:
            self._hot.append(link)

    def links(self) -> list[_Link]:
        """The idle links (for tests that look at their sockets)."""
        return [link for idle in self._idle.values() for link in idle]

    def connect(self, ex: _FastExchange, backend: Backend) -> None:
        task = asyncio.get_running_loop().create_task(self._open(ex, backend))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)
        ex.connecting = task

    async def _open(self, ex: _FastExchange, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        seconds = self._timeouts.connect
        try:
            async with asyncio.timeout(seconds):
                _, link = await loop.create_connection(
                    lambda: _Link(self, backend), backend.host, backend.port
                )
        except TimeoutError:
            ex.connecting = None
            ex.fail(f"backend {backend} did not accept a connection within {seconds:g}s", 504)
            return
        except OSError as exc:
            ex.connecting = None
            ex.fail(f"backend {backend} refused the connection: {exc.strerror or exc}")
            return
        ex.connecting = None
        ex.attach(link)

    def close_backend(self, backend: Backend) -> None:
        if backend == self._hot_backend:
            self._hot_backend, self._hot = None, []
        for link in self._idle.pop(backend, []):
            link._drop()

    def close_all(self) -> None:
        for backend in list(self._idle):
            self.close_backend(backend)


# Where an exchange counts before it is routed (it fails or succeeds only once routed).
_NOT_ROUTED = Tally()


class _FastExchange(Flight):
    """One request on the fast path, from its head to the end of its response."""

    __slots__ = (
        "aborted",
        "answered",
        "attempts",
        "backend",
        "client",
        "close",
        "connecting",
        "data",
        "keep_client",
        "link",
        "method",
        "tally",
        "target",
        "version",
    )

    def __init__(self, client: FastClient, req: http11.RequestHead, data: bytes) -> None:
        # Flight.__init__ is not called: abort() below needs no list of transports.
        self.client = client
        self.backend: Backend | None = None
        self.data = data  # head and body, as sent upstream (kept for one retry)
        self.method = req.method
        self.target = req.target
        self.version = req.version
        self.close = req.close
        self.keep_client = not req.close
        self.answered = False
        self.link: _Link | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.aborted = False
        self.attempts = 0
        self.tally = _NOT_ROUTED

    def start(self, backend: Backend) -> None:
        self.backend = backend
        self.tally = backend.tally
        link = self.client.pool.take(backend)
        if link is None:
            self.client.pool.connect(self, backend)
        else:
            self.attach(link)

    def attach(self, link: _Link) -> None:
        if self.aborted or self.client.ex is not self:
            link.pool.put(link)  # cut off or gone while connecting: nothing to send
            if self.aborted and self.client.ex is self:
                self.fail(f"backend {self.backend} was cut off by its drain timeout")
            return
        self.attempts += 1
        self.link = link
        if self.client.write_paused:
            link.pause()
        link.send(self, self.data)

    def upstream_failed(self, reason: str, retryable: bool) -> None:
        link, self.link = self.link, None
        if (
            retryable
            and not self.aborted
            and not self.answered
            and self.attempts == 1
            and link is not None
            and link.reused
        ):
            log.debug("proxy: pooled connection to %s was closed; retrying", self.backend)
            assert self.backend is not None
            self.client.pool.connect(self, self.backend)
            return
        self.fail(f"backend {self.backend} {reason}")

    def fail(self, reason: str, status: int = 502) -> None:
        """502 (or 504), unless the client has already seen part of a response."""
        if self.answered:
            self.cut()
            return
        self.tally.failed += 1
        # The client chose these bytes: decoded as Latin-1 (never raises) and escaped.
        line = escape(f"{self.method.decode('latin-1')} {self.target.decode('latin-1')}")
        log.warning("proxy: %d for %s: %s", status, line, reason)
        self.client.write(error_response(status, reason, close=self.close))
        self.done(not self.close)

    def cut(self) -> None:
        """Too late for an error response: cutting the connection is the only honest signal."""
        self.tally.failed += 1
        self.link = None
        self.client.end_exchange(self)
        self.client.abort()

    def done(self, keep_client: bool) -> None:
        self.link = None
        self.client.end_exchange(self)
        self.client.next_request(keep_client)

    def abort(self) -> None:  # the drain timeout ran out on this request
        self.aborted = True
        if self.link is not None and self.link.transport is not None:
            self.link.transport.abort()


class FastServer:
    """What the fast path's client connections share; protocol() is the transport factory."""

    def __init__(self, router: Router, spawn: _Spawn, gate: Gate, timeouts: Timeouts) -> None:
        self.router = router
        self.timeouts = timeouts
        self.gate = gate
        self.pool = FastPool(router, timeouts)
        self.spawn = spawn  # runs a handed-over connection as a task
        self.clients: set[FastClient] = set()
        loop = asyncio.get_running_loop()
        shortest = min(timeouts.head, timeouts.body, timeouts.keepalive, LINGER)
        self.sweeper = Sweeper(loop, min(1.0, max(0.05, shortest / 4)))
        # uvloop sets TCP_NODELAY on every TCP transport itself; asyncio, not on these.
        self.nodelay = not type(loop).__module__.startswith("uvloop")

    def protocol(self) -> FastClient:
        return FastClient(self)

    async def close(self) -> None:
        self.sweeper.close()
        for client in list(self.clients):
            client.abort()
        tasks = list(self.pool.connecting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pool.close_all()


class FastClient(asyncio.Protocol, Timed):
    """One client connection on the fast path."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.router = server.router
        self.pool = server.pool
        self.timeouts = server.timeouts
        self._spawn = server.spawn
        self.transport: asyncio.Transport | None = None
        self.client_ip = b"unknown"
        self.ex: _FastExchange | None = None
        self.write_paused = False
        self._buf = b""
        self._eof = False
        self._reading_paused = False
        self._gone = False
        self._handed_over = False
        self._waiter: asyncio.Task[None] | None = None
        self._waiting_for = _IDLE
        self._loop = asyncio.get_running_loop()
        self.due: float | None = None  # when the current wait times out (the sweeper checks)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.clients.add(self)
        self.server.gate.enter()
        self.server.sweeper.add(self)
        if self.server.nodelay:
            set_nodelay(transport.get_extra_info("socket"))
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0] if isinstance(peer, tuple) else "unknown").encode()
        # A new connection has `head` seconds for its first request head, not `keepalive`:
        # connections that never send anything must not pile up.
        self._waiting_for = _IDLE
        self.due = self._loop.time() + self.timeouts.head

    def data_received(self, data: bytes) -> None:
        if self._waiting_for == _LINGER:
            return
        self._buf = self._buf + data if self._buf else data
        if self.ex is None and self._waiter is None:
            self._next()
        elif len(self._buf) > _CLIENT_BUFFER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self._waiting_for == _LINGER:
            self._close()
            return False
        self._eof = True
        if self.ex is None and self._waiter is None:
            self._next()
        return True  # keep the write side open for the response in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self.due = None
        self.server.sweeper.discard(self)
        self.server.clients.discard(self)
        if not self._handed_over:
            self.server.gate.leave()
        if self._waiter is not None:
            self._waiter.cancel()
        ex = self.ex
        if ex is not None:
            link = ex.link
            if link is not None:
                link.ex = None
                link._drop()
            self.end_exchange(ex)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.ex is not None and self.ex.link is not None:
            self.ex.link.pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.ex is not None and self.ex.link is not None:
            self.ex.link.resume()

    # used by the exchange

    def write(self, data: bytes) -> None:
        if not self._gone:
            assert self.transport is not None
            self.transport.write(data)

    def abort(self) -> None:
        self._gone = True
        if self.transport is not None:
            self.transport.abort()

    def end_exchange(self, ex: _FastExchange) -> None:
        if self.ex is ex:
            self.ex = None
            if ex.backend is not None:
                self.router.release(ex.backend, ex)

    def next_request(self, keep: bool) -> None:
        if self._gone:
            return
        if not keep:
            self._close()
            return
        if self._reading_paused:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        self._waiting_for = _IDLE
        self.due = self._loop.time() + self.timeouts.keepalive
        self._next()

    # timeouts

    def expired(self) -> None:
        if self._waiting_for == _LINGER:
            self._close()
            return
        if self._gone or self.ex is not None or self._waiter is not None:
            return
        if self._waiting_for == _IDLE and not self._buf.strip(b"\r\n"):
            log.debug("proxy: closing an idle connection from %s", self.client_ip.decode())
            self._close()
            return
        what = "request body" if self._waiting_for == _BODY else "request head"
        self._reject(HttpError(f"the {what} did not arrive in time", 408))

    # requests

    def _next(self) -> None:
        """Start the next request in the buffer, if it has all arrived."""
        if self._gone:
            return
        buf = self._buf
        if buf[:1] in (b"\r", b"\n"):
            # Tolerate blank lines before a request (RFC 9112 section 2.2).
            buf = self._buf = buf.lstrip(b"\r\n")
        try:
            end = http11.find_head_end(buf)
            if end < 0:
                if self._eof:
                    if buf:
                        raise HttpError("connection closed inside a message head")
                    self._close()
                elif buf and self._waiting_for == _IDLE:
                    # From its first byte, the whole head has `head` seconds (slowloris).
                    self._waiting_for = _HEAD
                    self.due = self._loop.time() + self.timeouts.head
                return
            req = http11.scan_request(buf[: end + 2])
        except HttpError as exc:
            self._reject(exc)
            return
        body_end = end + 4 + req.length
        if (
            req.framing == "chunked"
            or req.length > BUFFERED_BODY
            or req.expects_continue()
            or req.is_upgrade()
        ):
            self._hand_over()
            return
        if len(buf) < body_end:
            if self._eof:
                self._close()  # the body will never come
            else:
                # The body has `body` seconds between reads.
                self._waiting_for = _BODY
                self.due = self._loop.time() + self.timeouts.body
            return
        self.due = None
        head = heads.upstream_request(req, self.client_ip)
        self._buf = buf[body_end:]
        ex = self.ex = _FastExchange(self, req, head + buf[end + 4 : body_end])
        backend = self.router.acquire_now(ex)
        if backend is None:
            self._waiter = asyncio.get_running_loop().create_task(self._wait(ex))
        else:
            ex.start(backend)

    async def _wait(self, ex: _FastExchange) -> None:
        try:
            backend = await self.router.acquire(ex)
        except NoBackend as exc:
            self._waiter = None
            self.ex = None
            self.router.unrouted += 1
            self.write(error_response(503, exc.reason, close=ex.close))
            self.next_request(not ex.close)
            return
        self._waiter = None
        ex.start(backend)

    def _reject(self, exc: HttpError) -> None:
        log.debug("proxy: bad request from %s: %s", self.client_ip.decode(), exc.reason)
        self.write(error_response(exc.status, exc.reason, close=True))
        transport = self.transport
        if transport is None or not transport.can_write_eof() or self._eof:
            self._close()
            return
        self._gone = True
        self._waiting_for = _LINGER
        self._buf = b""
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self.due = self._loop.time() + LINGER

    def _close(self) -> None:
        self._gone = True
        self.due = None
        if self.transport is not None:
            self.transport.close()

    def _hand_over(self) -> None:
        """Give this connection, unread bytes included, to the stream path (http.py)."""
        transport = self.transport
        assert transport is not None
        self._gone = True
        self._handed_over = True  # the stream path now counts it against the gate
        self.due = None
        self.server.sweeper.discard(self)
        self.server.clients.discard(self)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=http11.MAX_HEAD, loop=loop)
        protocol = CountedStreamProtocol(reader, self._spawn, self.server.gate, counted=True)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.write_paused:
            protocol.pause_writing()
        reader.feed_data(self._buf)
        self._buf = b""
        if self._eof:
            reader.feed_eof()
        if self._reading_paused:
            transport.resume_reading()
