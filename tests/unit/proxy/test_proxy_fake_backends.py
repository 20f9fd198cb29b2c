"""Edge cases against scripted in-process backends on 127.0.0.1 (milliseconds each)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from pitstop.supervisor.proxy.routing import Flight, Router
from pitstop.supervisor.proxy.server import Backend, Proxy

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def scripted_backend(script: Script) -> tuple[asyncio.Server, Backend, list[int]]:
    """A backend running `script(reader, writer, n)` for its n-th connection."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            await script(reader, writer, len(connections))
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Backend("127.0.0.1", port, "#fake"), connections


async def proxy_for(backend: Backend) -> tuple[Proxy, int]:
    proxy = Proxy(wait_timeout=5)
    listener = socket.create_server(("127.0.0.1", 0))
    await proxy.start([listener])
    port = listener.getsockname()[1]
    listener.close()  # the proxy listens on its own duplicate
    proxy.set_backend(backend)
    return proxy, port


async def exchange(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, req: bytes) -> bytes:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return head + await reader.readexactly(int(line.split(b":")[1]))
    return head


def test_a_closed_pooled_connection_is_retried_on_a_fresh_one() -> None:
    async def one_request_per_connection_without_saying_so(r, w, n: int) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(OK)
        await w.drain()
        await r.readuntil(b"\r\n\r\n")  # the second request: close without an answer

    async def run() -> None:
        server, backend, conns = await scripted_backend(
            one_request_per_connection_without_saying_so
        )
        proxy, port = await proxy_for(backend)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            assert (await exchange(writer, reader, b"GET / HTTP/1.1\r\n\r\n")).endswith(b"ok")
        assert len(conns) == 3
        writer.close()
        await proxy.close()
        server.close()

    asyncio.run(run())


def test_204_and_304_have_no_body_and_the_connection_goes_on() -> None:
    answers = [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
        OK,
    ]

    async def script(r, w, n: int) -> None:
        for answer in answers:
            await r.readuntil(b"\r\n\r\n")
            w.write(answer)
            await w.drain()
        await r.read()

    async def run() -> None:
        server, backend, _ = await scripted_backend(script)
        proxy, port = await proxy_for(backend)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 204")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 304")
        assert (await exchange(writer, reader, b"GET /3 HTTP/1.1\r\n\r\n")).endswith(b"ok")
        writer.close()
        await proxy.close()
        server.close()

    asyncio.run(run())


def test_a_response_delimited_by_eof_closes_the_client_connection() -> None:
    async def script(r, w, n: int) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")

    async def run() -> None:
        server, backend, _ = await scripted_backend(script)
        proxy, port = await proxy_for(backend)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        data = await reader.read(-1)  # to EOF: the proxy must close
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in data
        assert data.endswith(b"\r\n\r\nuntil the end")
        writer.close()
        await proxy.close()
        server.close()

    asyncio.run(run())


EVIL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"


@pytest.mark.parametrize(
    "first",
    [
        OK + EVIL,  # a second response right behind a Content-Length one
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + EVIL,
        b"HTTP/1.1 204 No Content\r\n\r\n" + EVIL,
    ],
)
@pytest.mark.parametrize("path", ["fast", "stream"])
def test_an_upstream_connection_with_unread_bytes_is_never_pooled(first: bytes, path: str) -> None:
    """Bytes after a response's end would answer the next client's request: drop them."""

    async def script(r, w, n: int) -> None:
        while not r.at_eof():
            try:
                head = await r.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            if b"chunked" in head.lower():
                await r.readuntil(b"0\r\n\r\n")
            w.write(first if n == 1 else OK)
            await w.drain()

    async def run() -> None:
        server, backend, conns = await scripted_backend(script)
        proxy, port = await proxy_for(backend)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # A chunked request body sends the connection down the stream path.
        req = (
            b"GET / HTTP/1.1\r\n\r\n"
            if path == "fast"
            else b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        first_answer = await exchange(writer, reader, req)
        if b"chunked" in first_answer:
            await reader.readuntil(b"0\r\n\r\n")
        second = await exchange(writer, reader, req)
        assert second.endswith(b"\r\n\r\nok"), second
        assert len(conns) == 2
        writer.close()
        await proxy.close()
        server.close()

    asyncio.run(run())


def test_router_drain() -> None:
    async def run() -> None:
        router = Router(wait_timeout=1)
        old, new = Backend("127.0.0.1", 1, "#1"), Backend("127.0.0.1", 2, "#2")
        assert await router.drain(old, 0.01)  # nothing in flight
        router.set_backend(old)
        done, stuck = Flight(), Flight()
        assert await router.acquire(done) == old
        assert await router.acquire(stuck) == old
        assert router.set_backend(new) == old
        assert await router.acquire(Flight()) == new
        router.release(old, done)
        assert router.in_flight(old) == 1
        assert not await router.drain(old, 0.01)  # `stuck` never ends: cut off

    asyncio.run(run())


def test_a_drain_cancelled_as_its_last_flight_ends_is_cancelled() -> None:
    """The cancellation wins (asyncio.wait_for on Python 3.11 swallowed it: the swap that was
    being cancelled went on)."""

    async def run() -> None:
        router = Router(wait_timeout=1)
        old = Backend("127.0.0.1", 1, "#1")
        router.set_backend(old)
        flight = Flight()
        await router.acquire(flight)
        drain = asyncio.create_task(router.drain(old, 30))
        await asyncio.sleep(0)  # a yield: the drain starts waiting
        router.release(old, flight)  # the wait's end and the cancellation in one turn
        drain.cancel()
        with pytest.raises(asyncio.CancelledError):
            await drain

    asyncio.run(run())
