"""Bad task files: each fails with a UserError (exit code 2) at the right line, naming the file."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pitstop.errors import PitstopError, PlanError, TaskFileError
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.planner import build_plan


@dataclass(frozen=True)
class Bad:
    text: str
    error: type[PitstopError]
    line: int
    says: str
    target: str = "a"
    extra_files: dict[str, str] = field(default_factory=dict)


TABLE = {
    "malformed TOML": Bad(
        """\
        [tasks.a]
        command = "echo"
        args = ["x" "y"]
        """,
        TaskFileError,
        3,
        "invalid TOML",
    ),
    "unclosed array at end of file": Bad(
        """\
        [tasks.a]
        args = ["x",
        """,
        TaskFileError,
        2,
        "invalid TOML",
    ),
    "dependencies is a string": Bad(
        """\
        [tasks.a]

        dependencies = "b"
        """,
        TaskFileError,
        3,
        'dependencies must be a list of task names, e.g. dependencies = ["b"]',
    ),
    "dependency item of wrong type": Bad(
        """\
        [tasks.a]
        dependencies = [
            "b",
            3,
        ]
        """,
        TaskFileError,
        4,
        "dependencies[1] must be a task name",
    ),
    "args is a string": Bad(
        '[tasks.a]\nargs = "x"\n',
        TaskFileError,
        2,
        'args must be a list of strings, e.g. args = ["..."]',
    ),
    "script is a number": Bad("[tasks.a]\nscript = 3\n", TaskFileError, 2, "script must be"),
    "env is not a table": Bad("[tasks.a]\nenv = 5\n", TaskFileError, 2, "env must be a table"),
    "global env value of wrong type": Bad(
        '[env]\nOK = "x"\nWHEN = 1979-05-27\n', TaskFileError, 3, "env.WHEN"
    ),
    "boolean flag is a string": Bad(
        '[tasks.a]\nprivate = "yes"\n', TaskFileError, 2, "private must be true or false"
    ),
    "two actions": Bad(
        """\
        [tasks.a]
        command = "echo"
        script = "echo hi"
        """,
        TaskFileError,
        3,
        "only one action",
    ),
    "bad condition_type": Bad(
        '[tasks.a]\ncondition = { condition_type = "Xor" }\n',
        TaskFileError,
        2,
        '"And", "Or" or "GroupOr"',
    ),
    "unknown task": Bad(
        """\
        [tasks.a]
        dependencies = ["b", "nope"]
        [tasks.b]
        """,
        PlanError,
        2,
        'Task "nope" not found (required by "a"',
    ),
    "dependency cycle": Bad(
        """\
        [tasks.a]
        dependencies = ["b"]
        [tasks.b]
        dependencies = ["c"]
        [tasks.c]
        dependencies = [
            "x",
            "a",
        ]
        [tasks.x]
        """,
        PlanError,
        8,
        "a -> b -> c -> a",
    ),
    "alias cycle": Bad(
        """\
        [tasks.a]
        alias = "b"
        [tasks.b]
        alias = "a"
        """,
        PlanError,
        4,
        "Detected cycle while resolving alias b: a -> b -> a",
    ),
    "extend cycle": Bad(
        """\
        [tasks.a]
        extend = "b"
        [tasks.b]
        extend = "a"
        """,
        PlanError,
        4,
        "a -> b -> a",
    ),
    "private root": Bad("[tasks.a]\nprivate = true\n", PlanError, 2, "Task a is private"),
    "missing extend file": Bad(
        '# the base\nextend = "missing.toml"\n', TaskFileError, 2, "missing.toml"
    ),
    "missing file in extend list": Bad(
        'extend = [\n  "there.toml",\n  "gone.toml",\n]\n',
        TaskFileError,
        3,
        "gone.toml",
        extra_files={"there.toml": ""},
    ),
    "extended file is malformed": Bad(
        'extend = "base.toml"\n',
        TaskFileError,
        2,
        "invalid TOML in base.toml",
        extra_files={"base.toml": "[tasks.x]\ncommand = \n"},
    ),
}


@pytest.mark.parametrize("bad", TABLE.values(), ids=TABLE.keys())
def test_bad_input(tmp_path: Path, bad: Bad) -> None:
    (tmp_path / "Makefile.toml").write_text(textwrap.dedent(bad.text))
    for name, text in bad.extra_files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PitstopError) as caught:
        build_plan(load_taskfile(None, tmp_path), bad.target, platform="linux")
    error = caught.value
    assert type(error) is bad.error
    assert error.exit_code == 2
    assert bad.says in error.message
    assert error.location is not None
    assert error.location.line == bad.line
    assert error.location.path.parent == tmp_path
    assert error.location.path.name in error.message  # the message names the file


def test_unknown_keys_only_warn_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "Makefile.toml").write_text('[tasks.a]\ncommand = "echo"\n\nfrobnicate = 1\n')
    taskfile = load_taskfile(None, tmp_path)
    (warning,) = taskfile.warnings
    assert warning.location.line == 4 and "frobnicate" in warning.message
    assert "Makefile.toml:4" in warning.message
    assert build_plan(taskfile, "a", platform="linux").names() == ["init", "a", "end"]
