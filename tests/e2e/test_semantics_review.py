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
