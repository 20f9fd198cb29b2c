"""Plan order and Step.deps: the cargo-make plan-mode cases plus more of the same kind."""

from __future__ import annotations

import graphlib
import re
import textwrap
from pathlib import Path

import pytest

from pitstop.errors import PlanError
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Taskfile
from pitstop.taskfile.planner import Plan, build_plan, find_cycle

CASES = Path("/work/shared/cargo-make/cases")


def load(tmp_path: Path, text: str, name: str = "Makefile.toml") -> Taskfile:
    (tmp_path / name).write_text(textwrap.dedent(text))
    return load_taskfile(None, tmp_path)


def plan(taskfile: Taskfile, target: str, **options: object) -> Plan:
    return build_plan(taskfile, target, platform="linux", **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- shared cases

PLAN_CASES = [("01-diamond-dedup", "A"), ("03-sibling-order", "root"), ("34-disabled", "root")]


@pytest.mark.parametrize(("case", "target"), PLAN_CASES)
def test_plan_mode_case(case: str, target: str) -> None:
    directory = CASES / case
    if not directory.is_dir():
        pytest.skip(f"{directory} not available")
    expected = (directory / "expected.txt").read_text().split()
    assert plan(load_taskfile(None, directory), target).names() == expected


# ----------------------------------------------------------------------------- more of the same kind

DIAMOND = """
[tasks.A]
dependencies = ["B", "C"]
[tasks.B]
dependencies = ["D"]
[tasks.C]
dependencies = ["D"]
[tasks.D]
"""

TABLE = [
    pytest.param(DIAMOND, "A", {}, ["init", "D", "B", "C", "A", "end"], id="diamond-dedup"),
    pytest.param(
        """
        [tasks.root]
        dependencies = ["D", "D2"]
        [tasks.D]
        [tasks.D2]
        alias = "D"
        """,
        "root",
        {},
        ["init", "D", "D2", "root", "end"],
        id="alias-is-its-own-step",
    ),
    pytest.param(
        """
        [tasks.short]
        alias = "middle"
        dependencies = ["never-defined"]
        [tasks.middle]
        alias = "long"
        [tasks.long]
        dependencies = ["prep"]
        [tasks.prep]
        """,
        "short",
        {},
        ["init", "prep", "short", "end"],
        id="alias-chain-ignores-alias-deps",
    ),
    pytest.param(
        DIAMOND,
        "A",
        {"skip_tasks": re.compile("B")},
        ["init", "D", "C", "A", "end"],
        id="skip-regex-drops-subtree",
    ),
    pytest.param(
        """
        [tasks.root]
        dependencies = ["undefined-but-skipped", "ok"]
        [tasks.ok]
        """,
        "root",
        {"skip_tasks": re.compile("^undefined")},
        ["init", "ok", "root", "end"],
        id="skip-regex-before-lookup",
    ),
    pytest.param(DIAMOND, "A", {"skip_tasks": re.compile("A")}, ["init", "end"], id="skip-root"),
    pytest.param(DIAMOND, "A", {"skip_init_end": True}, ["D", "B", "C", "A"], id="skip-init-end"),
    pytest.param(DIAMOND, "A", {"sub_flow": True}, ["D", "B", "C", "A"], id="sub-flow"),
    pytest.param(
        """
        [tasks.flow]
        dependencies = ["init", "work"]
        [tasks.work]
        """,
        "flow",
        {},
        ["init", "init", "work", "flow", "end"],
        id="init-twice-when-depended-upon",
    ),
    pytest.param(
        """
        [tasks.off]
        disabled = true
        dependencies = ["x"]
        [tasks.x]
        """,
        "off",
        {},
        ["init", "end"],
        id="disabled-root",
    ),
    pytest.param(
        """
        [tasks.root]
        dependencies = ["hidden"]
        [tasks.hidden]
        private = true
        """,
        "root",
        {},
        ["init", "hidden", "root", "end"],
        id="private-dependency-allowed",
    ),
    pytest.param(
        """
        [tasks.hidden]
        private = true
        """,
        "hidden",
        {"allow_private": True},
        ["init", "hidden", "end"],
        id="private-root-allowed",
    ),
    pytest.param(
        """
        [config]
        init_task = "setup"
        end_task = "teardown"
        [tasks.setup]
        [tasks.teardown]
        disabled = true
        [tasks.t]
        """,
        "t",
        {},
        ["setup", "t"],
        id="custom-init-disabled-end",
    ),
    pytest.param(
        """
        [tasks.x]
        [tasks.x.linux]
        disabled = true
        [tasks.root]
        dependencies = ["x"]
        """,
        "root",
        {},
        ["init", "root", "end"],
        id="platform-disabled",
    ),
]


@pytest.mark.parametrize(("text", "target", "options", "expected"), TABLE)
def test_plan_order(
    tmp_path: Path, text: str, target: str, options: dict[str, object], expected: list[str]
) -> None:
    assert plan(load(tmp_path, text), target, **options).names() == expected


def test_path_dependencies_become_proxy_steps_never_deduplicated(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "other.toml").write_text("")
    taskfile = load(
        tmp_path,
        """
        [tasks.root]
        dependencies = [{ name = "t", path = "sub" }, "mid", { name = "u", path = "other.toml" }]
        [tasks.mid]
        dependencies = [{ name = "t", path = "sub" }]
        """,
    )
    result = plan(taskfile, "root", cwd=tmp_path)
    assert result.names() == ["init", "t_proxy", "t_proxy", "mid", "u_proxy", "root", "end"]
    first = result.steps[1].proxy
    assert first is not None
    assert (first.task, first.directory, first.makefile) == ("t", tmp_path / "sub", "Makefile.toml")
    file_proxy = result.steps[4].proxy
    assert file_proxy is not None
    assert (file_proxy.directory, file_proxy.makefile) == (tmp_path, "other.toml")


def test_revisited_subtree_with_proxy_repeats_the_proxy(tmp_path: Path) -> None:
    # cargo-make re-walks the dependencies of an already planned name; proxies are re-added.
    taskfile = load(
        tmp_path,
        """
        [tasks.A]
        dependencies = ["B", "C"]
        [tasks.B]
        dependencies = [{ name = "x", path = "." }]
        [tasks.C]
        dependencies = ["B"]
        """,
    )
    names = plan(taskfile, "A", cwd=tmp_path).names()
    assert names == ["init", "x_proxy", "B", "x_proxy", "C", "A", "end"]


def test_step_deps_for_parallel_runs(tmp_path: Path) -> None:
    result = plan(load(tmp_path, DIAMOND), "A")
    deps = {step.name: step.deps for step in result.steps}
    assert deps == {
        "init": (),
        "D": ("init",),
        "B": ("init", "D"),
        "C": ("init", "D"),
        "A": ("init", "B", "C"),
        "end": ("init", "D", "B", "C", "A"),
    }
    assert result.steps[4].dep_steps == (0, 2, 3)


def test_skipped_and_disabled_deps_are_not_waited_for(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.root]
        dependencies = ["off", "skipme", "on"]
        [tasks.off]
        disabled = true
        [tasks.skipme]
        [tasks.on]
        """,
    )
    result = plan(taskfile, "root", skip_tasks=re.compile("skip"), skip_init_end=True)
    assert [(s.name, s.deps) for s in result.steps] == [("on", ()), ("root", ("on",))]


def test_dep_steps_give_the_parallel_waves(tmp_path: Path) -> None:
    result = plan(load(tmp_path, DIAMOND), "A")
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for index, step in enumerate(result.steps):
        sorter.add(index, *step.dep_steps)
    sorter.prepare()
    waves = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        waves.append([result.steps[i].name for i in ready])
        sorter.done(*ready)
    assert waves == [["init"], ["D"], ["B", "C"], ["A"], ["end"]]


def test_steps_hold_normalised_tasks_under_the_requested_name(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.short]
        alias = "long"
        [tasks.long]
        command = "echo"
        """,
    )
    step = plan(taskfile, "short").steps[1]
    assert (step.name, step.task.name, step.task.command) == ("short", "short", "echo")


def test_private_root_is_refused(tmp_path: Path) -> None:
    taskfile = load(tmp_path, "[tasks.secret]\nprivate = true\n")
    with pytest.raises(PlanError, match="Task secret is private") as caught:
        plan(taskfile, "secret")
    assert "--allow-private" in (caught.value.hint or "")
    assert caught.value.location is not None and caught.value.location.line == 2


def test_unknown_dependency_names_who_asked_and_suggests(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.build]
        [tasks.root]
        dependencies = ["biuld"]
        """,
    )
    with pytest.raises(PlanError) as caught:
        plan(taskfile, "root")
    error = caught.value
    assert 'Task "biuld" not found' in error.message
    assert 'required by "root"' in error.message and "Makefile.toml:4" in error.message
    assert error.hint is not None and '"build"' in error.hint
    assert error.location is not None and error.location.line == 4


def test_unknown_root(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match='Task "nope" not found'):
        plan(load(tmp_path, "[tasks.a]\n"), "nope")


def test_dependency_cycle_found_before_anything(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.a]
        dependencies = ["b"]
        [tasks.b]
        dependencies = ["a"]
        """,
    )
    with pytest.raises(PlanError, match="a -> b -> a") as caught:
        plan(taskfile, "a")
    assert caught.value.location is not None and caught.value.location.line == 5


def test_self_dependency_through_alias_is_a_cycle(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.a]
        dependencies = ["b"]
        [tasks.b]
        alias = "a"
        """,
    )
    with pytest.raises(PlanError, match="b -> b"):
        plan(taskfile, "a")


def test_two_actions_met_through_extend(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.base]
        command = "echo"
        [tasks.child]
        extend = "base"
        script = "echo"
        """,
    )
    with pytest.raises(PlanError, match="contains multiple actions"):
        plan(taskfile, "child")


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": ["b"], "b": ["c"], "c": []}, None),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"x": ["y"], "y": ["y"]}, ["y", "y"]),
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, None),
    ],
)
def test_find_cycle(graph: dict[str, list[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_unknown_run_task_target_is_found_up_front(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.flow]
        dependencies = ["ok"]
        run_task = { name = ["ok", "typo"] }
        [tasks.ok]
        """,
    )
    with pytest.raises(PlanError, match='Task "typo" not found \\(run_task of "flow"') as caught:
        plan(taskfile, "flow")
    assert caught.value.location is not None and caught.value.location.line == 4
    assert plan(taskfile, "flow", skip_tasks=re.compile("typo")).names()[-2:] == ["flow", "end"]


def test_unknown_root_without_any_task_file_says_so(tmp_path: Path) -> None:
    for target in ("build", "default"):
        with pytest.raises(PlanError, match=r"no task file: looked for pitstop\.toml and Makefile"):
            plan(load_taskfile(None, tmp_path), target)
