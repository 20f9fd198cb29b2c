"""Task.extend, platform override, alias resolution and task-level extend (SEMANTICS §3)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pitstop.errors import Location, PlanError
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Dependency, ScriptSections, Task, Taskfile
from pitstop.taskfile.normalize import (
    apply_platform_override,
    extend_script,
    extend_task,
    normalize,
    resolve_alias,
)

CASES = Path("/work/shared/cargo-make/cases")
HERE = Location(Path("Makefile.toml"), 1)


def load(tmp_path: Path, text: str) -> Taskfile:
    (tmp_path / "Makefile.toml").write_text(textwrap.dedent(text))
    return load_taskfile(None, tmp_path)


def case(name: str) -> Taskfile:
    directory = CASES / name
    if not directory.is_dir():
        pytest.skip(f"{directory} not available")
    return load_taskfile(None, directory)


def task(name: str = "t", **attributes: object) -> Task:
    return Task(name=name, location=HERE, **attributes)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Task.extend


def test_extend_overrides_only_what_is_set() -> None:
    base = task(description="d", command="echo", args=("1", "2"), category="c")
    over = task(args=("3",), category="x")
    merged = extend_task(base, over)
    assert (merged.description, merged.command, merged.args, merged.category) == (
        "d",
        "echo",
        ("3",),
        "x",
    )


def test_extend_with_clear_drops_everything_not_set() -> None:
    base = task(description="d", command="echo", dependencies=(Dependency("x", HERE),))
    merged = extend_task(base, task(clear=True, script="echo hi"))
    assert merged.description is None and merged.command is None and merged.dependencies is None
    assert merged.script == "echo hi" and merged.clear is True


def test_extend_replaces_lists_and_env_whole() -> None:
    base = task(dependencies=(Dependency("a", HERE), Dependency("b", HERE)))
    merged = extend_task(base, task(dependencies=(Dependency("c", HERE),)))
    assert [d.name for d in merged.dependencies or ()] == ["c"]


@pytest.mark.parametrize(
    ("base", "over", "expected"),
    [
        (
            ScriptSections(pre="p", main="m", post="q"),
            ScriptSections(main="new"),
            ScriptSections(pre="p", main="new", post="q"),
        ),
        ("old", ScriptSections(main="m"), ScriptSections(main="m")),
        (None, "new", "new"),
        ("old", "new", "new"),
        # The quirk: a sectioned base keeps its sections when extended by a plain script.
        (ScriptSections(main="m"), "plain", ScriptSections(main="m")),
    ],
)
def test_extend_script(base: object, over: object, expected: object) -> None:
    assert extend_script(base, over) == expected  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- cases as model


def test_case_09_platform_override_and_default_merged_on_base() -> None:
    taskfile = case("09-platform-override")
    assert normalize(taskfile.tasks, "hello-world", "linux").script == (
        'echo "Hello World From Linux"\n'
    )
    assert normalize(taskfile.tasks, "hello-world", "mac").script == (
        'echo "Hello World From Unknown"\n'
    )
    default = taskfile.tasks["default"]
    assert default.description == "Empty Task"  # from the base task
    assert [d.name for d in default.dependencies or ()] == ["hello-world-common", "hello-world"]


def test_case_11_extend_attribute_chain() -> None:
    effective = normalize(case("11-extend-attribute").tasks, "3", "linux")
    assert (effective.category, effective.description, effective.command, effective.args) == (
        "2",
        "1",
        "echo",
        ("3",),
    )
    assert effective.extend == "2"  # the child keeps its own extend value


def test_case_13_script_sections_merge() -> None:
    effective = normalize(case("13-extend-script-sections").tasks, "extended-script", "linux")
    assert effective.script == ScriptSections(pre="echo start", main="echo new", post="echo end")


# ----------------------------------------------------------------------------- platform override


def test_platform_override_keeps_description_and_drops_aliases() -> None:
    parent = task(
        description="d",
        category="c",
        command="echo",
        args=("a",),
        linux=task(args=("linux",), description="ignored"),
    )
    result = apply_platform_override(parent, "linux")
    assert (result.description, result.command, result.args, result.linux) == (
        "d",
        "echo",
        ("linux",),
        None,
    )


def test_platform_override_with_clear_copies_nothing_but_description() -> None:
    parent = task(description="d", command="echo", args=("a",), linux=task(clear=True, script="s"))
    result = apply_platform_override(parent, "linux")
    assert (result.description, result.command, result.args, result.script) == (
        "d",
        None,
        None,
        "s",
    )


def test_platform_override_for_another_platform_is_ignored() -> None:
    parent = task(command="echo", windows=task(command="cmd"))
    assert apply_platform_override(parent, "linux") is parent


# ----------------------------------------------------------------------------- aliases


def test_platform_alias_beats_alias() -> None:
    tasks = {
        "my": task("my", alias="other", linux_alias="run"),
        "run": task("run"),
        "other": task("other"),
    }
    assert resolve_alias(tasks, "my", "linux") == "run"
    assert resolve_alias(tasks, "my", "mac") == "other"


def test_alias_beats_platform_override(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.x]
        alias = "y"
        [tasks.x.linux]
        command = "linux"
        [tasks.y]
        command = "y"
        """,
    )
    assert normalize(taskfile.tasks, "x", "linux").command == "y"


def test_alias_cycle(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.a]
        alias = "b"
        [tasks.b]
        alias = "a"
        """,
    )
    with pytest.raises(PlanError, match="Detected cycle while resolving alias b: a -> b -> a"):
        normalize(taskfile.tasks, "a", "linux")


def test_alias_to_missing_task(tmp_path: Path) -> None:
    taskfile = load(tmp_path, '[tasks.a]\nalias = "gone"\n')
    with pytest.raises(PlanError, match='Task "gone" not found') as caught:
        normalize(taskfile.tasks, "a", "linux")
    assert caught.value.location is not None and caught.value.location.line == 2


# ----------------------------------------------------------------------------- task-level extend


def test_extend_resolves_parent_alias_and_platform(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.base]
        command = "echo"
        args = ["all"]
        [tasks.base.linux]
        args = ["linux"]
        [tasks.b]
        alias = "base"
        [tasks.child]
        extend = "b"
        description = "child"
        """,
    )
    effective = normalize(taskfile.tasks, "child", "linux")
    assert (effective.command, effective.args, effective.description) == (
        "echo",
        ("linux",),
        "child",
    )


def test_extend_cycle_is_reported_with_the_circle(tmp_path: Path) -> None:
    taskfile = load(
        tmp_path,
        """
        [tasks.a]
        extend = "b"
        [tasks.b]
        extend = "c"
        [tasks.c]
        extend = "a"
        """,
    )
    with pytest.raises(PlanError, match="a -> b -> c -> a") as caught:
        normalize(taskfile.tasks, "a", "linux")
    assert caught.value.location is not None and caught.value.location.line == 7


def test_extend_of_missing_task(tmp_path: Path) -> None:
    taskfile = load(tmp_path, '[tasks.a]\nextend = "nope"\n')
    with pytest.raises(PlanError, match='Task "nope" not found'):
        normalize(taskfile.tasks, "a", "linux")
