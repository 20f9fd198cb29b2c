"""The control socket: HTTP/1.1 and JSON over a Unix socket only its user can open.

    GET  /v1/services                      every service's status (a JSON array)
    GET  /v1/started                       waits until the first start is over: {"ok", "services"}
    POST /v1/services/{name}/restart       rebuild and swap, zero downtime (answers once swapped)
    POST /v1/services/{name}/stop|start
    POST /v1/services/{name}/rollback?version=N  swap to a kept build, no build (answers once
                                           it serves; 409 if it cannot)
    POST /v1/down                          stop everything; the daemon then exits
    GET  /v1/logs?service=a&n=100&follow=1 the last n lines, by time, then follow (NDJSON)
    GET  /v1/events                        the live event stream (NDJSON)

so `curl --unix-socket SOCK http://pitstop/v1/services` works. The socket is 0600 in a 0700
folder, but the server still assumes a hostile client: a request head must arrive whole within
`head_timeout` and fit in `max_head`; bodies are bounded and timed; every response closes the
connection (one request per connection: no idle keep-alive to hold); at most `max_waiting`
connections may sit before sending their head (a new one pushes the oldest out, so a flood of
idle connections cannot lock `pitstop ps` out); streams are capped in number and a stream
whose reader falls `stream_queue` lines behind, or does not read for `write_timeout`, is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pitstop.engine import events as eng
from pitstop.manager.event_json import event_json, summary
from pitstop.manager.logfiles import LogBook, LogLine, tail
from pitstop.manager.state import DaemonLock, ProjectState, remove_stale_socket
from pitstop.manager.status import ServiceStatus, status_json
from pitstop.supervisor import events as ev
from pitstop.supervisor.proxy import http11

log = logging.getLogger(__name__)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_ACTIONS = ("restart", "stop", "start")


class Managed(Protocol):
    """What the control server needs of the Manager (manager/manager.py)."""

    def status(self) -> list[ServiceStatus]: ...

    def unstarted(self) -> list[str]: ...

    async def restart(self, name: str) -> None: ...

    async def stop_service(self, name: str) -> None: ...

    async def rollback(self, name: str, version: int | None = None) -> int: ...

    async def start_service(self, name: str) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]: ...


@dataclass(frozen=True)
class Limits:
    max_head: int = 16 * 1024
    max_body: int = 64 * 1024
    head_timeout: float = 5.0
    body_timeout: float = 5.0
    write_timeout: float = 10.0
    max_waiting: int = 64  # connections that have not sent a whole head yet
    max_connections: int = 512  # all of them; beyond this a connection is closed at once
    max_streams: int = 32  # logs -f and events
    stream_queue: int = 10_000  # lines a stream's reader may fall behind
    max_tail: int = 100_000  # logs -n


class _Reply(Exception):
    """Answer the request with `status` and a JSON error."""

    def __init__(self, status: int, error: str, hint: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.hint = status, error, hint


class ControlServer:
    """Serves one Manager on `state.socket_path`; see the module's docstring."""

    def __init__(
        self, manager: Managed, state: ProjectState, logbook: LogBook, limits: Limits = Limits()
    ) -> None:
        self.manager = manager
        self.state = state
        self.logbook = logbook
        self.limits = limits
        self.down_requested = asyncio.Event()
        # The first start's result and the rows as they were then (a daemon whose services
        # all failed with --no-watch stops them right after).
        self._started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._waiting: dict[asyncio.Task[None], None] = {}  # oldest first
        # Requests answered even when the server closes meanwhile (`down`: its client waits
        # for the answer, and the server closes because of it).
        self._finishing: set[asyncio.Task[None]] = set()
        self._streams = 0

    def started(self, ok: bool) -> None:
        """The first start is over (`ok`: every service is ready); GET /v1/started answers."""
        if not self._started.done():
            self._started.set_result({"ok": ok, "services": self._services()})

    async def open(self) -> None:
        path = self.state.socket_path
        remove_stale_socket(path)  # the caller holds the project's lock: any socket is stale
        self._server = await asyncio.start_unix_server(
            self._accept, path=str(path), limit=self.limits.max_head
        )
        os.chmod(path, 0o600)  # in a 0700 folder, so nobody else could connect meanwhile

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        finishing = [t for t in self._finishing if not t.done()]
        if finishing:
            await asyncio.wait(finishing, timeout=self.limits.write_timeout)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(OSError):
            self.state.socket_path.unlink()

    # ------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.limits.max_connections:
            writer.close()
            return
        if len(self._waiting) >= self.limits.max_waiting:
            oldest = next(iter(self._waiting))
            self._waiting.pop(oldest)
            oldest.cancel()
        self._connections.add(task)
        self._waiting[task] = None
        try:
            await self._serve(reader, writer, task)
        except _Reply as reply:
            await self._send(writer, _error(reply))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # pushed out while idle, or the server closes
        except Exception:
            log.exception("control request failed")
            with contextlib.suppress(Exception):
                await self._send(writer, _error(_Reply(500, "internal error; see the daemon log")))
        finally:
            self._waiting.pop(task, None)
            self._connections.discard(task)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[None]
    ) -> None:
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                raw = await http11.read_head(reader)
        except TimeoutError:
            raise _Reply(408, "the request head did not arrive in time") from None
        except http11.HttpError as exc:
            raise _Reply(exc.status, exc.reason) from None
        if raw is None:
            return
        try:
            request = http11.scan_request(raw)
            framing, length = request.framing, request.length
        except http11.HttpError as exc:
            raise _Reply(exc.status, exc.reason) from None
        self._waiting.pop(task, None)
        if framing == "chunked":
            raise _Reply(411, "send the body with a Content-Length")
        if length > self.limits.max_body:
            raise _Reply(413, f"a request body is at most {self.limits.max_body} bytes")
        if length:
            try:
                async with asyncio.timeout(self.limits.body_timeout):
                    await reader.readexactly(length)
            except TimeoutError:
                raise _Reply(408, "the request body did not arrive in time") from None
        await self._route(request.method.decode(), request.target.decode("latin-1"), reader, writer)

    async def _route(
        self, method: str, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if parts[:1] != ["v1"]:
            raise _Reply(404, f"no such endpoint: {url.path}", "the API is under /v1/")
        rest = parts[1:]
        if rest == ["services"]:
            _allow(method, "GET")
            await self._send(writer, _json(200, self._services()))
        elif rest == ["started"]:
            _allow(method, "GET")
            await self._send(writer, _json(200, await self._started))
        elif len(rest) == 3 and rest[0] == "services" and rest[2] in _ACTIONS:
            _allow(method, "POST")
            await self._act(rest[1], rest[2])
            await self._send(writer, _json(200, {"ok": True, "service": rest[1]}))
        elif len(rest) == 3 and rest[0] == "services" and rest[2] == "rollback":
            _allow(method, "POST")
            serving = await self._rollback(rest[1], query)
            await self._send(
                writer, _json(200, {"ok": True, "service": rest[1], "version": serving})
            )
        elif rest == ["down"]:
            _allow(method, "POST")
            task = asyncio.current_task()
            assert task is not None
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)
            await self.manager.stop()
            await self._send(writer, _json(200, {"ok": True, "pid": os.getpid()}))
            self.down_requested.set()
        elif rest == ["logs"]:
            _allow(method, "GET")
            await self._logs(query, reader, writer)
        elif rest == ["events"]:
            _allow(method, "GET")
            await self._events(reader, writer)
        else:
            raise _Reply(404, f"no such endpoint: {url.path}")

    # ------------------------------------------------------------ endpoints

    def _services(self) -> list[dict[str, Any]]:
        now = time.time()
        return [status_json(s, now) for s in self.manager.status()]

    def _known(self, name: str) -> None:
        names = [s.name for s in self.manager.status()]
        if name not in names and name in self.manager.unstarted():
            raise _Reply(
                404,
                f"{name} is not one of the services this `pitstop up` runs ({', '.join(names)})",
                "to run it too: `pitstop down`, then `pitstop up` naming it as well"
                " (or naming none: every service)",
            )
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {close[0]}?" if close else "services: " + ", ".join(names)
            raise _Reply(404, f"no service named {name}", hint)

    async def _act(self, name: str, action: str) -> None:
        self._known(name)
        operation: Callable[[str], Coroutine[Any, Any, None]] = {
            "restart": self.manager.restart,
            "stop": self.manager.stop_service,
            "start": self.manager.start_service,
        }[action]
        from pitstop.errors import UserError

        try:
            await operation(name)
        except UserError as exc:  # e.g. a start while `up` stops
            raise _Reply(409, exc.message) from None

    async def _rollback(self, name: str, query: dict[str, list[str]]) -> int:
        from pitstop.errors import UserError

        self._known(name)
        given = query.get("version", [""])[0]
        if given and not given.isdigit():
            raise _Reply(400, "version must be a whole number")
        try:
            return await self.manager.rollback(name, int(given) if given else None)
        except UserError as exc:
            raise _Reply(409, exc.message) from None

    async def _logs(
        self,
        query: dict[str, list[str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        names = query.get("service")
        if names:
            for name in names:
                self._known(name)
        else:  # every service, and the build steps that wrote output
            names = list(
                dict.fromkeys([s.name for s in self.manager.status()] + self.logbook.names())
            )
        try:
            n = int(query.get("n", ["100"])[0])
        except ValueError:
            raise _Reply(400, "n must be a whole number") from None
        n = max(0, min(n, self.limits.max_tail))
        follow = query.get("follow", ["0"])[0] not in ("0", "", "false")
        stream = self._open_stream(set(names)) if follow else None
        unfollow = (
            self.logbook.follow(lambda line: _offer(stream, _line_json(line)))
            if stream is not None
            else None
        )
        try:
            # Lines written from here on go to the stream; the tail reads only up to here.
            snapshot = self.logbook.snapshot(names)
            lines = await asyncio.to_thread(tail, self.logbook.folder, snapshot, n)
            await self._write(writer, _stream_head())
            await self._write(writer, b"".join(_line_json(line).data for line in lines))
            if stream is not None:
                await self._pump(stream, reader, writer)
        finally:
            if unfollow is not None:
                unfollow()
            if stream is not None:
                self._streams -= 1

    async def _events(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = self._open_stream()
        unsubscribe = self.manager.subscribe(
            lambda event: _offer(stream, _ndjson(event_json(event, time.time())))
        )
        try:
            await self._write(writer, _stream_head())
            await self._pump(stream, reader, writer)
        finally:
            unsubscribe()
            self._streams -= 1

    # ------------------------------------------------------------ streams

    def _open_stream(self, wanted: set[str] | None = None) -> _Stream:
        if self._streams >= self.limits.max_streams:
            raise _Reply(503, f"at most {self.limits.max_streams} streams at a time")
        self._streams += 1
        return _Stream(asyncio.Queue(self.limits.stream_queue), wanted)

    async def _pump(
        self, stream: _Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Write the stream's lines until the reader leaves, falls behind, or we close."""
        gone = asyncio.ensure_future(reader.read(1))  # EOF (or anything): the reader left
        try:
            while True:
                getter = asyncio.ensure_future(stream.queue.get())
                done, _ = await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return
                item = getter.result()
                if item is None:  # overflowed: the reader is too slow to keep
                    await self._write(writer, _ndjson({"error": "too slow; stream cut"}).data)
                    return
                if stream.wanted is not None and item.service not in stream.wanted:
                    continue
                await self._write(writer, item.data)
        finally:
            gone.cancel()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # comes as the drain ends, and a stream's pump then waits for lines forever, holding
        # the daemon's exit after `pitstop down` (close() cancels every connection).
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self._write(writer, data)


@dataclass
class _Item:
    data: bytes
    service: str | None = None


@dataclass
class _Stream:
    queue: asyncio.Queue[_Item | None]
    wanted: set[str] | None = None
    overflowed: bool = False


def _offer(stream: _Stream | None, item: _Item) -> None:
    if stream is None or stream.overflowed:
        return
    try:
        stream.queue.put_nowait(item)
    except asyncio.QueueFull:
        stream.overflowed = True
        # Make room for the marker that ends the stream.
        stream.queue.get_nowait()
        stream.queue.put_nowait(None)


def _line_json(line: LogLine) -> _Item:
    data = {"time": line.stamp, "service": line.service, "stream": line.stream, "text": line.text}
    return _Item(_ndjson(data).data, line.service)


def _ndjson(obj: object) -> _Item:
    return _Item(json.dumps(obj, ensure_ascii=False).encode() + b"\n")


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Reply(405, f"use {allowed} here")


def _head(start: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    """A response head: start line, header lines, blank line."""
    return b"".join(
        [start, b"\r\n", *(name + b": " + value + b"\r\n" for name, value in fields), b"\r\n"]
    )


def _stream_head() -> bytes:
    # No length: the body ends when the connection closes (RFC 9112 section 6.3, rule 8).
    return _head(
        b"HTTP/1.1 200 OK",
        [
            (b"Content-Type", b"application/x-ndjson"),
            (b"Cache-Control", b"no-store"),
            (b"Connection", b"close"),
        ],
    )


def _json(status: int, obj: object) -> bytes:
    body = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
    head = _head(
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}".encode(),
        [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ],
    )
    return head + body


def _error(reply: _Reply) -> bytes:
    obj: dict[str, Any] = {"error": reply.error}
    if reply.hint:
        obj["hint"] = reply.hint
    return _json(reply.status, obj)


def record_event(logbook: LogBook, event: object) -> None:
    """Write what an event says about a service to its log file."""
    if isinstance(event, ev.InstanceOutput):
        logbook.write(event.service, event.stream, event.line)
        return
    source = getattr(event, "source", None)
    # A build step's events go to the log of each service it builds (`pitstop logs api`
    # shows api's build); a notice about a shared step names them all ("api,web").
    names: tuple[str, ...] = getattr(event, "services", ())
    if not names:
        names = tuple(source.name.split(",")) if source is not None else ("pitstop",)
    if isinstance(event, eng.TaskOutput):
        for name in names:
            logbook.write(name, event.stream, event.line)
        return
    text = summary(event)
    if text is not None:
        # What pitstop itself says (no source) goes to the log named "pitstop".
        for name in names:
            logbook.write(name, "pitstop", text)


@contextlib.asynccontextmanager
async def serve_control(
    manager: Managed, state: ProjectState, limits: Limits = Limits()
) -> AsyncIterator[ControlServer]:
    """This process is the project's one `up`: take the lock, record the pid, write every
    service's output to its log file, and serve the control socket until the block ends."""
    lock = DaemonLock(state)
    lock.acquire()
    logbook = LogBook(state.logs)
    unsubscribe = manager.subscribe(lambda event: record_event(logbook, event))
    server = ControlServer(manager, state, logbook, limits)
    try:
        await server.open()
        yield server
    finally:
        await server.close()
        unsubscribe()
        logbook.close()
        lock.release()
