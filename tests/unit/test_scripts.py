"""Script text and engines (SEMANTICS §8.2, cases 13 and 37)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pitstop.errors import Location, UserError
from pitstop.steps.scripts import (
    ScriptError,
    guess_extension,
    os_script_body,
    parse_shebang,
    script_invocation,
    script_text,
    select_engine,
)
from pitstop.taskfile.model import ScriptFile, ScriptSections

WHERE = Location(Path("Makefile.toml"), 5)


def test_text_forms(tmp_path: Path) -> None:
    env = {"CARGO_MAKE_WORKING_DIRECTORY": str(tmp_path), "SUB": "s"}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x.sh").write_text("echo from file\n")
    assert script_text("echo hi", tmp_path, env) == "echo hi"
    assert script_text(ScriptSections(pre="a", post="c"), tmp_path, env) == "a\nc"
    assert script_text(ScriptSections("a", "b", "c"), tmp_path, env) == "a\nb\nc"
    assert script_text(ScriptFile("${SUB}/x.sh"), Path("/elsewhere"), env) == "echo from file\n"
    absolute = ScriptFile(str(tmp_path / "s" / "x.sh"), absolute_path=True)
    assert script_text(absolute, Path("/elsewhere"), {}) == "echo from file\n"


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"nope\.sh") as info:
        script_text(ScriptFile("nope.sh"), tmp_path, {}, WHERE)
    assert info.value.location == WHERE


@pytest.mark.parametrize(
    ("text", "runner", "ext", "engine"),
    [
        ("echo hi", None, None, "os"),
        ("echo hi", "bash", None, "os"),
        ("print(1)", "python3", "py", "generic"),
        ("#!/usr/bin/env python3\nprint(1)", None, None, "shebang"),
        ("  #!/bin/bash\necho", None, None, "shebang"),
        ("#!@shell\necho", None, None, "os"),
        ("echo", "@shell", None, "os"),
        ("#!\necho", None, None, "os"),
    ],
)
def test_select_engine(text: str, runner: str | None, ext: str | None, engine: str) -> None:
    assert select_engine(text, runner, ext) == engine


@pytest.mark.parametrize(
    ("text", "runner"),
    [("x", "@duckscript"), ("x", "@rust"), ("#!@duckscript\nx", None)],
)
def test_internal_engines_refused(text: str, runner: str | None) -> None:
    with pytest.raises(UserError, match="not supported by pitstop") as info:
        select_engine(text, runner, None, WHERE)
    assert info.value.hint is not None and "bash" in info.value.hint
    assert info.value.location == WHERE


def test_os_body() -> None:
    assert (
        os_script_body("\n  echo a\necho b\n\n", Path("/w"))
        == 'set -e\ncd "/w"\necho a\necho b\n\n'
    )
    body = os_script_body("#!/bin/bash\necho a", Path("/w"), print_commands=True)
    assert body == '#!/bin/bash\nset -e\nset -x\ncd "/w"\necho a\n\n'


@pytest.mark.parametrize(
    ("line", "ext"),
    [
        ("#!/usr/bin/python", "py"),
        ("#!/usr/bin/env python3", "py"),
        ("#!/usr/bin/env -S node --x", "js"),
        ("#!/usr/bin/perl -w", "pl"),
        ("#!pwsh", "ps1"),
        ("#!/bin/bash", "sh"),
    ],
)
def test_guess_extension(line: str, ext: str) -> None:
    shebang = parse_shebang(line)
    assert shebang is not None
    assert guess_extension(shebang) == ext


def test_os_invocation_runs_with_set_e(tmp_path: Path) -> None:  # case 37
    text = "echo before failure\nfalse\necho after failure\n"
    argv = script_invocation(
        text,
        runner=None,
        runner_args=["ignored"],
        extension=None,
        cwd=tmp_path,
        task_args=["x1"],
        tmpdir=tmp_path,
    )
    assert argv[0] == "sh" and argv[2:] == ["x1"] and argv[1].endswith(".sh")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert done.stdout == "before failure\n"


def test_os_invocation_cd_and_args(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    argv = script_invocation(
        'pwd\necho "$1-$2"',
        runner="sh",
        runner_args=None,
        extension=None,
        cwd=work,
        task_args=["a", "b"],
        tmpdir=tmp_path,
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.splitlines() == [str(work), "a-b"]


def test_generic_invocation(tmp_path: Path) -> None:
    argv = script_invocation(
        "print('hi')",
        runner="python3",
        runner_args=["-u"],
        extension="py",
        cwd=tmp_path,
        task_args=["a"],
        tmpdir=tmp_path,
    )
    assert argv[:2] == ["python3", "-u"] and argv[2].endswith(".py") and argv[3:] == ["a"]
    assert Path(argv[2]).read_text() == "print('hi')"


def test_shebang_invocation(tmp_path: Path) -> None:
    text = "#!/usr/bin/env sh\necho shebang $1"
    argv = script_invocation(
        text,
        runner=None,
        runner_args=None,
        extension=None,
        cwd=tmp_path,
        task_args=["z"],
        tmpdir=tmp_path,
    )
    assert argv[:2] == ["/usr/bin/env", "sh"] and argv[3:] == ["z"]
    assert Path(argv[2]).read_text() == text
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout == "shebang z\n"


def test_temp_files_stay_in_tmpdir(tmp_path: Path) -> None:
    for text in ("echo", "#!/bin/sh\necho"):
        argv = script_invocation(
            text,
            runner=None,
            runner_args=None,
            extension=None,
            cwd=tmp_path,
            task_args=[],
            tmpdir=tmp_path,
        )
        assert Path(argv[-1]).parent == tmp_path
