"""Reaching a candidate in socket mode before it takes traffic (for `check` commands).

With socket hand-off every instance has its own listening socket on the one public address
(a reuseport group), and the group's program sends every new connection to the serving
instance's. To reach the candidate, pitstop opens a private relay on 127.0.0.1 (the check's
PITSTOP_CANDIDATE_URL) and, while the checks run, attaches a program that sends connections
from one loopback source address, CHECK_SOURCE, to the candidate's socket and every other
connection to the serving one; the relay connects to the public address from CHECK_SOURCE.
So the check talks to the candidate through the very socket it will serve on, and the
program cannot send it a client's connection. The alternative, an extra private listener
passed to the candidate, would only work for programs that serve every inherited socket
(many take fd 3 alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from pitstop.taskfile.addresses import ListenAddress

log = logging.getLogger(__name__)

# Any 127/8 address is local on Linux; one clients are unlikely to connect from.
CHECK_SOURCE = "127.0.0.99"
CHUNK = 65536  # bytes read at a time per direction: the relay's memory per connection
IDLE_TIMEOUT = 30.0  # a relayed connection that moves nothing for this long is closed
MAX_CONNECTIONS = 64  # at once; more are closed at once (checks need a handful)


class Relay:
    """A private port whose connections are forwarded to `target` from CHECK_SOURCE."""

    def __init__(self, target: ListenAddress) -> None:
        self.target = target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._tasks.add(task)
        try:
            host = "127.0.0.1" if self.target.host in ("0.0.0.0", "") else self.target.host
            try:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    up_reader, up_writer = await asyncio.open_connection(
                        host, self.target.port, local_addr=(CHECK_SOURCE, 0), limit=CHUNK
                    )
            except (OSError, TimeoutError) as exc:
                log.info("check relay cannot reach the candidate: %s", exc)
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that comes as a read ends, and close() would wait for an idle relay's timeout.
            async with asyncio.timeout(IDLE_TIMEOUT):
                data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()  # bounded: never more than CHUNK waits per direction
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, TimeoutError):
        writer.close()


def source_reachable() -> bool:
    """Whether this system lets a socket bind CHECK_SOURCE (Linux: all of 127/8 is local)."""
    with socket.socket() as probe:
        try:
            probe.bind((CHECK_SOURCE, 0))
        except OSError:
            return False
    return True
