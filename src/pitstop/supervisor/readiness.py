"""Is a new instance ready to take traffic? One waiter per kind of `ready` check.

Each waiter returns when its check passes and never gives up by itself: the instance runs
it against the `ready_timeout` deadline and against the instance's own exit, so these stay
small. Repeated checks (command, http, tcp) poll a real condition at a short interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.engine import process
from pitstop.supervisor.notify import NotifySocket
from pitstop.taskfile.service import (
    ReadyCheck,
    ReadyCommand,
    ReadyDelay,
    ReadyHttp,
    ReadyLog,
    ReadyNotify,
    ReadyTcp,
)

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.05


class LogWatcher:
    """Matches the instance's output lines against the `ready.log` pattern."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.matched = asyncio.Event()

    def feed(self, line: str) -> None:
        if not self.matched.is_set() and self.pattern.search(line):
            self.matched.set()


@dataclass
class ReadyContext:
    """What the waiters need from the instance being checked."""

    notify: NotifySocket | None = None
    log_watcher: LogWatcher | None = None
    host: str | None = None
    port: int | None = None
    cwd: Path | str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


async def wait_ready(check: ReadyCheck, ctx: ReadyContext) -> None:
    """Return once `check` passes (the caller bounds the wait)."""
    if isinstance(check, ReadyNotify):
        assert ctx.notify is not None, "notify check without a notify socket"
        await ctx.notify.ready.wait()
    elif isinstance(check, ReadyLog):
        assert ctx.log_watcher is not None, "log check without a log watcher"
        await ctx.log_watcher.matched.wait()
    elif isinstance(check, ReadyDelay):
        await asyncio.sleep(check.seconds)
    elif isinstance(check, ReadyCommand):
        await _until_command_succeeds(check, ctx)
    elif isinstance(check, ReadyHttp):
        await _until(lambda: _http_ok(_host(ctx), _port(ctx), check.path))
    elif isinstance(check, ReadyTcp):
        await _until(lambda: _tcp_open(_host(ctx), _port(ctx)))


def _host(ctx: ReadyContext) -> str:
    assert ctx.host is not None, "network check without a private address"
    return ctx.host


def _port(ctx: ReadyContext) -> int:
    assert ctx.port is not None, "network check without a private port"
    return ctx.port


async def _until(probe: object) -> None:
    assert callable(probe)
    while not await probe():
        await asyncio.sleep(PROBE_INTERVAL)


async def _until_command_succeeds(check: ReadyCommand, ctx: ReadyContext) -> None:
    while True:
        child = await process.spawn(
            ["/bin/sh", "-c", check.command],
            cwd=ctx.cwd,
            env=ctx.env,
            on_line=lambda _stream, _line: None,
            stdin_devnull=True,
        )
        try:
            status = await child.wait()
        except asyncio.CancelledError:
            await child.terminate(timeout=1.0)
            raise
        if status == 0:
            return
        log.debug("ready command %r exited %d; retrying", check.command, status)
        await asyncio.sleep(check.interval)


async def _tcp_open(host: str, port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _http_ok(host: str, port: int, path: str) -> bool:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        status_line = await reader.readline()
    except OSError:
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    return len(parts) >= 2 and parts[1][:1] == b"2" and len(parts[1]) == 3
