"""watch_changes with a scripted fake of the one OS seam (awatch), and changed_paths_env."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pitstop.watch.changes import (
    ENV_CHANGED_PATHS,
    ENV_CHANGED_PATHS_FILE,
    MAX_BATCH_WAIT_MS,
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
    assert call["step"] == 80  # quiet period that ends a batch
    assert call["debounce"] == MAX_BATCH_WAIT_MS  # the cap, not the window
    assert call["force_polling"] is False


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
    code = "import sys, pitstop.watch; assert 'watchfiles' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_change_source_wires_options_through(tmp_path: Path) -> None:
    from pitstop.watch import PathFilter, WatchOptions, change_source

    options = WatchOptions(paths=(tmp_path,), exts=("py",), ignore_globs=("gen/",), poll=True)
    stream = change_source(options, base=tmp_path)
    frame = stream.ag_frame  # type: ignore[attr-defined]
    path_filter = frame.f_locals["watch_filter"]
    assert isinstance(path_filter, PathFilter)
    assert path_filter.accepts(tmp_path / "a.py")
    assert not path_filter.accepts(tmp_path / "a.txt")
    assert not path_filter.accepts(tmp_path / "gen" / "a.py")
    assert frame.f_locals["poll"] is True
