"""The inotify source on its own, against real files: new folders, overflow, removal, stop."""

from __future__ import annotations

import asyncio
import os
import select
import struct
import sys
from pathlib import Path

import pytest

from pitstop.watch import inotify
from pitstop.watch.changes import _default_awatch
from pitstop.watch.inotify import ADDED, DELETED, MODIFIED, Inotify, inotify_awatch
from tests.helpers import async_wait_until

from .harness import run, write

pytestmark = pytest.mark.skipif(not inotify.available(), reason="needs Linux inotify")


class _Flag:
    def __init__(self) -> None:
        self.flag = False
        self.callbacks: list[object] = []

    def is_set(self) -> bool:
        return self.flag

    def on_set(self, callback: object) -> None:
        self.callbacks.append(callback)

    def set(self) -> None:
        self.flag = True
        for callback in self.callbacks:
            assert callable(callback)
            callback()


def _drain(watcher: Inotify, until_path: str, change: int | None = None) -> dict[str, int]:
    """Read events (waiting on the descriptor, with a deadline) until ``until_path`` shows up."""
    seen: dict[str, int] = {}
    for _ in range(200):
        select.select([watcher.fd], [], [], 0.05)
        watcher.read_events()
        seen.update(watcher.take())
        if until_path in seen and change in (None, seen[until_path]):
            return seen
    raise AssertionError(f"{until_path} not reported; saw {sorted(seen)}")


def test_linux_default_is_inotify_and_polling_stays_with_watchfiles() -> None:
    assert _default_awatch(poll=False) is inotify_awatch
    assert _default_awatch(poll=True) is not inotify_awatch


def test_a_folder_made_after_start_is_watched_with_what_was_written_in_it(
    tmp_path: Path,
) -> None:
    watcher = Inotify([tmp_path])
    try:
        # Written before the watcher can have added the new folders: found by scanning them.
        early = write(tmp_path / "new" / "deeper" / "early.py")
        seen = _drain(watcher, str(early))
        assert seen[str(early)] == ADDED
        assert seen[str(tmp_path / "new")] == ADDED
        later = tmp_path / "new" / "deeper" / "early.py"
        later.write_text("changed")
        assert _drain(watcher, str(later))[str(later)] in (ADDED, MODIFIED)
        late = write(tmp_path / "new" / "deeper" / "late.py")
        assert _drain(watcher, str(late))[str(late)] == ADDED
    finally:
        watcher.close()


def test_modify_then_delete_reports_deleted(tmp_path: Path) -> None:
    target = write(tmp_path / "a.py")
    watcher = Inotify([tmp_path])
    try:
        target.write_text("new")
        target.unlink()
        assert _drain(watcher, str(target), DELETED)[str(target)] == DELETED
    finally:
        watcher.close()


def test_a_removed_folder_gives_its_watch_back(tmp_path: Path) -> None:
    write(tmp_path / "gone" / "f.py")
    watcher = Inotify([tmp_path])
    try:
        assert watcher.watch_count == 2
        (tmp_path / "gone" / "f.py").unlink()
        (tmp_path / "gone").rmdir()
        _drain(watcher, str(tmp_path / "gone"))
        for _ in range(100):  # IN_IGNORED follows the deletion
            watcher.read_events()
            if watcher.watch_count == 1:
                break
            os.sched_yield()
        assert watcher.watch_count == 1
    finally:
        watcher.close()


def test_queue_overflow_rescans_watches_missed_folders_and_reports_every_file(
    tmp_path: Path,
) -> None:
    old = write(tmp_path / "d" / "old.py")
    watcher = Inotify([tmp_path])
    try:
        # The kernel dropped events: say a folder appeared and we never heard of it.
        missed = tmp_path / "missed"
        os.mkdir(missed)
        watcher.read_events()
        watcher.take()
        wd = watcher._wds.pop(os.fsencode(missed))
        del watcher._dirs[wd]
        watcher._parse(struct.pack("iIII", -1, 0x00004000, 0, 0))  # IN_Q_OVERFLOW
        pending = watcher.take()
        assert pending[str(old)] == MODIFIED
        assert os.fsencode(missed) in watcher._wds  # watched again
        inside = write(missed / "x.py")
        assert _drain(watcher, str(inside))[str(inside)] == ADDED
    finally:
        watcher.close()


def test_the_limit_message_names_the_setting_and_the_way_out() -> None:
    message = inotify._limit_message("max_user_watches", "inotify watches")
    assert "fs.inotify.max_user_watches = " in message
    assert "sysctl" in message and "--poll" in message


def test_the_stream_yields_filtered_changes_and_stops_on_the_flag(tmp_path: Path) -> None:
    async def scenario() -> None:
        flag = _Flag()
        stream = inotify_awatch(
            tmp_path, stop_event=flag, watch_filter=lambda _c, p: not p.endswith(".tmp")
        )
        got: list[set[tuple[int, str]]] = []

        async def consume() -> None:
            async for changes in stream:
                got.append(changes)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # the generator starts and watches
        await async_wait_until(lambda: flag.callbacks, message="the stream to start")
        write(tmp_path / "skip.tmp")
        keep = write(tmp_path / "keep.py")
        await async_wait_until(lambda: any((ADDED, str(keep)) in c for c in got), message="keep.py")
        assert all(not p.endswith(".tmp") for c in got for _, p in c)
        fds_before = len(os.listdir("/proc/self/fd"))
        flag.set()
        await asyncio.wait_for(task, 5)
        assert len(os.listdir("/proc/self/fd")) == fds_before - 1  # the inotify fd is closed

    run(scenario)


if sys.platform.startswith("linux"):

    def test_inotify_is_available_on_linux() -> None:
        assert inotify.available()
