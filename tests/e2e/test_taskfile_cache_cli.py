"""The task file cache through the real CLI: a second `--list` reads the cache and prints
the same listing and the same warnings; an edit anywhere shows at once."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Project

MAKEFILE = """\
extend = { path = "base.toml", relative = "crate" }
[tasks.build]
description = "build it"
command = "echo"
args = ["built"]
colour = "blue"
"""
BASE = """\
[config]
skip_core_tasks = true
[tasks.lint]
description = "lint it"
command = "true"
"""


def _entries(cache: Path) -> dict[str, tuple[int, int]]:
    """Entry name -> (inode, mtime_ns): a rewrite (a miss) changes both."""
    return {
        path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in (cache / "pitstop").glob("taskfile-*.pickle")
    }


def test_a_second_list_reads_the_cache_and_prints_the_same(project: Project) -> None:
    cache = project.root / "cache-home"
    project.makefile(MAKEFILE)
    project.write("base.toml", BASE)
    first = project.run("--list", XDG_CACHE_HOME=str(cache))
    assert first.returncode == 0, first.stderr
    assert "build - build it" in first.stdout and "lint - lint it" in first.stdout
    assert "relative = 'crate'" in first.stderr and "colour" in first.stderr
    written = _entries(cache)
    assert len(written) == 1
    second = project.run("--list", XDG_CACHE_HOME=str(cache))
    assert (second.returncode, second.stdout, second.stderr) == (0, first.stdout, first.stderr)
    assert _entries(cache) == written  # read, not rewritten
    ran = project.run("build", XDG_CACHE_HOME=str(cache))
    assert ran.returncode == 0 and "built" in ran.stdout, ran.stderr
    assert _entries(cache) == written

    project.write("base.toml", BASE.replace("lint it", "LINT IT"))
    third = project.run("--list", XDG_CACHE_HOME=str(cache))
    assert "lint - LINT IT" in third.stdout and third.stderr == first.stderr
    assert _entries(cache).keys() == written.keys() and _entries(cache) != written


def test_pitstop_no_cache_writes_nothing(project: Project) -> None:
    cache = project.root / "cache-home"
    project.makefile(MAKEFILE)
    project.write("base.toml", BASE)
    result = project.run("--list", XDG_CACHE_HOME=str(cache), PITSTOP_NO_CACHE="1")
    assert result.returncode == 0 and "build - build it" in result.stdout, result.stderr
    project.write("core.toml", '[tasks.hello]\ncommand = "true"\n')  # with the core tasks
    result = project.run(
        "-f", "core.toml", "--list", XDG_CACHE_HOME=str(cache), PITSTOP_NO_CACHE="1"
    )
    assert result.returncode == 0 and "ci-flow" in result.stdout, result.stderr
    assert not (cache / "pitstop").exists()
    project.run("-f", "core.toml", "--list", XDG_CACHE_HOME=str(cache))
    assert sorted(path.name[:9] for path in (cache / "pitstop").iterdir()) == [
        "core-task",
        "taskfile-",
    ]


def test_a_task_file_error_is_reported_on_every_run(project: Project) -> None:
    cache = project.root / "cache-home"
    project.makefile('[tasks.build]\ncommand = "echo"\n')
    assert project.run("--list", XDG_CACHE_HOME=str(cache)).returncode == 0
    project.makefile('[tasks.build]\ncommand = ["echo"]\n')
    for _ in range(2):
        result = project.run("--list", XDG_CACHE_HOME=str(cache))
        assert result.returncode == 2
        assert "Makefile.toml:2:" in result.stderr and "Traceback" not in result.stderr
