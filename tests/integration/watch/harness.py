"""Helpers for watch tests with real files and real inotify events.

A `Collector` consumes `watch_changes` in a task so tests can wait for the next batch with a
deadline (cancelling ``anext`` on an async generator would close it). ``prime`` makes sure the
OS watcher is live before a test writes anything: watchfiles gives no "ready" signal, so we
touch fresh probe files until one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from pitstop.watch.changes import watch_changes
from pitstop.watch.filters import FilterOptions, PathFilter
from tests.helpers import async_wait_until

DEADLINE_S = 10.0
#: How long one probe may go unseen before another is written (the watcher was not ready).
PROBE_RETRY_S = 0.2


def run(coro: Callable[[], Coroutine[Any, Any, None]], deadline: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(coro(), deadline))


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Collector:
    """Batches from a real watcher, readable with a deadline; also an async iterator of them."""

    def __init__(self, root: Path, options: FilterOptions | None = None, **kwargs: Any) -> None:
        self.root = root
        self.stop_event = asyncio.Event()
        self.stream = watch_changes(
            [root],
            watch_filter=PathFilter([root], options),
            stop_event=self.stop_event,
            **kwargs,
        )
        self.batches: asyncio.Queue[frozenset[Path]] = asyncio.Queue()
        self.count = 0
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for batch in self.stream:
            self.count += 1
            self.batches.put_nowait(batch)

    async def next(self, timeout: float = DEADLINE_S) -> frozenset[Path]:
        return await asyncio.wait_for(self.batches.get(), timeout)

    async def prime(self, suffix: str = ".txt") -> None:
        """Return once the watcher demonstrably sees changes; probe batches are consumed."""
        probes: list[Path] = []
        written = 0.0

        def live() -> bool:
            nonlocal written
            while not self.batches.empty():
                if probes and probes[-1] in self.batches.get_nowait():
                    return True
            if time.monotonic() - written >= PROBE_RETRY_S:  # not live yet: a new probe
                probes.append(write(self.root / f"probe-{len(probes)}{suffix}"))
                written = time.monotonic()
            return False

        await async_wait_until(live, DEADLINE_S, "the watcher to become ready")

    async def expect_only(self, sentinel: Path) -> None:
        """Write ``sentinel``; the next batch must be exactly it (nothing else was pending)."""
        write(sentinel)
        assert await self.next() == frozenset({sentinel})

    async def __aiter__(self) -> AsyncIterator[frozenset[Path]]:
        while True:
            yield await self.batches.get()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
