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

from pitstop.watch.changes import DEFAULT_DEBOUNCE_MS, WATCHER_STEP_MS, watch_changes
from pitstop.watch.filters import FilterOptions, PathFilter
from tests.helpers import async_wait_until

DEADLINE_S = 10.0
#: How long one probe may go unseen before another is written (the watcher was not ready).
PROBE_RETRY_S = 0.2


def run(coro: Callable[[], Coroutine[Any, Any, None]], deadline: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(coro(), deadline))


def most_batches(elapsed_s: float) -> int:
    """The most batches that changes starting after a moment and all reported `elapsed_s`
    after it can make, while the window works. A bound that grows with the time the changes
    took, not a guess at how fast this machine is: a loaded machine that pauses the writer
    longer than a window splits a burst, but never into more batches than this.

    Why: with the quiet window `w` (`DEFAULT_DEBOUNCE_MS` less the watcher's step, which
    watchfiles has waited already; see `changes._WatchSettings.quiet_ms`), a batch is handed
    out no sooner than `w` after its first change, and the next batch's first change comes
    after that. So N batches take at least N * w from the first change to the last batch.
    A watcher that handed out changes without waiting out the window fails this bound too.
    """
    window_s = (DEFAULT_DEBOUNCE_MS - WATCHER_STEP_MS) / 1000
    return int(elapsed_s / window_s + 1e-9)


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class HeldClock:
    """The event loop's clock, which a test can hold still. While it is held no quiet window
    ends, as if every change came at once: a burst is one batch however slowly this machine
    writes it, so a test can assert exactly one batch without betting on the scheduler."""

    def __init__(self) -> None:
        self._held: float | None = None

    def __call__(self) -> float:
        return asyncio.get_running_loop().time() if self._held is None else self._held

    def hold(self) -> None:
        self._held = asyncio.get_running_loop().time()

    def release(self) -> None:
        self._held = None


class Collector:
    """Batches from a real watcher, readable with a deadline; also an async iterator of them.

    `reported` holds every path the watcher handed over, before filtering: watchfiles calls
    the filter on the event loop and hands its batch to `watch_changes` without yielding to
    the loop in between, so once a path is in `reported` its batch is queued for coalescing.
    """

    def __init__(self, root: Path, options: FilterOptions | None = None, **kwargs: Any) -> None:
        self.root = root
        self.stop_event = asyncio.Event()
        self.reported: set[Path] = set()
        path_filter = PathFilter([root], options)

        def recording_filter(change: object, path: str) -> bool:
            self.reported.add(Path(path))
            return path_filter(change, path)

        self.stream = watch_changes(
            [root],
            watch_filter=recording_filter,
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

    async def handed_over(self, paths: frozenset[Path]) -> None:
        """Wait until the watcher has handed every one of `paths` over."""
        await async_wait_until(lambda: paths <= self.reported, DEADLINE_S, f"{len(paths)} paths")

    async def gather(self, expected: frozenset[Path]) -> list[frozenset[Path]]:
        """Batches, in order, until every path in `expected` has come."""
        batches: list[frozenset[Path]] = []
        while not expected <= frozenset().union(*batches):
            batches.append(await self.next())
        return batches

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
