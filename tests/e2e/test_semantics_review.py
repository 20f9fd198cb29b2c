"""Divergences from cargo-make found in a review of SEMANTICS.md, each pinned by the CLI."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Project

HEADER = "[config]\nskip_core_tasks = true\n"


def _stdout(result: object) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        # §6.2: EnvValue has no float kind, so serde rejects the whole file.
        ('[env]\nA = 1.5\n[tasks.a]\ncommand = "true"\n', 4, "env.A"),
        ('[tasks.a]\ncommand = "true"\nenv = { A = 1.5 }\n', 5, "env.A"),
        # A task that is not a table names the key, not an empty attribute.
        ("[tasks]\na = 1\n", 4, "tasks.a must be a table"),
    ],
    ids=["global env float", "task env float", "task not a table"],
)
def test_bad_input_names_file_and_line(project: Project, body: str, line: int, needle: str) -> None:
    project.makefile(HEADER + body)
    result = project.run("a")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert f"Makefile.toml:{line}" in result.stderr, result.stderr
    assert needle in result.stderr, result.stderr


# --------------------------------------------------------------------------- run_task (§9)


def test_cleanup_task_runs_its_raw_definition_without_dependencies(project: Project) -> None:
    project.makefile(
        HEADER
        + """
[tasks.a]
run_task = { name = ["ok", "bad", "never"], fork = true, cleanup_task = "cl" }
[tasks.ok]
script = "echo ok"
[tasks.bad]
script = "echo bad; exit 4"
[tasks.never]
script = "echo never"
[tasks.cl]
dependencies = ["dep"]
script = "echo cleanup"
[tasks.dep]
script = "echo dep"
"""
    )
    result = project.run("a")
    assert result.returncode != 0
    assert _stdout(result) == ["ok", "bad", "cleanup"], result.stderr


def test_cleanup_task_after_success_is_not_alias_resolved(project: Project) -> None:
    project.makefile(
        HEADER
        + """
[tasks.a]
run_task = { name = "ok", fork = true, cleanup_task = "cl" }
[tasks.ok]
script = "echo ok"
[tasks.cl]
alias = "other"
script = "echo cleanup"
[tasks.other]
script = "echo other"
"""
    )
    result = project.run("a")
    assert result.returncode == 0, result.stderr
    assert _stdout(result) == ["ok", "cleanup"]


# --------------------------------------------------------------------------- cwd (§5)


def test_task_cwd_updates_cargo_make_working_directory_for_that_task(project: Project) -> None:
    (project.root / "sub").mkdir()
    project.write("sub/marker", "")
    project.makefile(
        HEADER
        + """
[tasks.a]
cwd = "sub"
condition = { files_exist = ["${CARGO_MAKE_WORKING_DIRECTORY}/marker"] }
script = 'echo "a $(basename "$CARGO_MAKE_WORKING_DIRECTORY") $(basename "$PWD")"'
[tasks.b]
dependencies = ["a"]
script = 'echo "b $(basename "$CARGO_MAKE_WORKING_DIRECTORY") $(basename "$PWD")"'
"""
    )
    result = project.run("b")
    assert result.returncode == 0, result.stderr
    top = project.root.name
    assert _stdout(result) == ["a sub sub", f"b {top} {top}"]


# --------------------------------------------------------------------------- file extend (§2.3)


def test_redefined_task_without_env_drops_the_extended_files_task_env(project: Project) -> None:
    project.write(
        "base.toml",
        HEADER
        + """
[tasks.t]
env = { FROM_BASE = "base" }
command = "echo"
args = ["base"]
[tasks.u]
env = { KEPT = "kept" }
command = "echo"
args = ["u"]
""",
    )
    project.makefile(
        """
extend = "base.toml"
[tasks.t]
args = ["top"]
[tasks.u]
env = { OWN = "own" }
[tasks.show]
dependencies = ["t", "u"]
script = 'echo "${FROM_BASE:-unset} ${KEPT:-unset} ${OWN:-unset}"'
"""
    )
    result = project.run("show")
    assert result.returncode == 0, result.stderr
    # Every task of a file carries two injected env entries in cargo-make, so the top
    # definition's env (even "none") replaces the base env whole.
    assert _stdout(result) == ["top", "u", "unset unset own"]


# --------------------------------------------------------------------------- init/end (§4.1)


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
