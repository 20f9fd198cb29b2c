"""File events → debounced batches of changed paths, and the environment that hands them to a run.

`watch_changes` turns a change source into an async iterator of ``frozenset[Path]`` batches.
The source is inotify read by the event loop on Linux (`inotify.py`: nothing runs while idle)
and `watchfiles.awatch` elsewhere (FSEvents/...), or when polling (on request, or when the
native watcher cannot start). The watchfiles notes below apply where it is used.

Debounce is ours, not watchfiles'. Its Rust thread wakes every ``step`` ms and hands back what
the OS reported once a step brings nothing new (or, for a growing batch, after ``debounce`` ms):
so ``step`` bounds how late we first hear of a change. We keep it small (`WATCHER_STEP_MS`, less
for a debounce under four steps), let watchfiles hand over growing batches after two steps, and
coalesce here. A batch starts with the first change and ends once ``debounce`` ms pass with
nothing new: a burst (100 quick writes, a ``git checkout`` of 500 files) keeps extending it and
ends up in ONE batch. (The quiet step after which watchfiles handed a batch over counts as
part of that window.) A batch ends no later than `MAX_BATCH_WAIT_MS` (or 10 windows) after
its first change, so an endless stream still yields. A single write is thus reported
``debounce`` ms plus up to one step after it happened, not ``debounce`` to ``2 * debounce``
as when the window was watchfiles' step. Changes the consumer has not picked up yet are merged, so a busy
consumer also sees one batch, not a backlog.

watchfiles is imported lazily: only watch mode pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pitstop.watch.choices import DEFAULT_DEBOUNCE_MS as DEFAULT_DEBOUNCE_MS  # its old home

logger = logging.getLogger(__name__)

#: How often watchfiles' thread looks at what the OS reported (its ``step``) at most. Smaller
#: is quicker to notice a change but wakes an idle watcher more often (see docs/benchmarks.md).
WATCHER_STEP_MS = 10
#: Longest a continuous stream of changes can postpone a batch (at least 10 quiet windows).
MAX_BATCH_WAIT_MS = 2_000
#: How long the watcher thread blocks before coming back to Python; bounds shutdown latency.
_RUST_TIMEOUT_MS = 1_000

#: ``async def awatch(*paths, **options)`` — the one OS seam, injectable for tests.
AwatchFn = Callable[..., AsyncIterator[set[tuple[Any, str]]]]
PathPredicate = Callable[[object, str], bool]
#: Seconds on the event loop's clock (``loop.time()``); injectable for tests.
Clock = Callable[[], float]


class _StopFlag:
    """What the watcher thread polls (``is_set``): our own close request or the caller's event.

    The thread checks it every ``step`` ms, so closing the iterator returns within one step
    instead of waiting for the thread's timeout.
    """

    def __init__(self, external: asyncio.Event | None) -> None:
        self._external = external
        self._closing = False
        self._callbacks: list[Callable[[], None]] = []
        self._watching_external: asyncio.Task[None] | None = None

    def is_set(self) -> bool:
        return self._closing or (self._external is not None and self._external.is_set())

    def set(self) -> None:
        self._closing = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_set(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when set: an event-driven source (inotify) waits so, not polling.

        The caller's event has no callbacks, so a task waits on it (only when there is one).
        """
        self._callbacks.append(callback)
        if self._external is not None and self._watching_external is None:
            self._watching_external = asyncio.ensure_future(self._follow(self._external))

    async def _follow(self, external: asyncio.Event) -> None:
        await external.wait()
        self.set()

    def close(self) -> None:
        self.set()
        if self._watching_external is not None:
            self._watching_external.cancel()


@dataclass(frozen=True)
class _Changes:
    """Paths the watcher handed over ``at`` (clock seconds); quiet for ``quiet_s`` ends a batch."""

    paths: frozenset[Path]
    at: float
    quiet_s: float


@dataclass(frozen=True)
class _End:
    error: BaseException | None = None


_Item = _Changes | _End


async def watch_changes(
    paths: Sequence[Path],
    *,
    watch_filter: PathPredicate | None = None,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    poll: bool = False,
    poll_delay_ms: int = 300,
    stop_event: asyncio.Event | None = None,
    awatch: AwatchFn | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[frozenset[Path]]:
    """Yield batches of absolute changed paths under ``paths`` until ``stop_event`` is set.

    ``watch_filter(change, path) -> bool`` drops paths (a `PathFilter` fits). A batch ends once
    ``debounce_ms`` pass without a new change (when polling, ``debounce_ms`` plus a scan
    interval). ``poll`` forces polling; native watching that fails to start (or dies) falls
    back to polling with a warning. Closing the iterator (``aclose``, or cancelling the task
    iterating it) stops the watcher. Raises FileNotFoundError when a watched path does not exist.
    """
    roots = [p.absolute() for p in paths]
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"watch path does not exist: {root}")
    stop = _StopFlag(stop_event)
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    now = clock or asyncio.get_running_loop().time
    settings = _WatchSettings(watch_filter, debounce_ms, poll_delay_ms, stop)
    pump = asyncio.create_task(_pump(awatch, roots, settings, poll, queue, now))
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield await _coalesce(item, queue, now)
    finally:
        stop.close()
        # The thread sees the flag within one step; wait so no watcher outlives the iterator.
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _coalesce(first: _Changes, queue: asyncio.Queue[_Item], now: Clock) -> frozenset[Path]:
    """``first`` plus every change that follows it without a quiet window; an end stays queued."""
    merged = set(first.paths)
    quiet_until = first.at + first.quiet_s
    cap = first.at + max(MAX_BATCH_WAIT_MS / 1000, 10 * first.quiet_s)
    while True:
        if queue.empty():
            remaining = min(quiet_until, cap) - now()
            if remaining <= 0:
                break
            try:
                # On a timeout the get is cancelled, which leaves the queue untouched. Not
                # wait_for: on Python 3.11 it swallows a cancellation that comes as an item
                # does, and the watch would go on after it was stopped.
                async with asyncio.timeout(remaining):
                    item = await queue.get()
            except TimeoutError:
                continue  # the clock says whether the window is over
        else:
            item = queue.get_nowait()  # a backlog is merged even once the window is over
        if isinstance(item, _End):
            queue.put_nowait(item)  # the consumer sees it on its next read
            break
        merged |= item.paths
        quiet_until = max(quiet_until, item.at + item.quiet_s)
    return frozenset(merged)


@dataclass(frozen=True)
class _WatchSettings:
    watch_filter: PathPredicate | None
    debounce_ms: int
    poll_delay_ms: int
    stop: _StopFlag

    def quiet_ms(self, polling: bool, stepped: bool = True) -> int:
        # A poller only sees changes once per scan, so a window shorter than the scan interval
        # would cut a burst at every scan: when polling, a batch ends after a whole scan
        # interval (plus the window) brought nothing new. watchfiles hands a batch over only
        # after a step that brought nothing new: that step is part of the window already.
        # inotify read directly (not `stepped`) hands each change over at once.
        window = max(0, self.debounce_ms) + (self.poll_delay_ms if polling else 0)
        return max(0, window - self.step_ms) if stepped else window

    @property
    def step_ms(self) -> int:
        # While changes keep coming, watchfiles hands a batch over every two steps or so; a
        # window of four steps bridges those gaps (and the time spent filtering a batch).
        return max(1, min(WATCHER_STEP_MS, self.debounce_ms // 4))

    def awatch_kwargs(self, polling: bool) -> dict[str, Any]:
        return {
            "watch_filter": self.watch_filter,
            "step": self.step_ms,  # how soon we hear of a change; we debounce ourselves
            "debounce": self.step_ms,  # a growing batch is handed over after about two steps
            "stop_event": self.stop,
            "rust_timeout": _RUST_TIMEOUT_MS,
            "force_polling": polling,
            "poll_delay_ms": self.poll_delay_ms,
        }


async def _pump(
    awatch: AwatchFn | None,
    roots: list[Path],
    settings: _WatchSettings,
    poll: bool,
    queue: asyncio.Queue[_Item],
    now: Clock,
) -> None:
    """Run the watcher, falling back to polling once, and forward changes to ``queue``."""
    try:
        try:
            await _forward(awatch or _default_awatch(poll), roots, settings, poll, queue, now)
        except Exception as exc:
            if poll:
                raise
            logger.warning("native file watching failed (%s); falling back to polling", exc)
            await _forward(awatch or _default_awatch(True), roots, settings, True, queue, now)
    except Exception as exc:
        queue.put_nowait(_End(exc))
    else:
        queue.put_nowait(_End())


async def _forward(
    awatch_fn: AwatchFn,
    roots: list[Path],
    settings: _WatchSettings,
    poll: bool,
    queue: asyncio.Queue[_Item],
    now: Clock,
) -> None:
    logger.debug("watching %s (polling=%s)", ", ".join(map(str, roots)), poll)
    stepped = not getattr(awatch_fn, "hands_over_at_once", False)
    quiet_s = settings.quiet_ms(poll, stepped) / 1000
    async for raw in awatch_fn(*roots, **settings.awatch_kwargs(poll)):
        batch = frozenset(Path(path) for _change, path in raw)
        if batch:
            queue.put_nowait(_Changes(batch, now(), quiet_s))


def _default_awatch(poll: bool) -> AwatchFn:
    """inotify read by the event loop on Linux (no wake-ups while idle), else watchfiles.

    watchfiles' thread wakes every step to look for changes: with the 10 ms step that quick
    reruns need, 0.45 % CPU on an idle 20,000-file tree, against 0.00 % waiting on the inotify
    descriptor (docs/benchmarks.md). Polling, and every other OS, stay with watchfiles.
    """
    if not poll:
        from pitstop.watch import inotify

        if inotify.available():
            return cast(AwatchFn, inotify.inotify_awatch)
    from watchfiles import awatch  # lazy: CLI start-up should not pay for it

    return cast(AwatchFn, awatch)


# ---------------------------------------------------------------------------------------------
# Handing changed paths to the command

ENV_CHANGED_PATHS = "PITSTOP_CHANGED_PATHS"
ENV_CHANGED_PATHS_FILE = "PITSTOP_CHANGED_PATHS_FILE"
#: Beyond these, the list goes to a file: environments have size limits (ARG_MAX covers both
#: argv and env) and a huge variable slows down every child.
MAX_INLINE_PATHS = 100
MAX_INLINE_BYTES = 8 * 1024


def changed_paths_env(paths: Iterable[Path], tmpdir: Path) -> dict[str, str]:
    """Environment entries telling a run which paths changed. Both keys are always present.

    - ``PITSTOP_CHANGED_PATHS``: the absolute paths, sorted, joined with ``os.pathsep``;
    - ``PITSTOP_CHANGED_PATHS_FILE``: ``""`` when the list fits inline. When it does not (more
      than MAX_INLINE_PATHS paths, more than MAX_INLINE_BYTES, or a path containing
      ``os.pathsep`` or a newline), the list is written to a new file in ``tmpdir``, one path
      per line, this key names it and ``PITSTOP_CHANGED_PATHS`` is EMPTY rather than truncated,
      so nobody acts on a partial list. The caller owns ``tmpdir`` and its cleanup.

    Both keys are set even when empty so values inherited from an outer pitstop never leak in.
    Pass the result as ``env=``; it must never be interpolated into a shell line.
    """
    absolute = sorted({str(p.absolute()) for p in paths})
    joined = os.pathsep.join(absolute)
    if not _needs_file(absolute, joined):
        return {ENV_CHANGED_PATHS: joined, ENV_CHANGED_PATHS_FILE: ""}
    fd, name = tempfile.mkstemp(prefix="pitstop-changed-", suffix=".txt", dir=tmpdir)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
        file.writelines(path + "\n" for path in absolute)
    return {ENV_CHANGED_PATHS: "", ENV_CHANGED_PATHS_FILE: name}


def _needs_file(paths: list[str], joined: str) -> bool:
    if (
        len(paths) > MAX_INLINE_PATHS
        or len(joined.encode("utf-8", "surrogateescape")) > MAX_INLINE_BYTES
    ):
        return True
    return any(os.pathsep in p or "\n" in p for p in paths)
