"""HTTP/1.1 forwarding, request by request.

Each request is routed to the backend that is current when its head has been read, so a
keep-alive client moves to a new instance at its next request while a request already in
flight finishes where it started. Requests on one client connection are handled one at a
time, which is what keeps pipelined responses in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pitstop.escape import escape
from pitstop.supervisor.proxy import http11
from pitstop.supervisor.proxy.http11 import (
    HOP_BY_HOP,
    HttpError,
    Request,
    Response,
    simple_response,
)
from pitstop.supervisor.proxy.routing import Backend, Flight, NoBackend, Router
from pitstop.supervisor.proxy.tcp import splice

log = logging.getLogger(__name__)

# Small bodies are read before the upstream connection is chosen, so a request can be
# retried when a pooled connection turns out to be closed.
BUFFERED_BODY = 64 * 1024
# How long to wait for a backend's "100 Continue" before sending the body anyway (as curl).
CONTINUE_WAIT = 1.0
MAX_IDLE_PER_BACKEND = 256
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class UpstreamFailed(Exception):
    """The backend failed before the client saw any byte of the response."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(eq=False, slots=True)
class Upstream:
    backend: Backend
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle keep-alive connections per backend."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._idle: dict[Backend, list[Upstream]] = {}

    async def get(self, backend: Backend) -> Upstream:
        idle = self._idle.get(backend, [])
        while idle:
            # Newest first: the one least likely to have been closed by the backend.
            up = idle.pop()
            if up.usable():
                up.reused = True
                return up
            up.close()
        reader, writer = await asyncio.open_connection(
            backend.host, backend.port, limit=http11.MAX_HEAD
        )
        return Upstream(backend, reader, writer)

    def put(self, up: Upstream) -> None:
        idle = self._idle.setdefault(up.backend, [])
        # A backend that is no longer current gets no new requests: do not keep its sockets.
        if up.backend != self._router.current or len(idle) >= MAX_IDLE_PER_BACKEND:
            up.close()
        else:
            idle.append(up)

    def close_backend(self, backend: Backend) -> None:
        for up in self._idle.pop(backend, []):
            up.close()

    def close_all(self) -> None:
        for backend in list(self._idle):
            self.close_backend(backend)


class _UpstreamSink:
    """A writer whose failures are the backend's, told apart from the client's."""

    def __init__(self, up: Upstream) -> None:
        self._writer = up.writer

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            reason = f"closed the connection while receiving the body ({exc})"
            raise UpstreamFailed(reason, False) from exc


@dataclass(slots=True)
class _Exchange:
    """One request and what has happened to it so far."""

    req: Request
    framing: http11.Framing
    length: int
    client_ip: bytes
    body: bytes | None = None  # the whole body, when it was small enough to read first
    body_sent: bool = False  # the body left the client (so a retry is no longer possible)
    answered: bool = False  # the client has seen bytes of a response (so no 502 either)

    @property
    def body_pending(self) -> bool:
        return self.framing != "none" and self.body is None and not self.body_sent


class HttpHandler:
    def __init__(self, router: Router, pool: Pool) -> None:
        self._router = router
        self._pool = pool

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0] if isinstance(peer, tuple) else "unknown").encode()
        try:
            while await self._next_request(reader, writer, client_ip):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, HttpError) as exc:
            log.debug("proxy: client connection ended: %r", exc)
        except Exception:
            log.exception("proxy: unexpected error on a client connection")
        finally:
            writer.close()

    async def _next_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_ip: bytes
    ) -> bool:
        """Forward one request; True if the client connection can carry another."""
        try:
            head = await http11.read_head(reader)
            if head is None:
                return False
            req = http11.parse_request(head)
            framing, length = req.body_framing()
        except HttpError as exc:
            log.debug("proxy: bad request from %s: %s", client_ip.decode(), exc.reason)
            await _send(writer, _error(exc.status, exc.reason, close=True))
            return False
        ex = _Exchange(req, framing, length, client_ip)
        flight = Flight()
        try:
            backend = await self._router.acquire(flight)
        except NoBackend as exc:
            close = ex.body_pending or req.wants_close()
            await _send(writer, _error(503, exc.reason, close=close))
            return not close
        try:
            return await self._forward(ex, reader, writer, backend, flight)
        finally:
            self._router.release(backend, flight)

    async def _forward(
        self,
        ex: _Exchange,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        backend: Backend,
        flight: Flight,
    ) -> bool:
        if ex.framing == "length" and ex.length <= BUFFERED_BODY and not ex.req.expects_continue():
            ex.body = await reader.readexactly(ex.length)
        for attempt in (1, 2):
            try:
                up = await self._pool.get(backend)
            except OSError as exc:
                reason = f"backend {backend} refused the connection: {exc.strerror or exc}"
                return await _bad_gateway(ex, writer, reason)
            flight.transports[:] = [up.writer.transport]
            try:
                return await self._over(up, ex, reader, writer)
            except UpstreamFailed as exc:
                up.close()
                if attempt == 1 and exc.retryable and up.reused:
                    log.debug("proxy: pooled connection to %s was closed; retrying", backend)
                    continue
                return await _bad_gateway(ex, writer, f"backend {backend} {exc.reason}")
            except HttpError as exc:  # only the client's body can still raise it here
                up.close()
                if not ex.answered:
                    await _send(writer, _error(exc.status, exc.reason, close=True))
                return False
            except BaseException:  # the client went away, or we are being closed
                up.close()
                raise
        raise AssertionError("unreachable: the second attempt always returns")

    async def _over(
        self,
        up: Upstream,
        ex: _Exchange,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """The exchange over one upstream connection; UpstreamFailed before any response."""
        retryable = not (ex.body_sent or ex.answered)
        up.writer.write(_upstream_head(ex.req, ex.client_ip) + (ex.body or b""))
        try:
            await up.writer.drain()
        except ConnectionError as exc:
            raise UpstreamFailed(f"closed the connection ({exc})", retryable) from exc
        if ex.body_pending and not ex.req.expects_continue():
            await self._send_body(ex, reader, up)
        resp = await self._final_response(up, ex, reader, writer)
        if resp.status == 101 and ex.req.is_upgrade():
            return await _upgrade(resp, up, reader, writer)
        return await self._relay_response(resp, up, ex, writer)

    async def _send_body(self, ex: _Exchange, reader: asyncio.StreamReader, up: Upstream) -> None:
        ex.body_sent = True
        sink = _UpstreamSink(up)
        if ex.framing == "chunked":
            await http11.relay_chunked(reader, sink)
        else:
            await http11.relay_length(reader, sink, ex.length)

    async def _final_response(
        self,
        up: Upstream,
        ex: _Exchange,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> Response:
        """Read past interim (1xx) responses, forwarding them and any awaited body."""
        while True:
            wait = CONTINUE_WAIT if ex.body_pending else None
            try:
                retryable = not (ex.body_sent or ex.answered)
                resp = await _read_response(up, retryable, timeout=wait)
            except TimeoutError:
                # The backend ignores Expect: the client will not wait forever either.
                await self._send_body(ex, reader, up)
                continue
            if resp.status >= 200 or (resp.status == 101 and ex.req.is_upgrade()):
                return resp
            if resp.status == 100 and ex.body_pending:
                if ex.req.version == b"HTTP/1.1":
                    await _send(writer, _CONTINUE)
                ex.answered = True
                await self._send_body(ex, reader, up)
            elif resp.status != 100 and ex.req.version == b"HTTP/1.1":
                await _send(writer, http11.serialize(_status_line(resp), resp.headers))
                ex.answered = True

    async def _relay_response(
        self, resp: Response, up: Upstream, ex: _Exchange, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            framing, length = resp.body_framing(ex.req.method)
        except HttpError as exc:
            raise UpstreamFailed(f"sent an invalid response: {exc.reason}", False) from exc
        # A body the client still holds (Expect: 100-continue answered with a final status)
        # makes its connection unusable; so does a response that only ends at EOF.
        keep_client = not (ex.req.wants_close() or framing == "eof" or ex.body_pending)
        keep_upstream = not (resp.wants_close() or framing == "eof" or ex.body_pending)
        ex.answered = True
        head = http11.serialize(_status_line(resp), _client_headers(resp, ex, keep_client))
        try:
            await _relay_body(up, writer, head, framing, length)
        except (HttpError, ConnectionError, asyncio.IncompleteReadError) as exc:
            # Too late for an error response: cutting the connection is the only honest signal.
            log.debug("proxy: response from %s cut short: %r", up.backend, exc)
            up.close()
            writer.transport.abort()
            return False
        if keep_upstream:
            self._pool.put(up)
        else:
            up.close()
        return keep_client


async def _relay_body(
    up: Upstream, writer: asyncio.StreamWriter, head: bytes, framing: http11.Framing, length: int
) -> None:
    if framing == "length":
        # Head and first body bytes in one write: one send() per small response, not two.
        first = await up.reader.read(min(length, http11.READ_SIZE))
        if not first:
            raise asyncio.IncompleteReadError(b"", length)
        writer.write(head + first)
        await http11.relay_length(up.reader, writer, length - len(first))
        await writer.drain()
        return
    writer.write(head)
    if framing == "chunked":
        await http11.relay_chunked(up.reader, writer)
    elif framing == "eof":
        await http11.relay_until_eof(up.reader, writer)
    else:
        await writer.drain()


async def _read_response(up: Upstream, retryable: bool, timeout: float | None) -> Response:
    try:
        head = await asyncio.wait_for(http11.read_head(up.reader), timeout)
    except HttpError as exc:
        raise UpstreamFailed(f"sent an invalid response: {exc.reason}", False) from exc
    except ConnectionError as exc:
        reason = f"closed the connection before responding ({exc})"
        raise UpstreamFailed(reason, retryable) from exc
    if head is None:
        raise UpstreamFailed("closed the connection before responding", retryable)
    try:
        return http11.parse_response(head)
    except HttpError as exc:
        raise UpstreamFailed(f"sent an invalid response: {exc.reason}", False) from exc


async def _upgrade(
    resp: Response, up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """After 101 the connection is the application's: pinned to this backend until closed."""
    headers = [(k, v) for k, v in resp.headers if k.lower() not in _drop(resp)]
    headers += [(b"Connection", b"Upgrade"), (b"Upgrade", resp.get(b"upgrade") or b"")]
    writer.write(http11.serialize(_status_line(resp), headers))
    await splice(reader, writer, up.reader, up.writer)
    return False


def _request_line(method: bytes, target: bytes) -> str:
    """For logs: the client chose these bytes, so any control character is escaped."""
    return escape(f"{method.decode('latin-1')} {target.decode('latin-1')}")


async def _bad_gateway(ex: _Exchange, writer: asyncio.StreamWriter, reason: str) -> bool:
    log.warning("proxy: 502 for %s: %s", _request_line(ex.req.method, ex.req.target), reason)
    if ex.answered:
        writer.transport.abort()
        return False
    close = ex.body_pending or ex.req.wants_close()
    await _send(writer, _error(502, reason, close=close))
    return not close


def _drop(msg: http11.Message) -> set[bytes]:
    return msg.tokens(b"connection").union(HOP_BY_HOP)


def _upstream_head(req: Request, client_ip: bytes) -> bytes:
    drop = _drop(req) | {b"x-forwarded-proto"}
    forwarded_for = b""
    headers: http11.Headers = []
    for name, value in req.headers:
        lower = name.lower()
        if lower == b"x-forwarded-for":
            forwarded_for += value + b", "
        elif lower not in drop:
            headers.append((name, value))
    headers.append((b"X-Forwarded-For", forwarded_for + client_ip))
    headers.append((b"X-Forwarded-Proto", b"http"))
    if req.is_upgrade():
        headers += [(b"Connection", b"Upgrade"), (b"Upgrade", req.get(b"upgrade") or b"")]
    elif req.version == b"HTTP/1.0":
        # Sent as 1.0 so the backend never answers chunked, but kept alive for the pool.
        headers.append((b"Connection", b"keep-alive"))
    return http11.serialize(b" ".join((req.method, req.target, req.version)), headers)


def _client_headers(resp: Response, ex: _Exchange, keep_alive: bool) -> http11.Headers:
    drop = _drop(resp)
    headers = [(k, v) for k, v in resp.headers if k.lower() not in drop]
    if not keep_alive:
        headers.append((b"Connection", b"close"))
    elif ex.req.version == b"HTTP/1.0":
        headers.append((b"Connection", b"keep-alive"))
    return headers


def _status_line(resp: Response) -> bytes:
    return b"HTTP/1.1 %d %s" % (resp.status, resp.reason)


_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}


def _error(status: int, reason: str, *, close: bool) -> bytes:
    phrase = _REASONS.get(status, "Service Unavailable")
    return simple_response(status, phrase, f"pitstop: {reason}", close=close)


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


# --- the fast path: asyncio.Protocol on both sides --------------------------------------
#
# Most requests have no body or a small one and get a response framed by Content-Length
# or chunked. Those are forwarded here by callbacks, with no task, StreamReader or drain()
# per request: the request head is scanned in the bytes received, rewritten by cutting and
# appending lines, and written to a pooled upstream connection; the response is written to
# the client as it arrives. Back-pressure is pause_reading() on the side that feeds a
# transport whose buffer is full. A request that needs more (Upgrade, Expect: 100-continue,
# a chunked or large body) hands its client connection to HttpHandler, the stream code
# above, for the rest of that connection's life.

_REQUEST_DROP = HOP_BY_HOP | {b"x-forwarded-for", b"x-forwarded-proto"}
# Unread client bytes kept while a request is in flight before the client is paused.
_CLIENT_BUFFER = http11.MAX_HEAD + BUFFERED_BODY
_Spawn = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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
        self._left = 0  # body bytes still due (length), or of the current chunk (chunked)
        self._chunk_state = 0  # 0 size line, 1 data, 2 CRLF after data, 3 trailer
        self._keep = False
        self._paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

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
        ex = self.ex
        if ex is None:
            return
        self.ex = None
        if self._head_done and self._framing == "eof":
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
        assert self.transport is not None
        self.transport.write(data)

    def _read_heads(self, ex: _FastExchange) -> None:
        while True:
            buf = self._buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > http11.MAX_HEAD:
                    self._invalid(ex, "message head too large")
                return
            try:
                resp = http11.scan_response(buf[: end + 2], ex.method)
            except HttpError as exc:
                self._invalid(ex, exc.reason)
                return
            rest = buf[end + 4 :]
            if resp.status >= 200:
                break
            self._buf = rest  # interim (1xx): forwarded to HTTP/1.1 clients, except 100
            if resp.status != 100 and ex.version == b"HTTP/1.1":
                ex.client.write(_status(resp) + resp.raw[resp.raw.index(b"\r\n") + 2 :] + b"\r\n")
                ex.answered = True
        self._buf = b""
        self._head_done = True
        self._framing = framing = resp.framing
        keep_client = not (ex.close or framing == "eof")
        self._keep = not (resp.close or framing == "eof")
        ex.keep_client = keep_client
        ex.answered = True
        head = _client_head(resp, ex.version, keep_client)
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
            self._left = 0
            self._chunk_state = 0
            self._buf = rest
            self._relay_chunks(ex)
        else:
            ex.client.write(head + rest)

    def _relay_chunks(self, ex: _FastExchange) -> None:
        """Forward a chunked body in wire form, as far as it has arrived."""
        buf, pos, size, state = self._buf, 0, len(self._buf), self._chunk_state
        try:
            while pos < size:
                if state == 1:  # chunk data
                    take = min(self._left, size - pos)
                    pos += take
                    self._left -= take
                    if self._left:
                        break
                    state = 2
                elif state == 2:
                    if size - pos < 2:
                        break
                    if buf[pos : pos + 2] != b"\r\n":
                        raise HttpError("missing CRLF after chunk")
                    pos += 2
                    state = 0
                else:  # a size line, or a trailer line
                    eol = buf.find(b"\n", pos)
                    if eol < 0:
                        if size - pos > http11.MAX_LINE:
                            raise HttpError("line too long")
                        break
                    line = buf[pos : eol + 1]
                    if len(line) > http11.MAX_LINE or not line.endswith(b"\r\n"):
                        raise HttpError("malformed chunk framing")
                    pos = eol + 1
                    if state == 3:
                        if line == b"\r\n":
                            self._keep &= pos == size
                            ex.client.write(buf[:pos])
                            self._buf = b""
                            self._finish(ex)
                            return
                        continue
                    text = line.split(b";", 1)[0].strip()
                    if not http11.is_hex(text):
                        raise HttpError("malformed chunk size")
                    self._left = int(text, 16)
                    state = 1 if self._left else 3
        except HttpError as exc:
            log.debug("proxy: response from %s cut short: %r", self.backend, exc)
            self.ex = None
            self._drop()
            ex.cut()
            return
        self._chunk_state = state
        if pos:
            ex.client.write(buf[:pos])
            self._buf = buf[pos:]

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
        ex.done(ex.keep_client)

    def _drop(self) -> None:
        self.alive = False
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

    def __init__(self, router: Router) -> None:
        self._router = router
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

    def connect(self, ex: _FastExchange, backend: Backend) -> None:
        task = asyncio.get_running_loop().create_task(self._open(ex, backend))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)
        ex.connecting = task

    async def _open(self, ex: _FastExchange, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, link = await loop.create_connection(
                lambda: _Link(self, backend), backend.host, backend.port
            )
        except OSError as exc:
            ex.connecting = None
            reason = f"backend {backend} refused the connection: {exc.strerror or exc}"
            ex.fail(reason)
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

    def start(self, backend: Backend) -> None:
        self.backend = backend
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

    def fail(self, reason: str) -> None:
        """502, unless the client has already seen part of a response."""
        if self.answered:
            self.cut()
            return
        log.warning("proxy: 502 for %s: %s", _request_line(self.method, self.target), reason)
        self.client.write(_error(502, reason, close=self.close))
        self.done(not self.close)

    def cut(self) -> None:
        """Too late for an error response: cutting the connection is the only honest signal."""
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
    """What the fast path's client connections share; protocol() is the server's factory."""

    def __init__(self, router: Router, spawn: _Spawn) -> None:
        self.router = router
        self.pool = FastPool(router)
        self.spawn = spawn  # runs a handed-over connection as a task
        self.clients: set[FastClient] = set()

    def protocol(self) -> FastClient:
        return FastClient(self)

    async def close(self) -> None:
        for client in list(self.clients):
            client.abort()
        tasks = list(self.pool.connecting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pool.close_all()


class FastClient(asyncio.Protocol):
    """One client connection on the fast path."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.router = server.router
        self.pool = server.pool
        self._spawn = server.spawn
        self.transport: asyncio.Transport | None = None
        self.client_ip = b"unknown"
        self.ex: _FastExchange | None = None
        self.write_paused = False
        self._buf = b""
        self._eof = False
        self._reading_paused = False
        self._gone = False
        self._waiter: asyncio.Task[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.clients.add(self)
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0] if isinstance(peer, tuple) else "unknown").encode()

    def data_received(self, data: bytes) -> None:
        self._buf = self._buf + data if self._buf else data
        if self.ex is None and self._waiter is None:
            self._next()
        elif len(self._buf) > _CLIENT_BUFFER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        if self.ex is None and self._waiter is None:
            self._next()
        return True  # keep the write side open for the response in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self.server.clients.discard(self)
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
        self._next()

    # requests

    def _next(self) -> None:
        """Start the next request in the buffer, if it has all arrived."""
        if self._gone:
            return
        buf = self._buf
        if buf[:1] in (b"\r", b"\n"):
            # Tolerate blank lines before a request (RFC 9112 section 2.2).
            buf = self._buf = buf.lstrip(b"\r\n")
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > http11.MAX_HEAD:
            if len(buf) > http11.MAX_HEAD:
                self._reject(HttpError("message head too large", 431))
            elif self._eof:
                if buf.strip():
                    self._reject(HttpError("connection closed inside a message head"))
                else:
                    self._close()
            return
        try:
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
            or not req.rewritable()
        ):
            self._hand_over()
            return
        if len(buf) < body_end:
            if self._eof:
                self._close()  # the body will never come
            return
        head = _upstream_request_head(req, self.client_ip)
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
            self.write(_error(503, exc.reason, close=ex.close))
            self.next_request(not ex.close)
            return
        self._waiter = None
        ex.start(backend)

    def _reject(self, exc: HttpError) -> None:
        log.debug("proxy: bad request from %s: %s", self.client_ip.decode(), exc.reason)
        self.write(_error(exc.status, exc.reason, close=True))
        self._close()

    def _close(self) -> None:
        self._gone = True
        if self.transport is not None:
            self.transport.close()

    def _hand_over(self) -> None:
        """Give this connection, unread bytes included, to the stream-based HttpHandler."""
        transport = self.transport
        assert transport is not None
        self._gone = True
        self.server.clients.discard(self)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=http11.MAX_HEAD, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, self._spawn, loop=loop)
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


def _upstream_request_head(req: http11.RequestHead, client_ip: bytes) -> bytes:
    forwarded_for = b""
    for name, value, _, _ in req.fields:
        if name == b"x-forwarded-for":
            forwarded_for += value + b", "
    tail = b"X-Forwarded-For: %s%s\r\nX-Forwarded-Proto: http\r\n" % (forwarded_for, client_ip)
    if req.version == b"HTTP/1.0":
        # Sent as 1.0 so the backend never answers chunked, but kept alive for the pool.
        tail += b"Connection: keep-alive\r\n"
    return req.without(_REQUEST_DROP) + tail + b"\r\n"


def _status(resp: http11.ResponseHead) -> bytes:
    raw = resp.raw
    return b"HTTP/1.1" + raw[8 : raw.index(b"\r\n") + 2]


def _client_head(resp: http11.ResponseHead, version: bytes, keep_alive: bool) -> bytes:
    if not resp.rewritable():  # Connection names other headers: drop those too
        parsed = http11.parse_response(resp.raw[:-2])
        drop = _drop(parsed)
        headers = [(k, v) for k, v in parsed.headers if k.lower() not in drop]
        raw = http11.serialize(_status_line(parsed), headers)[:-2]
    elif resp.raw.startswith(b"HTTP/1.1 "):
        raw = resp.without(HOP_BY_HOP)
    else:
        raw = resp.without(HOP_BY_HOP, _status(resp)[:-2])
    if not keep_alive:
        return raw + b"Connection: close\r\n\r\n"
    if version == b"HTTP/1.0":
        return raw + b"Connection: keep-alive\r\n\r\n"
    return raw + b"\r\n"
