"""Finding the task file, TOML errors, file-level extend and merging (SEMANTICS §2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pitstop.errors import TaskFileError
from pitstop.taskfile.loader import find_taskfile, load_taskfile
from pitstop.taskfile.model import EnvProfile


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def env_values(entries: tuple[object, ...]) -> dict[str, object]:
    return {entry.key: entry.value for entry in entries}  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- which file


def test_pitstop_toml_wins_over_makefile_toml(tmp_path: Path) -> None:
    write(tmp_path / "Makefile.toml", "[tasks.m]\n")
    write(tmp_path / "pitstop.toml", "[tasks.p]\n")
    assert find_taskfile(None, tmp_path) == tmp_path / "pitstop.toml"
    assert "p" in load_taskfile(None, tmp_path).tasks


def test_no_file_gives_only_the_base_tasks(tmp_path: Path) -> None:
    taskfile = load_taskfile(None, tmp_path)
    assert sorted(taskfile.tasks) == ["default", "empty", "end", "init"]
    assert (taskfile.config.init_task, taskfile.config.end_task) == ("init", "end")


def test_explicit_makefile_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match=r"other\.toml") as caught:
        load_taskfile("other.toml", tmp_path)
    assert caught.value.exit_code == 2


def test_explicit_makefile_relative_to_cwd(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "x.toml", "[tasks.x]\n")
    taskfile = load_taskfile("sub/x.toml", tmp_path)
    assert "x" in taskfile.tasks and taskfile.path == tmp_path / "sub" / "x.toml"


def test_user_default_merges_over_base_default(tmp_path: Path) -> None:
    write(tmp_path / "Makefile.toml", '[tasks.default]\ncommand = "echo"\n')
    default = load_taskfile(None, tmp_path).tasks["default"]
    assert (default.description, default.command) == ("Empty Task", "echo")


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    write(tmp_path / "Makefile.toml", '[tasks.a]\ncommand = "echo"\nargs = [1,\n  = 2\n')
    with pytest.raises(TaskFileError) as caught:
        load_taskfile(None, tmp_path)
    location = caught.value.location
    assert location is not None and location.line == 4 and location.col > 0
    assert "Makefile.toml" in caught.value.message
    assert "(at line" not in caught.value.message


# ----------------------------------------------------------------------------- extend


def test_extend_paths_are_relative_to_the_extending_file(tmp_path: Path) -> None:
    write(
        tmp_path / "conf" / "base.toml",
        """
        [env]
        A = "base"
        B = "base"
        [config]
        end_task = "finish"
        [tasks.build]
        description = "from base"
        command = "make"
        """,
    )
    write(
        tmp_path / "conf" / "main.toml",
        """
        extend = "base.toml"
        [config]
        skip_core_tasks = true
        [env]
        B = "main"
        [tasks.build]
        args = ["all"]
        """,
    )
    taskfile = load_taskfile("conf/main.toml", tmp_path)
    build = taskfile.tasks["build"]
    assert (build.description, build.command, build.args) == ("from base", "make", ("all",))
    assert env_values(taskfile.env) == {"A": "base", "B": "main"}
    assert [entry.key for entry in taskfile.env] == ["A", "B"]
    assert taskfile.config.end_task == "finish"
    assert taskfile.config.init_task == "init"


def test_extend_list_merges_in_order_and_clear_drops_base(tmp_path: Path) -> None:
    write(tmp_path / "one.toml", '[tasks.t]\ncommand = "one"\ndescription = "d"\n')
    write(tmp_path / "two.toml", '[tasks.t]\ncommand = "two"\n')
    write(
        tmp_path / "Makefile.toml",
        """
        extend = ["one.toml", { path = "two.toml" }, { path = "absent.toml", optional = true }]
        [tasks.u]
        """,
    )
    task = load_taskfile(None, tmp_path).tasks["t"]
    assert (task.command, task.description) == ("two", "d")

    write(tmp_path / "Makefile.toml", 'extend = "one.toml"\n[tasks.t]\nclear = true\n')
    task = load_taskfile(None, tmp_path).tasks["t"]
    assert (task.command, task.description) == (None, None)


def test_env_files_and_env_scripts_concatenate_extending_first(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", 'env_files = ["./base.env"]\nenv_scripts = ["echo base"]\n')
    write(
        tmp_path / "Makefile.toml",
        'extend = "base.toml"\nenv_files = ["./main.env"]\nenv_scripts = ["echo main"]\n',
    )
    taskfile = load_taskfile(None, tmp_path)
    assert [f.path for f in taskfile.env_files] == ["./main.env", "./base.env"]
    assert taskfile.env_scripts == ("echo main", "echo base")


def test_env_profiles_merge_recursively(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", '[env.ci]\nA = "1"\nB = "1"\n')
    write(tmp_path / "Makefile.toml", 'extend = "base.toml"\n[env.ci]\nB = "2"\n')
    profile = env_values(load_taskfile(None, tmp_path).env)["ci"]
    assert isinstance(profile, EnvProfile)
    assert env_values(profile.entries) == {"A": "1", "B": "2"}


def test_missing_extend_points_at_the_extend_line(tmp_path: Path) -> None:
    write(tmp_path / "Makefile.toml", '# base\n\n\nextend = "nope.toml"\n[config]\n')
    with pytest.raises(TaskFileError, match=r"nope\.toml") as caught:
        load_taskfile(None, tmp_path)
    assert caught.value.location is not None and caught.value.location.line == 4


def test_extend_file_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", 'extend = "b.toml"\n')
    write(tmp_path / "b.toml", 'extend = "a.toml"\n')
    with pytest.raises(TaskFileError, match="extend cycle"):
        load_taskfile("a.toml", tmp_path)


def test_warnings_from_extended_files_are_kept(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", "[tasks.a]\nbogus = 1\n")
    write(tmp_path / "Makefile.toml", 'extend = "base.toml"\n')
    warnings = load_taskfile(None, tmp_path).warnings
    assert len(warnings) == 1 and warnings[0].location.path.name == "base.toml"
