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
from dataclasses import dataclass

from . import http11
from .http11 import HOP_BY_HOP, HttpError, Request, Response, simple_response
from .proxy_routing import Backend, Flight, NoBackend, Router
from .proxy_tcp import splice

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
            flight.writers[:] = [up.writer]
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


async def _bad_gateway(ex: _Exchange, writer: asyncio.StreamWriter, reason: str) -> bool:
    log.warning("proxy: 502 for %s %s: %s", ex.req.method.decode(), ex.req.target.decode(), reason)
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
