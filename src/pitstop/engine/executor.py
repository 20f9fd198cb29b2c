"""Runs a Plan: one step at a time in plan order (cargo-make's way), or a parallel graph.

In a parallel run only dependency edges order steps: a step starts when every step it
depends on has finished, with at most `jobs` steps running at once (graphlib's
prepare/get_ready/done is the scheduler core). A failure stops the run: steps still running
are cancelled, which terminates their process groups (signal, grace period, kill), and the
summary names the failed step and every step that did not run.
"""

from __future__ import annotations

import asyncio
import graphlib
import heapq
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from pitstop.engine.events import Emit, RunFinished

# A step runner: runs the plan step at an index and returns its exit status (0 = success,
# or an ignored failure). It must terminate whatever it started when cancelled.
StepRunner = Callable[[int], Coroutine[Any, Any, int]]


@dataclass(frozen=True)
class ScheduledStep:
    """What the scheduler needs of a plan step: its name and the indices of steps it waits for.

    Steps are keyed by position, not name: a plan may hold a name twice (init depended upon,
    proxy steps), and each occurrence is its own step.
    """

    name: str
    deps: tuple[int, ...]


async def run_sequential(names: Sequence[str], run_step: StepRunner, emit: Emit) -> RunFinished:
    """cargo-make's default: every step in plan order; the first failure stops the flow."""
    started = time.monotonic()
    durations: list[tuple[str, float]] = []
    for index, name in enumerate(names):
        step_started = time.monotonic()
        try:
            status = await run_step(index)
        except asyncio.CancelledError:
            # A signal: the step has ended its processes; say what stopped and what never ran.
            emit(_interrupted(started, stopped=(name,), not_run=names[index + 1 :]))
            raise
        durations.append((name, time.monotonic() - step_started))
        if status != 0:
            result = RunFinished(
                ok=False,
                duration=time.monotonic() - started,
                failed=name,
                status=status,
                not_run=tuple(names[index + 1 :]),
                durations=tuple(durations),
            )
            emit(result)
            return result
    result = RunFinished(ok=True, duration=time.monotonic() - started, durations=tuple(durations))
    emit(result)
    return result


async def run_parallel(
    steps: Sequence[ScheduledStep], run_step: StepRunner, emit: Emit, jobs: int
) -> RunFinished:
    """Run the graph with at most `jobs` steps at once; dependencies always finish first."""
    started = time.monotonic()
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for index, step in enumerate(steps):
        sorter.add(index, *step.deps)
    sorter.prepare()

    ready: list[int] = []  # a heap of plan positions
    running: dict[asyncio.Task[int], tuple[int, float]] = {}
    finished: set[int] = set()
    durations: list[tuple[str, float]] = []
    failure: tuple[str, int] | None = None
    # Steps that ended, in the order they did, and what wakes the scheduler when one does:
    # cheaper per step than asyncio.wait, which hooks into (and out of) every running step
    # each time it is called.
    ended: list[asyncio.Task[int]] = []
    loop = asyncio.get_running_loop()
    wake: asyncio.Future[None] | None = None

    def step_ended(task: asyncio.Task[int]) -> None:
        ended.append(task)
        if wake is not None and not wake.done():
            wake.set_result(None)

    def ready_in_plan_order() -> None:
        # Among steps that may start, keep cargo-make's plan order so a -j1 run looks sequential.
        for index in sorter.get_ready():
            heapq.heappush(ready, index)

    try:
        ready_in_plan_order()
        while (ready or running) and failure is None:
            while ready and len(running) < jobs:
                index = heapq.heappop(ready)
                task = asyncio.create_task(run_step(index))
                task.add_done_callback(step_ended)
                running[task] = (index, time.monotonic())
            if not ended:
                wake = loop.create_future()
                await wake
            done = ended[:]
            ended.clear()
            for task in done:
                index, step_started = running.pop(task)
                status = task.result()
                durations.append((steps[index].name, time.monotonic() - step_started))
                finished.add(index)
                if status != 0 and failure is None:
                    failure = (steps[index].name, status)
                elif status == 0:
                    sorter.done(index)
            if failure is None:
                ready_in_plan_order()
    except asyncio.CancelledError:
        # A step whose task is done already ended on its own, though not yet counted.
        stopped = tuple(steps[index].name for t, (index, _) in running.items() if not t.done())
        await _cancel_all(list(running))
        began = {index for index, _ in running.values()} | finished
        not_run = tuple(s.name for i, s in enumerate(steps) if i not in began)
        emit(_interrupted(started, stopped=stopped, not_run=not_run))
        raise
    finally:
        stopped = tuple(steps[index].name for index, _ in running.values())
        await _cancel_all(list(running))

    if failure is None:
        result = RunFinished(
            ok=True, duration=time.monotonic() - started, durations=tuple(durations)
        )
    else:
        interrupted = {index for index, _ in running.values()}
        not_run = tuple(
            s.name for i, s in enumerate(steps) if i not in finished and i not in interrupted
        )
        result = RunFinished(
            ok=False,
            duration=time.monotonic() - started,
            failed=failure[0],
            status=failure[1],
            not_run=not_run,
            stopped=stopped,
            durations=tuple(durations),
        )
    emit(result)
    return result


def _interrupted(started: float, *, stopped: Sequence[str], not_run: Sequence[str]) -> RunFinished:
    return RunFinished(
        ok=False,
        duration=time.monotonic() - started,
        not_run=tuple(not_run),
        stopped=tuple(stopped),
        interrupted=True,
    )


async def _cancel_all(tasks: list[asyncio.Task[int]]) -> None:
    """Cancel running steps and wait until each has terminated its processes."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
