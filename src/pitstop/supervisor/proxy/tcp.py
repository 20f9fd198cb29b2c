"""Connection-level forwarding: tcp mode, and the tail of an HTTP Upgrade."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pitstop.supervisor.proxy.http11 import READ_SIZE, within
from pitstop.supervisor.proxy.limits import Timeouts, set_nodelay
from pitstop.supervisor.proxy.routing import Backend, Flight, NoBackend, Router

log = logging.getLogger(__name__)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(READ_SIZE):
        dst.write(data)
        await dst.drain()
    # Pass the half-close on: the other direction may still have bytes to deliver.
    if dst.can_write_eof() and not dst.is_closing():
        dst.write_eof()


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until both directions end or either one fails; close both."""
    tasks = {
        asyncio.ensure_future(_pipe(a_reader, b_writer)),
        asyncio.ensure_future(_pipe(b_reader, a_writer)),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if (exc := task.exception()) is not None:
                log.debug("proxy: spliced connection ended: %r", exc)
    finally:
        for task in tasks:
            task.cancel()
        for writer in (a_writer, b_writer):
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)


class TcpHandler:
    """Each client connection goes whole to the backend current when it was accepted."""

    def __init__(self, router: Router, timeouts: Timeouts) -> None:
        self._router = router
        self._timeouts = timeouts

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flight = Flight([writer.transport])
        try:
            backend = await self._router.acquire(flight)
        except NoBackend as exc:
            self._router.unrouted += 1
            log.warning("proxy: closing a connection: %s", exc.reason)
            writer.close()
            return
        try:
            await self._forward(reader, writer, flight, backend)
        finally:
            self._router.release(backend, flight)

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flight: Flight,
        backend: Backend,
    ) -> None:
        try:
            up_reader, up_writer = await within(
                asyncio.open_connection(backend.host, backend.port), self._timeouts.connect
            )
        except (OSError, TimeoutError) as exc:
            log.warning("proxy: backend %s refused the connection: %r", backend, exc)
            backend.tally.failed += 1
            with contextlib.suppress(Exception):
                writer.close()
            return
        backend.tally.served += 1  # a connection counts as served once the backend has it
        set_nodelay(up_writer.get_extra_info("socket"))
        flight.transports.append(up_writer.transport)
        await splice(reader, writer, up_reader, up_writer)
