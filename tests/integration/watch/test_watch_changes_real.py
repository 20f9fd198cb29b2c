"""watch_changes against the real OS watcher (inotify here) in tmp_path."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pitstop.watch.changes import watch_changes
from pitstop.watch.filters import FilterOptions
from tests.helpers import async_wait_until

from .harness import Collector, HeldClock, most_batches, run, write


def test_one_change_one_batch(tmp_path: Path) -> None:
    # Made up front: inotify only watches a new directory after it appears, so a file created
    # in it at once can be missed (a known limit of recursive inotify watching).
    (tmp_path / "src").mkdir()

    async def scenario() -> None:
        c = Collector(tmp_path)
        await c.prime()
        target = write(tmp_path / "src" / "main.py")
        batch = await c.next()
        assert target in batch
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)


def test_burst_of_100_writes_is_one_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = HeldClock()
        c = Collector(tmp_path, clock=clock)
        await c.prime()
        clock.hold()  # the burst comes within one window, however slow this machine is
        files = frozenset(write(tmp_path / f"f{i:03}.py", "print()") for i in range(100))
        await c.handed_over(files)
        # One more change, handed over after the burst: the batch must merge hand-overs.
        last = write(tmp_path / "last.txt")
        await c.handed_over(frozenset({last}))
        clock.release()
        assert await c.next() == files | {last}
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)


def test_many_writes_to_one_file_are_one_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = HeldClock()
        c = Collector(tmp_path, clock=clock)
        await c.prime()
        clock.hold()
        target = tmp_path / "hot.py"
        write(target, "first")
        await c.handed_over(frozenset({target}))
        for i in range(100):
            write(target, str(i))
        # inotify keeps order: once `last` is handed over, every write before it was too.
        last = write(tmp_path / "last.txt")
        await c.handed_over(frozenset({last}))
        clock.release()
        assert await c.next() == frozenset({target, last})
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)


def test_ignored_paths_trigger_nothing(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.log\n")
    write(tmp_path / "sub" / ".gitignore", "generated/\n")
    (tmp_path / "sub" / "generated").mkdir()
    (tmp_path / "target" / "debug").mkdir(parents=True)
    (tmp_path / "docs").mkdir()

    async def scenario() -> None:
        c = Collector(tmp_path, FilterOptions(ignore_globs=("docs/*.md",)))
        await c.prime()
        write(tmp_path / "server.log")  # .gitignore
        write(tmp_path / "sub" / "generated" / "code.py")  # nested .gitignore
        write(tmp_path / "docs" / "guide.md")  # --ignore glob
        write(tmp_path / "target" / "debug" / "app")  # built-in
        write(tmp_path / "__pycache__" / "m.pyc")  # built-in, directory created while watching
        write(tmp_path / ".main.py.swp")  # editor swap file
        write(tmp_path / "main.py~")
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)


def test_gitignore_edited_while_watching_is_reread(tmp_path: Path) -> None:
    gitignore = write(tmp_path / ".gitignore", "*.log\n")

    async def scenario() -> None:
        c = Collector(tmp_path)
        await c.prime()
        write(gitignore, "*.log\n*.dat\n")
        assert gitignore in await c.next()
        write(tmp_path / "x.dat")
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)


def test_exts_keeps_only_listed_extensions(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Collector(tmp_path, FilterOptions(exts=("py",)))
        await c.prime(suffix=".py")
        write(tmp_path / "notes.txt")
        await c.expect_only(tmp_path / "sentinel.py")
        await c.close()

    run(scenario)


def test_polling(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Collector(tmp_path, poll=True, poll_delay_ms=20)
        await c.prime()
        target = write(tmp_path / "polled.py")
        assert target in await c.next()
        await c.close()

    run(scenario)


def test_stop_event_ends_the_stream(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Collector(tmp_path)
        await c.prime()
        c.stop_event.set()
        await c.task  # ends by itself, no cancellation

    run(scenario)


def test_missing_watch_path_is_an_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(FileNotFoundError, match="does-not-exist"):
            async for _ in watch_changes([tmp_path / "does-not-exist"]):
                pass

    run(scenario)


def test_closing_the_stream_stops_the_watcher(tmp_path: Path) -> None:
    async def scenario() -> None:
        before = asyncio.all_tasks()
        stream = watch_changes([tmp_path])

        async def first() -> frozenset[Path]:
            return await anext(stream)

        consumer = asyncio.create_task(first())
        # The stream runs the watcher in a task of its own; wait until it exists.
        await async_wait_until(lambda: len(asyncio.all_tasks() - before) == 2)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        # The generator's finally waited for the watcher thread: nothing left running.
        assert asyncio.all_tasks() - before == set()

    run(scenario)


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[frozenset[Path], Callable[[], None]]:
    """A repository of 500 files in 10 folders, on branch main, and a checkout of branch
    `other`, where every one of them differs."""
    if shutil.which("git") is None:
        pytest.skip("needs git")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    files = frozenset(tmp_path / f"pkg{i % 10}" / f"m{i:03}.py" for i in range(500))
    for path in files:
        write(path, "one\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    git("checkout", "-q", "-b", "other")
    for path in files:
        write(path, "two\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "two")
    git("checkout", "-q", "main")
    return files, lambda: git("checkout", "-q", "other")


def test_git_checkout_of_500_files_is_one_batch(
    tmp_path: Path, checkout: tuple[frozenset[Path], Callable[[], None]]
) -> None:
    files, switch = checkout

    async def scenario() -> None:
        clock = HeldClock()
        c = Collector(tmp_path, clock=clock)
        await c.prime()
        clock.hold()  # the checkout comes within one window, however slowly git runs
        await asyncio.to_thread(switch)
        await c.handed_over(files)
        last = write(tmp_path / "last.txt")
        await c.handed_over(frozenset({last}))
        clock.release()
        assert await c.next() == files | {last}  # .git/ churn filtered out, none lost
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)


def test_git_checkout_makes_no_more_batches_than_its_duration_allows(
    tmp_path: Path, checkout: tuple[frozenset[Path], Callable[[], None]]
) -> None:
    """On the real clock: one batch, unless this machine paused git for longer than a
    window, and never more batches than `most_batches` of the time the checkout took."""
    files, switch = checkout

    async def scenario() -> None:
        c = Collector(tmp_path)
        await c.prime()
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(switch)
        batches = await c.gather(files)
        elapsed = asyncio.get_running_loop().time() - started
        assert frozenset().union(*batches) == files  # .git/ churn filtered out, none lost
        assert len(batches) <= most_batches(elapsed), (len(batches), elapsed)
        await c.expect_only(tmp_path / "sentinel.txt")
        await c.close()

    run(scenario)
