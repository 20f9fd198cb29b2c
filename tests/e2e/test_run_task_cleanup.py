"""run_task's cleanup_task (SEMANTICS.md §9), through the real CLI: it runs after the forked
tasks, failed or not, as its raw definition."""

from __future__ import annotations

from tests.e2e.conftest import Project

HEADER = "[config]\nskip_core_tasks = true\n"


def _stdout(result: object) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]  # type: ignore[attr-defined]


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
