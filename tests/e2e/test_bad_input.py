"""A user's mistake gets one clear message naming file and line, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Project

CASES = {
    "malformed toml": (
        """
        [tasks.a]
        command = "echo
        """,
        "a",
        3,
        "",
    ),
    # The parser reports it at the end of the file, with no column to mark: the hint says
    # what to look for instead of pointing at a mark that is not there.
    "unclosed array": (
        """
        [tasks.a]
        command = "echo"
        args = ["hi"
        """,
        "a",
        4,
        "opened on this line or above is never closed",
    ),
    "dependencies as a string": (
        """
        [tasks.a]
        dependencies = "b"
        [tasks.b]
        command = "true"
        """,
        "a",
        3,
        "dependencies",
    ),
    "two actions": (
        """
        [tasks.a]
        command = "echo"
        script = "echo hi"
        """,
        "a",
        4,
        "only one action",
    ),
    "unknown task in dependencies": (
        """
        [tasks.a]
        dependencies = ["biuld"]
        [tasks.build]
        command = "true"
        """,
        "a",
        3,
        "build",
    ),
    "dependency cycle": (
        """
        [tasks.a]
        dependencies = ["b"]
        [tasks.b]
        dependencies = ["c"]
        [tasks.c]
        dependencies = ["a"]
        """,
        "a",
        7,
        "a -> b -> c -> a",
    ),
    "env cycle": (
        """
        [env]
        A = "${B}"
        B = "${A}"
        [tasks.a]
        command = "true"
        """,
        "a",
        3,
        "Cycle",
    ),
    "args not a list": (
        """
        [tasks.a]
        command = "echo"
        args = "x"
        """,
        "a",
        4,
        "args",
    ),
    # cargo-make's EnvValue has no float kind (SEMANTICS.md §6.2): serde rejects the file.
    "global env float": (
        """
        [config]
        skip_core_tasks = true
        [env]
        A = 1.5
        [tasks.a]
        command = "true"
        """,
        "a",
        5,
        "env.A",
    ),
    "task env float": (
        """
        [config]
        skip_core_tasks = true
        [tasks.a]
        command = "true"
        env = { A = 1.5 }
        """,
        "a",
        6,
        "env.A",
    ),
    "task not a table": (
        """
        [config]
        skip_core_tasks = true
        [tasks]
        a = 1
        """,
        "a",
        5,
        "tasks.a must be a table",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_clear_error(project: Project, name: str) -> None:
    text, task, line, needle = CASES[name]
    project.makefile(text)
    result = project.run(task)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"Makefile.toml:{line}" in result.stderr, result.stderr
    assert needle in result.stderr
    assert result.stderr.startswith("error: ")


def test_unknown_root_task_suggests_a_close_name(project: Project) -> None:
    project.makefile(
        """
        [tasks.build]
        command = "true"
        """
    )
    result = project.run("biuld")
    assert result.returncode == 2
    assert "build" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_makefile_flag_names_the_file(project: Project) -> None:
    result = project.run("--makefile", "nope.toml", "a")
    assert result.returncode == 2
    assert "nope.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_is_exit_code_2(project: Project) -> None:
    result = project.run("--jobs", "many")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(project: Project) -> None:
    project.makefile('[tasks.a]\ndependencies = "b"\n')
    result = project.run("--debug", "a")
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_unknown_key_is_a_warning_with_its_line(project: Project) -> None:
    project.makefile(
        """
        [tasks.a]
        command = "echo"
        args = ["ran"]
        colour = "blue"
        """
    )
    result = project.run("a")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"
    assert "Makefile.toml:5" in result.stderr
    assert "colour" in result.stderr


def test_an_undefined_init_task_fails_the_plan_at_its_line(project: Project) -> None:
    project.makefile(
        """[config]
skip_core_tasks = true
init_task = "setup"
[tasks.a]
script = "echo a"
"""
    )
    result = project.run("a")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert 'Task "setup" not found' in result.stderr
    assert "Makefile.toml:3" in result.stderr
    assert project.run("--skip-init-end-tasks", "a").returncode == 0
