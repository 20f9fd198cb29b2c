"""The disk cache of loaded task files: a hit gives what a load gives; any change misses."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pitstop.records import replace
from pitstop.taskfile import cache, model
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Taskfile


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("PITSTOP_NO_CACHE", raising=False)
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def cold(project: Path, monkeypatch: pytest.MonkeyPatch, makefile: str | None = None) -> Taskfile:
    with monkeypatch.context() as patch:
        patch.setenv("PITSTOP_NO_CACHE", "1")
        return load_taskfile(makefile, project)


def entries(cache_home: Path) -> list[Path]:
    return sorted((cache_home / "pitstop").glob("taskfile-*.pickle"))


def hit(path: Path) -> Taskfile | None:
    """What the cache holds for `path` now (None: a load would parse)."""
    return cache.cached_taskfile(path)


WARNING_FILE = """\
extend = [{ path = "base.toml", relative = "crate" }, { path = "maybe.toml", optional = true }]
[tasks.build]
description = "build it"
command = "make"
install_script = ["cargo install x"]
colour = "blue"
[tasks.test]
dependencies = ["build"]
command = "pytest"
"""
BASE_FILE = """\
[config]
skip_core_tasks = true
[env]
FROM_BASE = "1"
[tasks.lint]
command = "ruff"
"""


def project_with_warnings(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    write(project / "Makefile.toml", WARNING_FILE)
    write(project / "base.toml", BASE_FILE)
    return project


def test_a_hit_gives_the_same_tasks_and_warnings_as_a_load(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_with_warnings(tmp_path)
    loaded = cold(project, monkeypatch)
    assert len(loaded.warnings) >= 3  # relative = "crate", install_script, unknown key
    assert entries(cache_home) == []  # PITSTOP_NO_CACHE wrote nothing
    first = load_taskfile(None, project)
    assert len(entries(cache_home)) == 1
    again = hit(project / "Makefile.toml")
    assert again is not None and again is not first
    assert again == loaded and again.warnings == loaded.warnings
    assert again.tasks == loaded.tasks and list(again.tasks) == list(loaded.tasks)
    assert load_taskfile(None, project) == loaded


def test_the_core_tasks_come_back_from_the_cache_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "Makefile.toml", '[tasks.build]\nclear = true\ncommand = "make"\n')
    loaded = load_taskfile(None, tmp_path)
    assert "ci-flow" in loaded.tasks
    assert hit(tmp_path / "Makefile.toml") == loaded == cold(tmp_path, monkeypatch)


def test_an_edit_of_the_same_size_in_the_same_second_misses(tmp_path: Path) -> None:
    path = write(tmp_path / "Makefile.toml", '[tasks.a]\ncommand = "echo one"\n')
    load_taskfile(None, tmp_path)
    before = path.stat()
    path.write_text('[tasks.a]\ncommand = "echo two"\n')
    # As on a file system whose timestamps are coarser than the edit: same mtime.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert hit(path) is None
    assert load_taskfile(None, tmp_path).tasks["a"].command == "echo two"
    assert hit(path) is not None


def test_same_stat_with_other_bytes_misses(tmp_path: Path) -> None:
    """Where timestamps are coarse, an edit can leave the whole stat as it was: the CRC
    of the bytes still tells."""
    path = write(tmp_path / "Makefile.toml", '[tasks.a]\ncommand = "echo one"\n')
    inputs = cache.Inputs()
    inputs.read(path)
    [(kind, name, observed)] = inputs.facts
    path.write_text('[tasks.a]\ncommand = "echo two"\n')
    assert isinstance(observed, tuple)
    same_stat = (*cache._stat(str(path)), observed[5])
    assert not cache._holds((kind, name, same_stat))
    path.write_text('[tasks.a]\ncommand = "echo one"\n')
    assert cache._holds((kind, name, (*cache._stat(str(path)), observed[5])))


def test_a_touch_that_keeps_the_bytes_reloads_once(tmp_path: Path) -> None:
    path = write(tmp_path / "Makefile.toml", "[tasks.a]\n")
    load_taskfile(None, tmp_path)
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1))
    assert hit(path) is None
    load_taskfile(None, tmp_path)
    assert hit(path) is not None


def test_an_edit_of_an_extended_file_misses(tmp_path: Path) -> None:
    project = project_with_warnings(tmp_path)
    load_taskfile(None, project)
    base = project / "base.toml"
    base.write_text(BASE_FILE.replace('FROM_BASE = "1"', 'FROM_BASE = "2"'))
    assert hit(project / "Makefile.toml") is None
    env = {entry.key: entry.value for entry in load_taskfile(None, project).env}
    assert env["FROM_BASE"] == "2"


def test_an_optional_extended_file_that_appears_misses(tmp_path: Path) -> None:
    project = project_with_warnings(tmp_path)
    load_taskfile(None, project)
    write(project / "maybe.toml", '[tasks.maybe]\ncommand = "true"\n')
    assert hit(project / "Makefile.toml") is None
    assert "maybe" in load_taskfile(None, project).tasks


def test_a_symlinked_extended_file_pointed_elsewhere_misses(tmp_path: Path) -> None:
    write(tmp_path / "one.toml", '[tasks.x]\ncommand = "one"\n')
    write(tmp_path / "two.toml", '[tasks.x]\ncommand = "two"\n')
    (tmp_path / "base.toml").symlink_to("one.toml")
    write(tmp_path / "Makefile.toml", 'extend = "base.toml"\n[config]\nskip_core_tasks = true\n')
    assert load_taskfile(None, tmp_path).tasks["x"].command == "one"
    (tmp_path / "base.toml").unlink()
    (tmp_path / "base.toml").symlink_to("two.toml")
    assert hit(tmp_path / "Makefile.toml") is None
    assert load_taskfile(None, tmp_path).tasks["x"].command == "two"


def test_a_git_folder_that_moves_the_extend_root_misses(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "common.toml", '[tasks.x]\ncommand = "outer"\n')
    write(tmp_path / "sub" / "common.toml", '[tasks.x]\ncommand = "inner"\n')
    project = tmp_path / "sub" / "project"
    write(
        project / "Makefile.toml",
        'extend = { path = "common.toml", relative = "git" }\n[config]\nskip_core_tasks = true\n',
    )
    assert load_taskfile(None, project).tasks["x"].command == "outer"
    (tmp_path / "sub" / ".git").mkdir()
    assert hit(project / "Makefile.toml") is None
    assert load_taskfile(None, project).tasks["x"].command == "inner"


def test_a_new_pitstop_toml_beside_the_makefile_is_loaded(tmp_path: Path) -> None:
    write(tmp_path / "Makefile.toml", "[tasks.m]\n")
    assert "m" in load_taskfile(None, tmp_path).tasks
    write(tmp_path / "pitstop.toml", "[tasks.p]\n")
    assert "p" in load_taskfile(None, tmp_path).tasks


def test_changed_code_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "Makefile.toml", "[tasks.a]\n")
    load_taskfile(None, tmp_path)
    assert hit(path) is not None
    # As a process whose model.py differs from the one the entry was made with.
    seen = cache._CODE_SEEN[model.__file__]
    monkeypatch.setitem(cache._CODE_SEEN, model.__file__, (*seen[:3], seen[3] + 1, seen[4]))
    assert hit(path) is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header only"])
def test_a_damaged_entry_is_ignored_and_replaced(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    project = project_with_warnings(tmp_path)
    expected = load_taskfile(None, project)
    [entry] = entries(cache_home)
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\x80\x05not a pickle at all" + data[40:])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        import _pickle

        with entry.open("rb") as file:
            header = _pickle.load(file)
        entry.write_bytes(_pickle.dumps(header, protocol=5))
    assert hit(project / "Makefile.toml") is None
    assert load_taskfile(None, project) == expected
    assert hit(project / "Makefile.toml") == expected


def test_an_entry_others_can_write_is_not_trusted(tmp_path: Path, cache_home: Path) -> None:
    path = write(tmp_path / "Makefile.toml", "[tasks.a]\n")
    load_taskfile(None, tmp_path)
    [entry] = entries(cache_home)
    entry.chmod(0o666)
    assert hit(path) is None


def test_an_unwritable_cache_folder_loads_uncached(tmp_path: Path, cache_home: Path) -> None:
    # A file where the folder would go (permission bits do not stop root).
    cache_home.mkdir()
    (cache_home / "pitstop").write_text("not a folder")
    path = write(tmp_path / "Makefile.toml", '[tasks.a]\ncommand = "echo"\n')
    for _ in range(2):
        assert load_taskfile(None, tmp_path).tasks["a"].command == "echo"
    assert hit(path) is None
    assert [p.name for p in cache_home.iterdir()] == ["pitstop"]


def test_pitstop_no_cache_neither_reads_nor_writes(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "Makefile.toml", '[tasks.a]\ncommand = "real"\n')
    # An entry whose facts all hold but whose tasks are not the file's: only a read shows it.
    inputs = cache.Inputs()
    inputs.read(path)
    forged = replace(load_taskfile(None, tmp_path), tasks={})
    cache.save_taskfile(path, inputs, forged)
    assert load_taskfile(None, tmp_path).tasks == {}
    monkeypatch.setenv("PITSTOP_NO_CACHE", "1")
    assert load_taskfile(None, tmp_path).tasks["a"].command == "real"
    [entry] = entries(cache_home)
    written = entry.stat().st_mtime_ns
    write(tmp_path / "other.toml", "[tasks.b]\n")
    load_taskfile("other.toml", tmp_path)
    assert entries(cache_home) == [entry] and entry.stat().st_mtime_ns == written
    monkeypatch.setenv("PITSTOP_NO_CACHE", "0")
    assert load_taskfile(None, tmp_path).tasks == {}


def test_old_entries_are_pruned(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for number in range(6):
        project = tmp_path / f"p{number}"
        write(project / "Makefile.toml", f"[tasks.t{number}]\n")
        load_taskfile(None, project)
        assert len(entries(cache_home)) == min(number + 1, 3)
    assert hit(tmp_path / "p5" / "Makefile.toml") is not None
    assert hit(tmp_path / "p0" / "Makefile.toml") is None
    stale = cache_home / "pitstop" / ".taskfile-0.123.tmp"
    stale.write_bytes(b"left by a writer that died")
    os.utime(stale, (0, 0))
    load_taskfile(None, tmp_path / "p0")
    assert not stale.exists()


def test_errors_are_not_cached(tmp_path: Path, cache_home: Path) -> None:
    path = write(tmp_path / "Makefile.toml", "[tasks.a]\ncommand = 1\n")
    for _ in range(2):
        with pytest.raises(Exception, match="command"):
            load_taskfile(None, tmp_path)
    assert entries(cache_home) == []
    path.write_text('[tasks.a]\ncommand = "ok"\n')
    assert load_taskfile(None, tmp_path).tasks["a"].command == "ok"


def test_a_core_tasks_entry_others_can_write_is_not_trusted(
    tmp_path: Path, cache_home: Path
) -> None:
    from pitstop.taskfile import builtins

    key = builtins._cache_key(builtins.CORE_PATH.read_bytes())
    builtins._write_cache(key, builtins.base_taskfile())
    [entry] = (cache_home / "pitstop").glob("core-tasks-*.pickle")
    assert builtins._read_cache(key) == builtins.base_taskfile()
    entry.chmod(0o666)
    assert builtins._read_cache(key) is None
