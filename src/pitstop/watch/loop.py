"""The watch loop: changes and key presses in, runs out, one at a time, events to a callback.

Everything goes through one queue consumed by one coroutine (as hupper does): batches of
changed paths, manual triggers and stop requests are messages, and the run in progress is the
only other thing the loop waits on. That makes the policies easy to state and to keep:

- ``OnBusy.RESTART``: cancel the running run (its ``run_once`` kills its processes on
  CancelledError), wait until the cancellation has completed, then start again with the
  paths of the cancelled run plus the new ones (the cancelled run never finished with them);
- ``OnBusy.QUEUE``: let the run finish, then run ONCE more with the union of everything that
  changed meanwhile;
- ``OnBusy.IGNORE``: drop changes that arrive while busy (reported as `ChangesIgnored`).

A manual trigger is a change without paths and follows the same policy. Runs never overlap.
After a failed run the loop waits for the next change rather than retrying in a loop.
The loop prints nothing; the caller renders the `WatchEvent`s it is given, each naming its
`source` (the watched task, when the caller said which).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pitstop.engine.events import Source
from pitstop.watch.choices import OnBusy as OnBusy  # re-exported: its old home

logger = logging.getLogger(__name__)

Paths = frozenset[Path]
RunOnce = Callable[[Paths], Awaitable[bool]]


@dataclass(frozen=True)
class RunStarting:
    """A run is about to start; ``trigger_paths`` is empty for the first run and manual ones."""

    trigger_paths: Paths
    reason: Literal["start", "change", "manual"] = "change"
    source: Source | None = None


@dataclass(frozen=True)
class RunEnded:
    """``run_once`` returned (``ok`` is its result) or raised (``error``, ``ok`` is False)."""

    ok: bool
    duration_s: float
    error: Exception | None = field(default=None, compare=False)
    source: Source | None = None


@dataclass(frozen=True)
class RunCancelled:
    """The run in progress was cancelled (restart policy, or the loop stopping)."""

    source: Source | None = None
    # True: a change cancelled it (--on-busy restart); False: the loop is stopping (q, Ctrl-C).
    restart: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Waiting:
    """Idle until the next change (after a run, or before the first one with ``postpone``)."""

    source: Source | None = None


@dataclass(frozen=True)
class ChangesIgnored:
    """Changes arrived while busy and ``OnBusy.IGNORE`` dropped them."""

    paths: Paths
    source: Source | None = None


WatchEvent = RunStarting | RunEnded | RunCancelled | Waiting | ChangesIgnored
Notify = Callable[[WatchEvent], None]


@dataclass(frozen=True)
class _Change:
    paths: Paths
    manual: bool = False


@dataclass(frozen=True)
class _Stop:
    pass


@dataclass(frozen=True)
class _ChangesEnded:
    error: BaseException | None = None


_Message = _Change | _Stop | _ChangesEnded


@dataclass
class _Run:
    task: asyncio.Task[bool]
    paths: Paths
    started: float


def _ignore_event(_event: WatchEvent) -> None:
    pass


class WatchLoop:
    """Run ``run_once`` on changes from ``changes`` according to ``on_busy``.

    ``trigger_now`` and ``stop`` may be called from callbacks on the loop's thread (key
    reader, signal handlers) before or while ``run`` is running.
    """

    def __init__(
        self,
        run_once: RunOnce,
        changes: AsyncIterable[Paths],
        *,
        on_busy: OnBusy = OnBusy.RESTART,
        postpone: bool = False,
        notify: Notify = _ignore_event,
        source: Source | None = None,
    ) -> None:
        self._run_once = run_once
        self._changes = changes
        self._on_busy = on_busy
        self._postpone = postpone
        self._notify_fn = notify
        self._source = source
        self._inbox: asyncio.Queue[_Message] = asyncio.Queue()
        self._run: _Run | None = None
        self._pending: Paths | None = None  # queued rerun (QUEUE policy); None: nothing queued
        self._changes_ended = False
        self._deferred: list[_Message] = []  # taken from the inbox early, handled next
        self._get: asyncio.Task[_Message] | None = None

    def trigger_now(self) -> None:
        """Run now, as if a change without paths had arrived (Enter / ``r``)."""
        self._inbox.put_nowait(_Change(frozenset(), manual=True))

    def stop(self) -> None:
        """Cancel the run in progress and make `run` return."""
        self._inbox.put_nowait(_Stop())

    def _notify(self, event: WatchEvent) -> None:
        self._notify_fn(event if self._source is None else replace(event, source=self._source))

    async def run(self) -> None:
        """Loop until `stop`, or until ``changes`` ends and the last run has finished.

        An exception from the change stream is re-raised after the run in progress is cancelled.
        """
        reader = asyncio.create_task(self._read_changes())
        try:
            await self._main()
        finally:
            await self._cancel_run()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _main(self) -> None:
        if self._postpone:
            self._notify(Waiting())
        else:
            self._start(frozenset(), "start")
        try:
            while not (self._changes_ended and self._run is None):
                message = await self._next_message()
                if message is None:
                    self._run_ended()
                elif not await self._handle(message):
                    return
        finally:
            if self._get is not None:
                self._get.cancel()

    async def _next_message(self) -> _Message | None:
        """The next message, or None when the run in progress ended first."""
        if self._deferred:
            return self._deferred.pop(0)
        if self._get is None:
            self._get = asyncio.create_task(self._inbox.get())
        waiting_on: set[asyncio.Future[Any]] = {self._get}
        if self._run is not None:
            waiting_on.add(self._run.task)
        await asyncio.wait(waiting_on, return_when=asyncio.FIRST_COMPLETED)
        # A finished run is handled first (the pending get is kept for the next call), so a
        # change arriving at the same moment starts a fresh run instead of meeting a busy one.
        if self._run is not None and self._run.task.done():
            return None
        get, self._get = self._get, None
        return get.result()

    def _run_ended(self) -> None:
        run, self._run = self._run, None
        if run is not None:  # always, since _next_message saw it end
            self._report(run)
        self._after_run()

    async def _handle(self, message: _Message) -> bool:
        """Act on one message; False when the loop should end."""
        if isinstance(message, _Stop):
            return False
        if isinstance(message, _ChangesEnded):
            self._changes_ended = True
            if message.error is not None:
                raise message.error
            return True
        await self._on_change(message)
        return True

    async def _on_change(self, change: _Change) -> None:
        reason: Literal["change", "manual"] = "manual" if change.manual else "change"
        if self._run is None:
            self._start(change.paths, reason)
        elif self._on_busy is OnBusy.RESTART:
            paths = self._run.paths | change.paths
            await self._cancel_run(restart=True)
            self._start(paths | self._take_queued_changes(), reason)
        elif self._on_busy is OnBusy.QUEUE:
            self._pending = (self._pending or frozenset()) | change.paths
        else:
            self._notify(ChangesIgnored(change.paths))

    def _start(self, paths: Paths, reason: Literal["start", "change", "manual"]) -> None:
        self._notify(RunStarting(paths, reason))
        task = asyncio.create_task(self._call_run_once(paths))
        self._run = _Run(task, paths, time.monotonic())

    async def _call_run_once(self, paths: Paths) -> bool:
        # Await inside a coroutine of our own so run_once may be any awaitable factory.
        return await self._run_once(paths)

    def _report(self, run: _Run) -> None:
        """Emit the event for a run that ended on its own."""
        duration = time.monotonic() - run.started
        if run.task.cancelled():  # cancelled from inside run_once; ours go through _cancel_run
            self._notify(RunCancelled())
            return
        error = run.task.exception()
        if error is None:
            self._notify(RunEnded(run.task.result(), duration))
        elif isinstance(error, Exception):
            logger.debug("run raised", exc_info=error)
            self._notify(RunEnded(False, duration, error))
        else:
            raise error  # KeyboardInterrupt, SystemExit: not a failed build

    def _after_run(self) -> None:
        if self._pending is not None:
            paths, self._pending = self._pending, None
            self._start(paths, "change")
        elif not self._changes_ended:
            self._notify(Waiting())

    async def _cancel_run(self, *, restart: bool = False) -> None:
        """Cancel the run in progress and wait until its cancellation has completed."""
        run, self._run = self._run, None
        if run is None:
            return
        if run.task.done():
            self._report(run)
            return
        run.task.cancel()
        # Wait for run_once's cleanup (killing its process groups) so runs never overlap.
        await asyncio.wait({run.task})
        if not run.task.cancelled() and run.task.exception() is not None:
            logger.debug("cancelled run raised", exc_info=run.task.exception())
        self._notify(RunCancelled(restart=restart))

    def _take_queued_changes(self) -> Paths:
        """Merge changes that queued up meanwhile, so one restart covers them all."""
        merged: set[Path] = set()
        while not self._inbox.empty():
            message = self._inbox.get_nowait()
            if not isinstance(message, _Change):
                self._deferred.append(message)
                break
            merged |= message.paths
        return frozenset(merged)

    async def _read_changes(self) -> None:
        try:
            async for batch in self._changes:
                self._inbox.put_nowait(_Change(batch))
        except Exception as exc:
            self._inbox.put_nowait(_ChangesEnded(exc))
        else:
            self._inbox.put_nowait(_ChangesEnded())
        finally:
            aclose = getattr(self._changes, "aclose", None)
            if aclose is not None:
                await aclose()
