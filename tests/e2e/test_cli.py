"""The command line's smaller promises, through the real binary."""

from __future__ import annotations

import subprocess

import pytest

from pitstop import __version__
from tests.e2e.conftest import Project


def test_version(project: Project) -> None:
    result = project.run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pitstop {__version__}"


def test_pitstop_toml_is_preferred_over_makefile_toml(project: Project) -> None:
    project.write(
        "pitstop.toml", '[tasks.default]\nclear = true\nscript = "echo from pitstop.toml"\n'
    )
    project.makefile('[tasks.default]\nclear = true\nscript = "echo from Makefile.toml"\n')
    assert project.run().stdout.strip() == "from pitstop.toml"
    assert project.run("-f", "Makefile.toml").stdout.strip() == "from Makefile.toml"


def test_profile_selects_env_table(project: Project) -> None:
    project.makefile(
        """
        [env]
        TARGET = "dev"
        [env.production]
        TARGET = "prod"
        [tasks.show]
        command = "echo"
        args = ["${TARGET}", "${CARGO_MAKE_PROFILE}"]
        """
    )
    assert project.run("show").stdout.split() == ["dev", "development"]
    assert project.run("--profile", "production", "show").stdout.split() == ["prod", "production"]


def test_cwd_flag_runs_in_that_directory(project: Project) -> None:
    sub = project.root / "sub"
    sub.mkdir()
    (sub / "Makefile.toml").write_text('[tasks.where]\nscript = "pwd"\n')
    result = project.run("--cwd", "sub", "where")
    assert result.stdout.strip() == str(sub)
    missing = project.run("--cwd", "nowhere", "where")
    assert missing.returncode == 2
    assert "nowhere" in missing.stderr


def test_list_category_steps_and_private_tasks(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true
        [tasks.build]
        category = "Build"
        description = "Compiles"
        [tasks.b]
        alias = "build"
        [tasks.hidden]
        category = "Build"
        private = true
        """
    )
    result = project.run("--list-category-steps", "Build")
    assert result.stdout.splitlines() == [
        "Build",
        "----------",
        "build - Compiles [aliases: b]",
        "",
    ]
    private = project.run("hidden")
    assert private.returncode == 2
    assert "private" in private.stderr
    assert project.run("--allow-private", "hidden").returncode == 0


def test_cargo_make_flags_are_accepted(project: Project) -> None:
    project.makefile('[tasks.hi]\nscript = "echo hi"\n')
    result = project.run(
        "--no-workspace", "--disable-check-for-updates", "--no-color", "--loglevel", "error", "hi"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"
    assert result.stderr == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_valid_for_their_shell(project: Project, shell: str) -> None:
    result = project.run("--completions", shell)
    assert result.returncode == 0
    assert "pitstop --task-names" in result.stdout
    if shell == "bash":
        check = subprocess.run(["bash", "-n"], input=result.stdout, text=True, check=False)
        assert check.returncode == 0


def test_task_names_lists_public_tasks(project: Project) -> None:
    project.makefile('[tasks.pub]\nscript = "true"\n[tasks.priv]\nprivate = true\n')
    names = project.run("--task-names").stdout.split()
    assert "pub" in names
    assert "priv" not in names
