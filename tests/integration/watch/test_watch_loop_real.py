"""The watch loop end to end: real inotify events, a real run_once starting real children.

Each run starts a Python child in its own session. The child records its pid and the changed
paths it was given into ``target/`` — a default-ignored place, so the run's own writes must
never retrigger it — and, when asked, blocks until the test writes its release file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pitstop.watch.changes import ENV_CHANGED_PATHS, ENV_CHANGED_PATHS_FILE, changed_paths_env
from pitstop.watch.loop import ChangesIgnored, OnBusy, RunCancelled, WatchEvent, WatchLoop
from tests.helpers import async_wait_until, pid_alive

from .harness import Collector, HeldClock, run, write

CHILD = r"""
import json, os, pathlib, sys, time
out, n, block = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
listed = os.environ["PITSTOP_CHANGED_PATHS_FILE"]
record = {
    "pid": os.getpid(),
    "paths": os.environ["PITSTOP_CHANGED_PATHS"],
    "file": pathlib.Path(listed).read_text().splitlines() if listed else None,
}
(out / f"run-{n}.json.tmp").write_text(json.dumps(record))
os.replace(out / f"run-{n}.json.tmp", out / f"run-{n}.json")
while block and not (out / f"release-{n}").exists():
    time.sleep(0.01)
"""


class Runner:
    """A real run_once: one child per run, its process group killed on cancellation."""

    def __init__(self, root: Path, block: bool) -> None:
        self.out = root / "target"
        self.out.mkdir(exist_ok=True)
        self.tmp = root / "target" / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.block = block
        self.started = 0

    async def __call__(self, paths: frozenset[Path]) -> bool:
        self.started += 1
        env = {**os.environ, **changed_paths_env(paths, self.tmp)}
        args = [str(self.out), str(self.started), "1" if self.block else "0"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, *args, env=env, start_new_session=True
        )
        try:
            return await proc.wait() == 0
        except asyncio.CancelledError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise

    def record(self, n: int) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.out / f"run-{n}.json").read_text())
        return result

    def recorded(self, n: int) -> bool:
        return (self.out / f"run-{n}.json").exists()

    def release(self, n: int) -> None:
        (self.out / f"release-{n}").touch()

    def paths_of(self, n: int) -> set[str]:
        return set(filter(None, self.record(n)["paths"].split(os.pathsep)))


class Scene:
    def __init__(self, root: Path, on_busy: OnBusy, block: bool = True) -> None:
        self.root = root
        (root / "src").mkdir()
        self.runner = Runner(root, block)
        self.events: list[WatchEvent] = []
        self.clock = HeldClock()
        self.changes = Collector(root, clock=self.clock)
        self.loop = WatchLoop(
            self.runner, self.changes, on_busy=on_busy, postpone=True, notify=self.events.append
        )

    async def start(self) -> None:
        await self.changes.prime()
        self.task = asyncio.create_task(self.loop.run())

    async def close(self) -> None:
        self.loop.stop()
        await self.task
        await self.changes.close()


def test_restart_kills_the_stale_child_and_reruns(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Scene(tmp_path, OnBusy.RESTART)
        await s.start()
        a = write(tmp_path / "src" / "a.py")
        await async_wait_until(lambda: s.runner.recorded(1), message="first run")
        first_pid = s.runner.record(1)["pid"]
        b = write(tmp_path / "src" / "b.py")
        await async_wait_until(lambda: s.runner.recorded(2), message="rerun")
        assert not pid_alive(first_pid)
        assert RunCancelled() in s.events
        # The cancelled run never finished with a.py, so the rerun gets it too.
        assert s.runner.paths_of(2) == {str(a), str(b)}
        assert pid_alive(s.runner.record(2)["pid"])
        await s.close()
        assert not pid_alive(s.runner.record(2)["pid"])

    run(scenario)


def test_queue_finishes_then_reruns_once_with_the_union(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Scene(tmp_path, OnBusy.QUEUE)
        await s.start()
        write(tmp_path / "src" / "a.py")
        await async_wait_until(lambda: s.runner.recorded(1), message="first run")
        b = write(tmp_path / "src" / "b.py")
        c = write(tmp_path / "src" / "c.py")
        # No event says "queued", so look at the loop's state to know both were taken in.
        await async_wait_until(
            lambda: s.loop._pending == frozenset({b, c}), message="b and c queued"
        )
        assert pid_alive(s.runner.record(1)["pid"]) and not s.runner.recorded(2)
        s.runner.release(1)  # an ignored path: does not count as a change
        await async_wait_until(lambda: s.runner.recorded(2), message="queued rerun")
        assert s.runner.paths_of(2) == {str(b), str(c)}
        s.runner.release(2)
        # Nothing else was pending: the next run is for the sentinel alone.
        sentinel = write(tmp_path / "src" / "sentinel.py")
        await async_wait_until(lambda: s.runner.recorded(3), message="sentinel run")
        assert s.runner.paths_of(3) == {str(sentinel)}
        s.runner.release(3)
        assert RunCancelled() not in s.events
        await s.close()

    run(scenario)


def test_ignore_drops_changes_while_busy(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Scene(tmp_path, OnBusy.IGNORE)
        await s.start()
        write(tmp_path / "src" / "a.py")
        await async_wait_until(lambda: s.runner.recorded(1), message="first run")
        b = write(tmp_path / "src" / "b.py")
        await async_wait_until(lambda: ChangesIgnored(frozenset({b})) in s.events)
        s.runner.release(1)
        sentinel = write(tmp_path / "src" / "sentinel.py")
        await async_wait_until(lambda: s.runner.recorded(2), message="sentinel run")
        assert s.runner.paths_of(2) == {str(sentinel)}
        s.runner.release(2)
        await s.close()

    run(scenario)


def test_changed_paths_reach_the_child_inline_and_through_a_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Scene(tmp_path, OnBusy.QUEUE, block=False)
        await s.start()
        a = write(tmp_path / "src" / "a.py")
        await async_wait_until(lambda: s.runner.recorded(1))
        assert s.runner.record(1)["paths"] == str(a)
        assert s.runner.record(1)["file"] is None
        s.clock.hold()  # the 150 writes come within one window, however slow this machine is
        many = [write(tmp_path / "src" / f"m{i:03}.py") for i in range(150)]
        await s.changes.handed_over(frozenset(many))
        s.clock.release()
        await async_wait_until(lambda: s.runner.recorded(2))
        record = s.runner.record(2)
        assert record["paths"] == ""
        assert record["file"] == sorted(map(str, many))
        await s.close()

    run(scenario)


def test_env_keys_are_always_both_present(tmp_path: Path) -> None:
    env = changed_paths_env([], tmp_path)
    assert env == {ENV_CHANGED_PATHS: "", ENV_CHANGED_PATHS_FILE: ""}
