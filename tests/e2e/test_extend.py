"""`extend` (SEMANTICS.md §2.3), through the real CLI: how a redefined task merges with the
extended file's."""

from __future__ import annotations

from tests.e2e.conftest import Project

HEADER = "[config]\nskip_core_tasks = true\n"


def _stdout(result: object) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]  # type: ignore[attr-defined]


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
