"""The watch loop's policies with a scripted change source and a scripted run_once (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from pitstop.engine.events import Source
from pitstop.watch.loop import (
    ChangesIgnored,
    OnBusy,
    RunCancelled,
    RunEnded,
    RunStarting,
    Waiting,
    WatchEvent,
    WatchLoop,
)
from tests.helpers import async_wait_until

#: Longer than async_wait_until's own 10 s, so a wait that times out says what it waited for.
DEADLINE_S = 20.0


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), DEADLINE_S))


class FakeChanges:
    """An async iterator of batches the test pushes by hand."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[frozenset[Path] | BaseException | None] = asyncio.Queue()

    def push(self, *names: str) -> None:
        self._queue.put_nowait(frozenset(Path(n) for n in names))

    def end(self, error: BaseException | None = None) -> None:
        self._queue.put_nowait(error)

    def __aiter__(self) -> FakeChanges:
        return self

    async def __anext__(self) -> frozenset[Path]:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item


class FakeRuns:
    """run_once that blocks until released; records calls, overlap and cancellations."""

    def __init__(self) -> None:
        self.calls: list[frozenset[Path]] = []
        self.gates: list[asyncio.Future[bool]] = []
        self.active = 0
        self.max_active = 0
        self.cancelled = 0
        self.cleanup_gate: asyncio.Event | None = None  # set: cancellation cleanup is slow

    async def __call__(self, paths: frozenset[Path]) -> bool:
        gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.calls.append(paths)
        self.gates.append(gate)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await gate
        except asyncio.CancelledError:
            if self.cleanup_gate is not None:  # like terminating a process group with a grace
                await self.cleanup_gate.wait()
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    def release(self, index: int, ok: bool = True) -> None:
        self.gates[index].set_result(ok)


class Harness:
    def __init__(self, on_busy: OnBusy = OnBusy.RESTART, postpone: bool = False) -> None:
        self.changes = FakeChanges()
        self.runs = FakeRuns()
        self.events: list[WatchEvent] = []
        self.loop = WatchLoop(
            self.runs, self.changes, on_busy=on_busy, postpone=postpone, notify=self.events.append
        )
        self.task: asyncio.Task[None] = asyncio.create_task(self.loop.run())

    async def stop(self) -> None:
        self.loop.stop()
        await self.task

    def finished(self) -> list[RunEnded]:
        return [e for e in self.events if isinstance(e, RunEnded)]


def paths(*names: str) -> frozenset[Path]:
    return frozenset(Path(n) for n in names)


def test_first_run_then_waits() -> None:
    async def scenario() -> None:
        h = Harness()
        await async_wait_until(lambda: h.runs.calls)
        h.runs.release(0)
        await async_wait_until(lambda: Waiting() in h.events)
        assert h.events == [RunStarting(frozenset(), "start"), h.events[1], Waiting()]
        assert isinstance(h.events[1], RunEnded) and h.events[1].ok
        await h.stop()

    run(scenario)


def test_postpone_waits_for_a_change() -> None:
    async def scenario() -> None:
        h = Harness(postpone=True)
        h.changes.push("a")
        await async_wait_until(lambda: h.runs.calls)
        assert h.events[:2] == [Waiting(), RunStarting(paths("a"), "change")]
        assert h.runs.calls == [paths("a")]
        await h.stop()

    run(scenario)


def test_restart_cancels_waits_for_cleanup_and_reruns_with_union() -> None:
    async def scenario() -> None:
        h = Harness(OnBusy.RESTART, postpone=True)
        h.runs.cleanup_gate = asyncio.Event()
        h.changes.push("a")
        await async_wait_until(lambda: len(h.runs.calls) == 1)
        h.changes.push("b")
        await async_wait_until(lambda: h.runs.gates[0].cancelled(), message="first run cancelled")
        # Cleanup still in progress: the next run must not have started.
        for _ in range(20):  # give the loop every chance to (wrongly) start it
            await asyncio.sleep(0)
        assert len(h.runs.calls) == 1
        h.runs.cleanup_gate.set()
        await async_wait_until(lambda: len(h.runs.calls) == 2)
        assert h.runs.calls[1] == paths("a", "b")
        assert h.runs.max_active == 1
        (cancelled,) = [e for e in h.events if isinstance(e, RunCancelled)]
        assert cancelled.restart  # printed as "files changed (--on-busy restart)"
        h.runs.release(1)
        await async_wait_until(lambda: h.finished())
        await h.stop()

    run(scenario)


def test_queue_reruns_once_with_everything_that_changed() -> None:
    async def scenario() -> None:
        h = Harness(OnBusy.QUEUE, postpone=True)
        h.changes.push("a")
        await async_wait_until(lambda: len(h.runs.calls) == 1)
        h.changes.push("b")
        h.changes.push("c")
        h.loop.trigger_now()
        await async_wait_until(lambda: h.loop._inbox.empty())
        assert len(h.runs.calls) == 1
        h.runs.release(0)
        await async_wait_until(lambda: len(h.runs.calls) == 2)
        assert h.runs.calls[1] == paths("b", "c")
        h.runs.release(1)
        await async_wait_until(lambda: len(h.finished()) == 2)
        assert h.events[-1] == Waiting()
        assert len(h.runs.calls) == 2 and h.runs.cancelled == 0
        await h.stop()

    run(scenario)


def test_ignore_drops_changes_while_busy() -> None:
    async def scenario() -> None:
        h = Harness(OnBusy.IGNORE, postpone=True)
        h.changes.push("a")
        await async_wait_until(lambda: len(h.runs.calls) == 1)
        h.changes.push("b")
        await async_wait_until(lambda: ChangesIgnored(paths("b")) in h.events)
        h.runs.release(0)
        await async_wait_until(lambda: h.events[-1] == Waiting())
        assert h.runs.calls == [paths("a")]
        h.changes.push("c")  # idle again: changes run
        await async_wait_until(lambda: len(h.runs.calls) == 2)
        await h.stop()

    run(scenario)


def test_manual_trigger() -> None:
    async def scenario() -> None:
        h = Harness(postpone=True)
        h.loop.trigger_now()
        await async_wait_until(lambda: h.runs.calls)
        assert RunStarting(frozenset(), "manual") in h.events
        await h.stop()

    run(scenario)


def test_failed_run_waits_for_next_change() -> None:
    async def scenario() -> None:
        h = Harness()
        await async_wait_until(lambda: h.runs.calls)
        h.runs.release(0, ok=False)
        await async_wait_until(lambda: h.events[-1] == Waiting())
        assert [f.ok for f in h.finished()] == [False]
        assert len(h.runs.calls) == 1
        await h.stop()

    run(scenario)


def test_run_once_exception_is_a_failed_run() -> None:
    async def scenario() -> None:
        events: list[WatchEvent] = []
        changes = FakeChanges()

        async def broken(_paths: frozenset[Path]) -> bool:
            raise ValueError("task file is broken")

        loop = WatchLoop(broken, changes, notify=events.append)
        task = asyncio.create_task(loop.run())
        await async_wait_until(lambda: Waiting() in events)
        finished = [e for e in events if isinstance(e, RunEnded)]
        assert not finished[0].ok and isinstance(finished[0].error, ValueError)
        loop.stop()
        await task

    run(scenario)


def test_stop_cancels_the_run() -> None:
    async def scenario() -> None:
        h = Harness()
        await async_wait_until(lambda: h.runs.calls)
        await h.stop()
        assert h.runs.cancelled == 1 and h.events[-1] == RunCancelled()
        assert not h.events[-1].restart  # stopping, not a change: "watch stopping"

    run(scenario)


def test_source_end_lets_the_run_finish() -> None:
    async def scenario() -> None:
        h = Harness()
        await async_wait_until(lambda: h.runs.calls)
        h.changes.end()
        await asyncio.sleep(0)
        assert not h.task.done()
        h.runs.release(0)
        await h.task
        assert h.runs.cancelled == 0 and h.finished()[0].ok

    run(scenario)


def test_source_error_is_raised_after_cancelling_the_run() -> None:
    async def scenario() -> None:
        h = Harness()
        await async_wait_until(lambda: h.runs.calls)
        h.changes.end(OSError("inotify died"))
        with pytest.raises(OSError, match="inotify died"):
            await h.task
        assert h.runs.cancelled == 1

    run(scenario)


def test_trigger_now_runs_a_postponed_loop_and_stop_cancels_the_run() -> None:
    async def scenario() -> None:
        runs = FakeRuns()
        loop = WatchLoop(runs, FakeChanges(), postpone=True)
        task = asyncio.create_task(loop.run())
        loop.trigger_now()
        await async_wait_until(lambda: runs.calls)
        loop.stop()
        await task
        assert runs.cancelled == 1

    run(scenario)


def test_runs_never_overlap_under_a_storm_of_restarts() -> None:
    async def scenario() -> None:
        h = Harness(OnBusy.RESTART, postpone=True)
        for i in range(20):
            h.changes.push(f"f{i}")
            await asyncio.sleep(0)
        await async_wait_until(
            lambda: h.runs.calls and h.loop._inbox.empty() and h.runs.active == 1
        )
        assert h.runs.max_active == 1
        # Every path reached the run that was left standing.
        assert h.runs.calls[-1] == paths(*(f"f{i}" for i in range(20)))
        await h.stop()

    run(scenario)


def test_events_name_the_watched_task_as_their_source() -> None:
    async def scenario() -> None:
        runs, changes = FakeRuns(), FakeChanges()
        events: list[WatchEvent] = []
        loop = WatchLoop(runs, changes, notify=events.append, source=Source("build"))
        task = asyncio.create_task(loop.run())
        await async_wait_until(lambda: runs.calls)
        changes.push("a.py")  # restart: the first run is cancelled
        await async_wait_until(lambda: len(runs.calls) == 2)
        runs.release(1)
        await async_wait_until(lambda: any(isinstance(e, Waiting) for e in events))
        loop.stop()
        await task
        kinds = {type(e) for e in events}
        assert {RunStarting, RunCancelled, RunEnded, Waiting} <= kinds
        assert {e.source for e in events} == {Source("build")}

    run(scenario)
