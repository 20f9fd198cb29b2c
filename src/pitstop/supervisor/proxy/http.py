"""HTTP/1.1 forwarding with streams, for the requests the fast path (fast.py) hands over.

Those are the ones that need a task: Upgrade, Expect: 100-continue, chunked or large
request bodies. Each request is routed to the backend that is current when its head has
been read, so a keep-alive client moves to a new instance at its next request while a
request already in flight finishes where it started. Requests on one client connection are
handled one at a time, which is what keeps pipelined responses in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from pitstop.escape import escape
from pitstop.supervisor.proxy import heads, http11
from pitstop.supervisor.proxy.http11 import HttpError, RequestHead, ResponseHead, error_response
from pitstop.supervisor.proxy.limits import Timeouts, set_nodelay
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

    def __init__(self, reason: str, retryable: bool, status: int = 502) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status


@dataclass(eq=False, slots=True)
class Upstream:
    backend: Backend
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing() and not _unread(self)

    def close(self) -> None:
        self.writer.close()


def _unread(up: Upstream) -> int:
    """Bytes the backend sent that nobody asked for (StreamReader keeps them unexposed)."""
    buffer: bytearray = getattr(up.reader, "_buffer", bytearray())
    return len(buffer)


class Pool:
    """Idle keep-alive connections per backend."""

    def __init__(self, router: Router, timeouts: Timeouts) -> None:
        self._router = router
        self._timeouts = timeouts
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
        reader, writer = await http11.within(
            asyncio.open_connection(backend.host, backend.port, limit=http11.MAX_HEAD),
            self._timeouts.connect,
        )
        set_nodelay(writer.get_extra_info("socket"))
        return Upstream(backend, reader, writer)

    def put(self, up: Upstream) -> None:
        idle = self._idle.setdefault(up.backend, [])
        # A backend that is no longer current gets no new requests: do not keep its sockets;
        # nor a connection holding bytes nobody asked for (they would answer the next one).
        if (
            up.backend != self._router.current
            or len(idle) >= MAX_IDLE_PER_BACKEND
            or not up.usable()
        ):
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

    req: RequestHead
    client_ip: bytes
    body: bytes | None = None  # the whole body, when it was small enough to read first
    body_sent: bool = False  # the body left the client (so a retry is no longer possible)
    answered: bool = False  # the client has seen bytes of a response (so no 502 either)

    @property
    def body_pending(self) -> bool:
        return self.req.framing != "none" and self.body is None and not self.body_sent


class HttpHandler:
    def __init__(self, router: Router, pool: Pool, timeouts: Timeouts) -> None:
        self._router = router
        self._pool = pool
        self._timeouts = timeouts

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
        t = self._timeouts
        try:
            raw = await http11.read_head(reader, idle=t.keepalive, head=t.head)
            if raw is None:
                return False
            req = http11.scan_request(raw)
        except TimeoutError:
            reason = "the request head did not arrive in time"
            await _refuse(reader, writer, error_response(408, reason, close=True))
            return False
        except HttpError as exc:
            log.debug("proxy: bad request from %s: %s", client_ip.decode(), exc.reason)
            await _refuse(reader, writer, error_response(exc.status, exc.reason, close=True))
            return False
        ex = _Exchange(req, client_ip)
        flight = Flight()
        try:
            backend = await self._router.acquire(flight)
        except NoBackend as exc:
            self._router.unrouted += 1
            close = ex.body_pending or req.close
            await _send(writer, error_response(503, exc.reason, close=close))
            return not close
        try:
            return await self._forward(ex, reader, writer, backend, flight)
        except TimeoutError:  # the client's body stalled
            if not ex.answered:
                reason = "the request body did not arrive in time"
                await _refuse(reader, writer, error_response(408, reason, close=True))
            return False
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
        req = ex.req
        if req.framing == "length" and req.length <= BUFFERED_BODY and not req.expects_continue():
            ex.body = await http11.within(reader.readexactly(req.length), self._timeouts.body)
        for attempt in (1, 2):
            try:
                up = await self._pool.get(backend)
            except TimeoutError:
                seconds = self._timeouts.connect
                reason = f"backend {backend} did not accept a connection within {seconds:g}s"
                return await _bad_gateway(ex, writer, backend, reason, 504)
            except OSError as exc:
                reason = f"backend {backend} refused the connection: {exc.strerror or exc}"
                return await _bad_gateway(ex, writer, backend, reason)
            flight.transports[:] = [up.writer.transport]
            try:
                return await self._over(up, ex, reader, writer)
            except UpstreamFailed as exc:
                up.close()
                if attempt == 1 and exc.retryable and up.reused:
                    log.debug("proxy: pooled connection to %s was closed; retrying", backend)
                    continue
                reason = f"backend {backend} {exc.reason}"
                return await _bad_gateway(ex, writer, backend, reason, exc.status)
            except HttpError as exc:  # only the client's body can still raise it here
                up.close()
                if not ex.answered:
                    answer = error_response(exc.status, exc.reason, close=True)
                    await _refuse(reader, writer, answer)
                return False
            except BaseException:  # the client went away, stalled, or we are being closed
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
        up.writer.write(heads.upstream_request(ex.req, ex.client_ip) + (ex.body or b""))
        try:
            await up.writer.drain()
        except ConnectionError as exc:
            raise UpstreamFailed(f"closed the connection ({exc})", retryable) from exc
        if ex.body_pending and not ex.req.expects_continue():
            await self._send_body(ex, reader, up)
        resp = await self._final_response(up, ex, reader, writer)
        if resp.status == 101 and ex.req.is_upgrade():
            writer.write(heads.upgrade_response(resp))
            up.backend.tally.served += 1  # the upgrade succeeded; the tunnel is the app's
            await splice(reader, writer, up.reader, up.writer)
            return False
        return await self._relay_response(resp, up, ex, writer)

    async def _send_body(self, ex: _Exchange, reader: asyncio.StreamReader, up: Upstream) -> None:
        ex.body_sent = True
        sink = _UpstreamSink(up)
        idle = self._timeouts.body
        if ex.req.framing == "chunked":
            await http11.relay_chunked(reader, sink, idle)
        else:
            await http11.relay_length(reader, sink, ex.req.length, idle)

    async def _final_response(
        self,
        up: Upstream,
        ex: _Exchange,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> ResponseHead:
        """Read past interim (1xx) responses, forwarding them and any awaited body."""
        while True:
            waiting_for_continue = ex.body_pending
            wait = CONTINUE_WAIT if waiting_for_continue else self._timeouts.response
            try:
                retryable = not (ex.body_sent or ex.answered)
                resp = await _read_response(up, ex.req.method, retryable, wait)
            except TimeoutError:
                if not waiting_for_continue:
                    reason = f"did not answer within {wait:g}s"
                    raise UpstreamFailed(reason, False, 504) from None
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
                await _send(writer, heads.interim_response(resp))
                ex.answered = True

    async def _relay_response(
        self, resp: ResponseHead, up: Upstream, ex: _Exchange, writer: asyncio.StreamWriter
    ) -> bool:
        framing = resp.framing
        # A body the client still holds (Expect: 100-continue answered with a final status)
        # makes its connection unusable; so does a response that only ends at EOF.
        keep_client = not (ex.req.close or framing == "eof" or ex.body_pending)
        keep_upstream = not (resp.close or framing == "eof" or ex.body_pending)
        ex.answered = True
        head = heads.client_response(resp, ex.req.version, keep_client)
        try:
            await _relay_body(up, writer, head, framing, resp.length)
        except (HttpError, ConnectionError, asyncio.IncompleteReadError) as exc:
            # Too late for an error response: cutting the connection is the only honest signal.
            log.debug("proxy: response from %s cut short: %r", up.backend, exc)
            up.backend.tally.failed += 1
            up.close()
            writer.transport.abort()
            return False
        up.backend.tally.served += 1
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


async def _read_response(
    up: Upstream, method: bytes, retryable: bool, timeout: float
) -> ResponseHead:
    try:
        head = await http11.within(http11.read_head(up.reader), timeout)
    except HttpError as exc:
        raise UpstreamFailed(f"sent an invalid response: {exc.reason}", False) from exc
    except ConnectionError as exc:
        reason = f"closed the connection before responding ({exc})"
        raise UpstreamFailed(reason, retryable) from exc
    if head is None:
        raise UpstreamFailed("closed the connection before responding", retryable)
    try:
        return http11.scan_response(head, method)
    except HttpError as exc:
        raise UpstreamFailed(f"sent an invalid response: {exc.reason}", False) from exc


async def _bad_gateway(
    ex: _Exchange, writer: asyncio.StreamWriter, backend: Backend, reason: str, status: int = 502
) -> bool:
    backend.tally.failed += 1
    req = ex.req
    # The client chose these bytes: decoded as Latin-1 (never raises) and escaped for the log.
    line = escape(f"{req.method.decode('latin-1')} {req.target.decode('latin-1')}")
    log.warning("proxy: %d for %s: %s", status, line, reason)
    if ex.answered:
        writer.transport.abort()
        return False
    close = ex.body_pending or req.close
    await _send(writer, error_response(status, reason, close=close))
    return not close


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


# After an error response that closes the connection, how long the proxy keeps reading (and
# discarding) what the client still sends: closing with unread bytes makes the kernel send
# a reset, which can destroy the error response before the client has read it.
LINGER = 2.0


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send an error response, end our side, and read the client's rest for a while."""
    await _send(writer, data)
    if not writer.can_write_eof() or writer.is_closing():
        return
    with contextlib.suppress(ConnectionError, TimeoutError, OSError):
        writer.write_eof()
        async with asyncio.timeout(LINGER):
            while await reader.read(http11.READ_SIZE):
                pass
