"""watch_changes with a scripted fake of the one OS seam (awatch), and changed_paths_env."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pitstop.watch.changes import (
    ENV_CHANGED_PATHS,
    ENV_CHANGED_PATHS_FILE,
    MAX_BATCH_WAIT_MS,
    WATCHER_STEP_MS,
    _Changes,
    _coalesce,
    _Item,
    changed_paths_env,
    watch_changes,
)

Raw = set[tuple[Any, str]]


class FakeAwatch:
    """Records how it was called; native mode can be told to fail."""

    def __init__(self, batches: list[Raw], native_fails: bool = False) -> None:
        self.batches = batches
        self.native_fails = native_fails
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, *paths: Path, **options: Any) -> AsyncIterator[Raw]:
        self.calls.append({"paths": paths, **options})
        if self.native_fails and not options["force_polling"]:
            raise OSError("inotify watch limit reached")
        for batch in self.batches:
            yield batch


async def collect(stream: AsyncIterator[frozenset[Path]]) -> list[frozenset[Path]]:
    return [batch async for batch in stream]


def test_batches_are_absolute_paths_and_options_map_to_watchfiles(tmp_path: Path) -> None:
    fake = FakeAwatch([{(1, str(tmp_path / "a")), (2, str(tmp_path / "b"))}])
    batches = asyncio.run(collect(watch_changes([tmp_path], awatch=fake, debounce_ms=80)))
    # The fake yields its batches in one go, so the backlog is merged as a busy consumer would see.
    assert batches == [frozenset({tmp_path / "a", tmp_path / "b"})]
    (call,) = fake.calls
    assert call["paths"] == (tmp_path,)
    # A small step so a change is seen at once; we debounce ourselves, not watchfiles.
    assert call["step"] == WATCHER_STEP_MS
    assert call["debounce"] == WATCHER_STEP_MS
    assert call["force_polling"] is False


@pytest.mark.parametrize(("debounce_ms", "step"), [(0, 1), (10, 2), (20, 5), (50, WATCHER_STEP_MS)])
def test_a_short_debounce_gets_a_shorter_step(tmp_path: Path, debounce_ms: int, step: int) -> None:
    fake = FakeAwatch([])
    asyncio.run(collect(watch_changes([tmp_path], awatch=fake, debounce_ms=debounce_ms)))
    assert fake.calls[0]["step"] == step


class FakeClock:
    """The event-loop clock as watch_changes sees it; ``read`` is set on every reading."""

    def __init__(self) -> None:
        self.now = 0.0
        self.read = asyncio.Event()

    def __call__(self) -> float:
        self.read.set()
        return self.now


class TimedAwatch:
    """Yields each ``(at, path)`` at clock time ``at``, after the reader has looked at the clock.

    A ``None`` path only moves the clock.
    After a yield, the next clock reading comes from the batching side deciding how long to
    wait (the pump is blocked in here), so each later change arrives while a batch is being
    collected.
    ``end_at`` is the time the clock jumps to once the script is done, before the fake ends.
    """

    def __init__(
        self, clock: FakeClock, script: Sequence[tuple[float, str | None]], end_at: float
    ) -> None:
        self.clock = clock
        self.script = script
        self.end_at = end_at
        self.gate = asyncio.Event()  # set by the test to let the script finish

    async def __call__(self, *paths: Path, **options: Any) -> AsyncIterator[Raw]:
        for index, (at, path) in enumerate(self.script):
            if index:
                await self._next_reading()
            self.clock.now = at
            if path is not None:  # None: only move the clock
                yield {(1, path)}
        await self._next_reading()
        self.clock.now = self.end_at
        await self.gate.wait()

    async def _next_reading(self) -> None:
        self.clock.read.clear()
        await self.clock.read.wait()


async def batches_until(
    stream: AsyncIterator[frozenset[Path]], fake: TimedAwatch, count: int
) -> list[frozenset[Path]]:
    found = []
    async for batch in stream:
        found.append(batch)
        if len(found) == count:
            fake.gate.set()
    return found


def run_timed(
    script: Sequence[tuple[float, str | None]], end_at: float, count: int, **options: Any
) -> Any:
    async def scenario() -> list[frozenset[Path]]:
        clock = FakeClock()
        fake = TimedAwatch(clock, script, end_at)
        stream = watch_changes([Path("/")], awatch=fake, clock=clock, **options)
        return await asyncio.wait_for(batches_until(stream, fake, count), 10)

    return asyncio.run(scenario())


def paths(*names: str) -> frozenset[Path]:
    return frozenset(Path(f"/x/{n}") for n in names)


def test_changes_that_keep_coming_extend_the_batch() -> None:
    # Each change comes 30 ms after the one before, inside the window, so the batch goes
    # on past 50 ms after its first change; the clock then moves past the window and it ends.
    script = [(0.0, "/x/a"), (0.03, "/x/b"), (0.06, "/x/c")]
    assert run_timed(script, end_at=1.0, count=1, debounce_ms=50) == [paths("a", "b", "c")]


def test_a_quiet_window_ends_a_batch() -> None:
    # The clock passes the window while the batch waits for more, then the next change comes.
    script: list[tuple[float, str | None]] = [(0.0, "/x/a"), (0.1, None), (0.2, "/x/b")]
    batches = run_timed(script, end_at=1.0, count=2, debounce_ms=50)
    assert batches == [paths("a"), paths("b")]


def test_debounce_zero_yields_each_handover() -> None:
    script = [(0.0, "/x/a"), (0.0, "/x/b")]
    assert run_timed(script, end_at=0.0, count=2, debounce_ms=0) == [paths("a"), paths("b")]


def test_polling_widens_the_window_by_a_scan_interval() -> None:
    # 200 ms apart, with the clock past a native window in between: one batch when a scan
    # takes 300 ms (the window is then 350 ms).
    script: list[tuple[float, str | None]] = [(0.0, "/x/a"), (0.1, None), (0.2, "/x/b")]
    polled = run_timed(script, end_at=5.0, count=1, debounce_ms=50, poll=True)
    assert polled == [paths("a", "b")]


def test_an_endless_stream_is_cut_at_the_cap() -> None:
    step = 0.03
    script = [(i * step, f"/x/{i}") for i in range(100)]  # 3 s of changes 30 ms apart
    batches = run_timed(script, end_at=10.0, count=2, debounce_ms=50)
    cap = MAX_BATCH_WAIT_MS / 1000
    first_count = int(cap / step) + 2  # up to the first change past the cap
    assert batches == [
        paths(*map(str, range(first_count))),
        paths(*map(str, range(first_count, 100))),
    ]


def test_backlog_is_merged_into_one_batch(tmp_path: Path) -> None:
    fake = FakeAwatch([{(1, "/x/a")}, {(1, "/x/b")}, {(2, "/x/a")}])
    batches = asyncio.run(collect(watch_changes([tmp_path], awatch=fake)))
    assert batches == [frozenset({Path("/x/a"), Path("/x/b")})]


def test_native_failure_falls_back_to_polling(tmp_path: Path, caplog: Any) -> None:
    fake = FakeAwatch([{(1, "/x/a")}], native_fails=True)
    batches = asyncio.run(collect(watch_changes([tmp_path], awatch=fake)))
    assert batches == [frozenset({Path("/x/a")})]
    assert [c["force_polling"] for c in fake.calls] == [False, True]
    assert "falling back to polling" in caplog.text


def test_poll_forces_polling_and_its_failure_is_raised(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    async def failing(*paths: Path, **options: Any) -> AsyncIterator[Raw]:
        calls.append(options)
        raise OSError("polling failed too")
        yield set()  # pragma: no cover - makes this an async generator

    with pytest.raises(OSError, match="polling failed too"):
        asyncio.run(collect(watch_changes([tmp_path], awatch=failing, poll=True)))
    assert [c["force_polling"] for c in calls] == [True]


def test_short_list_inline(tmp_path: Path) -> None:
    env = changed_paths_env([tmp_path / "b", tmp_path / "a"], tmp_path)
    assert env == {
        ENV_CHANGED_PATHS: f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}",
        ENV_CHANGED_PATHS_FILE: "",
    }
    assert list(tmp_path.iterdir()) == []  # no file for a short list


@pytest.mark.parametrize(
    "names",
    [
        [f"f{i}" for i in range(101)],  # too many
        ["x" * 9000],  # too long
        [f"with{os.pathsep}sep"],  # would split wrongly
    ],
)
def test_long_or_ambiguous_list_goes_to_a_file(tmp_path: Path, names: list[str]) -> None:
    paths = [tmp_path / n for n in names]
    env = changed_paths_env(paths, tmp_path)
    assert env[ENV_CHANGED_PATHS] == ""
    listed = Path(env[ENV_CHANGED_PATHS_FILE])
    assert listed.parent == tmp_path
    assert listed.read_text().splitlines() == sorted(map(str, paths))


def test_relative_paths_are_made_absolute(tmp_path: Path) -> None:
    env = changed_paths_env([Path("rel.py")], tmp_path)
    assert env[ENV_CHANGED_PATHS] == str(Path.cwd() / "rel.py")


def test_importing_watch_does_not_import_watchfiles() -> None:
    code = (
        "import sys, pitstop.watch.changes, pitstop.watch.loop, pitstop.app.watch;"
        " assert 'watchfiles' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_watch_source_wires_settings_through(tmp_path: Path) -> None:
    from pitstop.app.watch import watch_source
    from pitstop.settings import WatchSettings

    settings = WatchSettings(paths=(tmp_path,), exts=("py",), ignore_globs=("gen/",), poll=True)
    stream = watch_source(settings, tmp_path)
    frame = stream.ag_frame  # type: ignore[attr-defined]
    keep = frame.f_locals["watch_filter"]
    assert keep(None, str(tmp_path / "a.py"))
    assert not keep(None, str(tmp_path / "a.txt"))
    assert not keep(None, str(tmp_path / "gen" / "a.py"))
    assert frame.f_locals["poll"] is True


def test_a_batch_cancelled_as_a_change_arrives_is_cancelled() -> None:
    """The cancellation wins (asyncio.wait_for on Python 3.11 swallowed it, and the batch
    went on after its watch was stopped)."""

    async def scenario() -> None:
        now = [0.0]
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        batch = asyncio.create_task(
            _coalesce(_Changes(paths("a"), 0.0, 1.0), queue, lambda: now[0])
        )
        await asyncio.sleep(0)  # a yield: the batch starts waiting for more
        queue.put_nowait(_Changes(paths("b"), 0.0, 1.0))  # the item and the cancellation
        batch.cancel()  # in one turn
        now[0] = 10.0  # were the cancellation lost, the window would be over: a batch
        with pytest.raises(asyncio.CancelledError):
            await batch

    asyncio.run(scenario())
