"""--list-all-steps and --print-steps outputs, compared exactly (cases 39, 40)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pitstop.errors import PlanError
from pitstop.taskfile.listing import list_all_steps, print_steps, print_steps_short
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Taskfile
from pitstop.taskfile.planner import build_plan

CASES = Path("/work/shared/cargo-make/cases")


def case_dir(name: str) -> Path:
    directory = CASES / name
    if not directory.is_dir():
        pytest.skip(f"{directory} not available")
    return directory


def load(tmp_path: Path, text: str) -> Taskfile:
    (tmp_path / "Makefile.toml").write_text(textwrap.dedent(text))
    return load_taskfile(None, tmp_path)


def test_case_40_list_all_steps() -> None:
    directory = case_dir("40-list-all-steps")
    listing = list_all_steps(load_taskfile(None, directory), platform="linux")
    assert listing == (directory / "expected.txt").read_text()


def test_case_39_print_steps_short_description() -> None:
    directory = case_dir("39-print-steps")
    plan = build_plan(load_taskfile(None, directory), "build", platform="linux")
    assert print_steps_short(plan) == (directory / "expected.txt").read_text()


def test_category_filter_and_hide_uninteresting(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [config]
        skip_core_tasks = true
        [tasks.pre-build]
        [tasks.build]
        [tasks.post-build]
        """,
    )
    assert list_all_steps(taskfile, category="Hooks", platform="linux") == (
        "Hooks\n----------\n"
        "end - By default this task is invoked at the end of every cargo-make run.\n"
        "init - By default this task is invoked at the start of every cargo-make run.\n\n"
    )
    assert list_all_steps(taskfile, hide_uninteresting=True, platform="linux") == (
        "No Category\n----------\nbuild - No Description.\ndefault - Empty Task\n\n"
    )


def test_bytewise_order_and_alias_chains(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.b]
        category = "X"
        [tasks.B]
        category = "X"
        [tasks._]
        category = "X"
        [tasks.s]
        alias = "m"
        [tasks.m]
        alias = "b"
        [tasks.hidden]
        alias = "p"
        [tasks.p]
        private = true
        category = "X"
        """,
    )
    listing = list_all_steps(taskfile, category="X", platform="linux")
    assert listing == (
        "X\n----------\nB - No Description.\n_ - No Description.\n"
        "b - No Description. [aliases: m, s]\n\n"
    )


def test_service_tasks_are_marked_after_their_name(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.build]
        category = "X"
        description = "Compile"
        [tasks.web]
        category = "X"
        description = "The site"
        deprecated = "use api"
        service = { listen = "127.0.0.1:8080" }
        [tasks.api]
        category = "X"
        extend = "web"
        deprecated = false
        [tasks.site]
        alias = "web"
        [tasks.worker]
        category = "X"
        [tasks.worker.linux]
        service = { proxy = 8081 }
        """,
    )
    assert list_all_steps(taskfile, category="X", platform="linux") == (
        "X\n----------\n"
        "api [service] - The site\n"
        "build - Compile\n"
        "web [service] - The site (deprecated - use api) [aliases: site]\n"
        "worker [service] - No Description.\n\n"
    )
    assert "worker - No Description." in list_all_steps(taskfile, category="X", platform="mac")


def test_alias_cycle_breaks_listing(tmp_path: Path) -> None:
    taskfile = load(tmp_path, '[tasks.a]\nalias = "b"\n[tasks.b]\nalias = "a"\n')
    with pytest.raises(PlanError, match="Detected cycle"):
        list_all_steps(taskfile, platform="linux")


def test_print_steps_default_format(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.a]
        dependencies = ["b"]
        [tasks.b]
        """,
    )
    text = print_steps(build_plan(taskfile, "a", platform="linux"))
    lines = text.splitlines()
    assert lines[0] == 'Plan for "a" (4 steps):'
    single = print_steps(build_plan(taskfile, "b", platform="linux", skip_init_end=True))
    assert single.splitlines()[0] == 'Plan for "b" (1 step):'
    assert lines[3].startswith("  3. a") and lines[3].endswith("after: init, b")
    assert lines[4].endswith("after: init, b, a")
