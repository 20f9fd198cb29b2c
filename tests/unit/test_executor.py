"""The scheduler alone, with steps that are coroutines instead of processes."""

from __future__ import annotations

import asyncio

import pytest

from pitstop.engine.events import Event, RunFinished
from pitstop.engine.executor import ScheduledStep, run_parallel, run_sequential


class Recorder:
    """Steps that log start/end, can be held open, and fail on demand."""

    def __init__(self, steps: list[ScheduledStep], fail: dict[str, int] | None = None) -> None:
        self.steps = steps
        self.fail = fail or {}
        self.log: list[tuple[str, str]] = []
        self.running = 0
        self.most_running = 0
        self.cancelled: list[str] = []
        self.release = asyncio.Event()
        self.hold: set[str] = set()

    async def run(self, index: int) -> int:
        name = self.steps[index].name
        self.log.append(("start", name))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if name in self.hold:
                await self.release.wait()
            else:
                await asyncio.sleep(0)  # yield, so other ready steps get to start
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running -= 1
        self.log.append(("end", name))
        return self.fail.get(name, 0)


def _graph(edges: dict[str, list[str]]) -> list[ScheduledStep]:
    names = list(edges)
    return [ScheduledStep(n, tuple(names.index(d) for d in edges[n])) for n in names]


EDGES = {
    "base": [],
    "a": ["base"],
    "b": ["base"],
    "c": ["base"],
    "top": ["a", "b", "c"],
}


@pytest.mark.parametrize("jobs", [1, 2, 3, 8])
def test_dependencies_end_before_dependents_start_and_jobs_bound_concurrency(jobs: int) -> None:
    steps = _graph(EDGES)
    recorder = Recorder(steps)
    events: list[Event] = []
    result = asyncio.run(run_parallel(steps, recorder.run, events.append, jobs))
    assert result.ok
    position = {entry: i for i, entry in enumerate(recorder.log)}
    for name, deps in EDGES.items():
        for dep in deps:
            assert position[("end", dep)] < position[("start", name)]
    assert recorder.most_running <= jobs
    assert isinstance(events[-1], RunFinished)


def test_independent_steps_do_overlap() -> None:
    steps = _graph(EDGES)
    recorder = Recorder(steps)
    recorder.hold = {"a", "b"}

    async def scenario() -> RunFinished:
        run = asyncio.create_task(run_parallel(steps, recorder.run, lambda e: None, 3))
        while recorder.running < 2:
            await asyncio.sleep(0)
        recorder.release.set()
        return await run

    assert asyncio.run(scenario()).ok
    assert recorder.most_running >= 2


def test_a_failure_cancels_running_steps_and_names_what_did_not_run() -> None:
    steps = _graph(EDGES)
    recorder = Recorder(steps, fail={"b": 7})
    recorder.hold = {"a", "c"}  # still running when b fails
    result = asyncio.run(run_parallel(steps, recorder.run, lambda e: None, 3))
    assert not result.ok
    assert (result.failed, result.status) == ("b", 7)
    assert result.stopped == ("a", "c")
    assert sorted(recorder.cancelled) == ["a", "c"]
    assert "top" in result.not_run
    assert ("start", "top") not in recorder.log


def test_sequential_runs_in_plan_order_and_stops_at_the_first_failure() -> None:
    names = ["one", "two", "three"]
    steps = [ScheduledStep(n, ()) for n in names]
    recorder = Recorder(steps, fail={"two": 3})
    result = asyncio.run(run_sequential(names, recorder.run, lambda e: None))
    assert [name for kind, name in recorder.log if kind == "start"] == ["one", "two"]
    assert (result.failed, result.status, result.not_run) == ("two", 3, ("three",))


def test_a_name_may_appear_twice_as_separate_steps() -> None:
    # init runs first and again as a dependency: two steps with one name.
    steps = [
        ScheduledStep("init", ()),
        ScheduledStep("init", (0,)),
        ScheduledStep("root", (1,)),
    ]
    recorder = Recorder(steps)
    assert asyncio.run(run_parallel(steps, recorder.run, lambda e: None, 2)).ok
    assert [name for kind, name in recorder.log if kind == "start"] == ["init", "init", "root"]


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_cancelled_run_reports_what_was_stopped_and_what_did_not_run(jobs: int) -> None:
    steps = _graph(EDGES)
    recorder = Recorder(steps)
    recorder.hold = {"a", "b"}
    events: list[Event] = []

    async def main() -> None:
        names = [s.name for s in steps]
        if jobs == 1:
            run = asyncio.ensure_future(run_sequential(names, recorder.run, events.append))
        else:
            run = asyncio.ensure_future(run_parallel(steps, recorder.run, events.append, jobs))
        wanted = [("start", "a")] if jobs == 1 else [("start", "a"), ("start", "b"), ("end", "c")]
        while not all(entry in recorder.log for entry in wanted):
            await asyncio.sleep(0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    [finished] = [e for e in events if isinstance(e, RunFinished)]
    assert finished.interrupted and not finished.ok
    if jobs == 1:
        assert finished.stopped == ("a",)
        assert finished.not_run == ("b", "c", "top")
    else:
        assert set(finished.stopped) == {"a", "b"}
        assert "c" not in finished.not_run  # it ran to its end (done, maybe not yet counted)
        assert finished.not_run == ("top",)
    assert set(recorder.cancelled) == set(finished.stopped)
