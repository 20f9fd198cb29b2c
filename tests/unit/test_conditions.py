"""Task conditions (SEMANTICS §7, cases 22 and 24)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pitstop.errors import Location, UserError
from pitstop.steps.conditions import (
    check_criteria,
    condition_result,
    is_truthy,
    needs_script,
)
from pitstop.taskfile.model import Condition, ConditionType, FilesModified, current_platform

WHERE = Location(Path("Makefile.toml"), 3)
ENV = {"TRUE_ENV": "true", "FALSE_ENV": "false", "EMPTY": "", "NAME": "Hello World"}


def cond(**kw: Any) -> Condition:
    return Condition(location=WHERE, **kw)


def check(c: Condition | None, env: dict[str, str] = ENV, cwd: Path = Path("."), **kw: Any) -> bool:
    return check_criteria(
        c,
        env,
        profile=kw.get("profile", "development"),
        platform=kw.get("platform", "linux"),
        cwd=cwd,
    )


# case 24, task by task
CASE_24: list[tuple[ConditionType, tuple[str, ...], tuple[str, ...], bool]] = [
    ("And", ("TRUE_ENV", "FALSE_ENV"), ("TRUE_ENV",), False),
    ("Or", ("TRUE_ENV", "FALSE_ENV"), ("TRUE_ENV",), True),
    ("GroupOr", ("TRUE_ENV", "FALSE_ENV"), ("TRUE_ENV",), False),
    ("GroupOr", ("TRUE_ENV",), ("TRUE_ENV", "FALSE_ENV"), True),
    ("And", ("TRUE_ENV",), ("FALSE_ENV",), True),
]


@pytest.mark.parametrize(("ctype", "env_true", "env_false", "expected"), CASE_24)
def test_case_24(
    ctype: ConditionType, env_true: tuple[str, ...], env_false: tuple[str, ...], expected: bool
) -> None:
    c = cond(condition_type=ctype, env_true=env_true, env_false=env_false)
    assert check(c) is expected


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, True),
        ({"env_set": ("TRUE_ENV",)}, True),
        ({"env_set": ("CM_CASE_FLAG",)}, False),  # case 22
        ({"env_set": ()}, True),
        ({"env_not_set": ("CM_CASE_FLAG",)}, True),
        ({"env_not_set": ("EMPTY",)}, False),  # set-but-empty is set
        ({"env_true": ("UNSET",)}, False),  # must exist
        ({"env_false": ("UNSET",)}, False),  # must exist
        ({"env_false": ("EMPTY",)}, True),
        ({"env": (("TRUE_ENV", "true"),)}, True),
        ({"env": (("TRUE_ENV", "TRUE"),)}, False),
        ({"env": (("UNSET", ""),)}, False),
        ({"env_not": (("TRUE_ENV", "false"),)}, True),
        ({"env_not": (("UNSET", "x"),)}, True),
        ({"env_not": (("TRUE_ENV", "true"),)}, False),
        ({"env_contains": (("NAME", "hello"),)}, True),  # case-insensitive
        ({"env_contains": (("NAME", "bye"),)}, False),
        ({"env_contains": (("UNSET", ""),)}, False),
        ({"platforms": ("linux", "mac")}, True),
        ({"platforms": ("windows",)}, False),
        ({"profiles": ("development",)}, True),
        ({"profiles": ("production",)}, False),
    ],
)
def test_criteria_and(kw: dict[str, Any], expected: bool) -> None:
    assert check(cond(**kw)) is expected


@pytest.mark.parametrize(
    ("ctype", "kw", "expected"),
    [
        # Or: any single item of any criterion
        ("Or", {"env_set": ("UNSET", "TRUE_ENV")}, True),
        ("Or", {"env_set": ("UNSET",), "platforms": ("linux",)}, True),
        ("Or", {"env_set": ("UNSET",), "platforms": ("windows",)}, False),
        # GroupOr: a whole criterion
        ("GroupOr", {"env_set": ("UNSET", "TRUE_ENV")}, False),
        ("GroupOr", {"env_set": ("UNSET", "TRUE_ENV"), "profiles": ("development",)}, True),
        # nothing set at all passes, whatever the type
        ("Or", {}, True),
        ("GroupOr", {}, True),
        # an empty list is a passing group
        ("Or", {"env_set": (), "platforms": ("windows",)}, True),
    ],
)
def test_or_and_group_or(ctype: ConditionType, kw: dict[str, Any], expected: bool) -> None:
    assert check(cond(condition_type=ctype, **kw)) is expected


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        ("", False),
        ("false", False),
        ("FALSE", False),
        ("No", False),
        ("0", False),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("anything", True),
        (" 0", True),
    ],
)
def test_is_truthy(value: str, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_none_condition_passes() -> None:
    assert check(None) is True


def test_current_platform_is_a_cargo_make_name() -> None:
    assert current_platform() in ("linux", "mac", "windows")


def test_files_exist_relative_to_cwd_and_expanded(tmp_path: Path) -> None:
    (tmp_path / "there.txt").write_text("x")
    env = {**ENV, "DIR": str(tmp_path)}
    assert check(cond(files_exist=("there.txt",)), env, tmp_path)
    assert check(cond(files_exist=("${DIR}/there.txt",)), env, Path("/"))
    assert not check(cond(files_exist=("there.txt", "missing")), env, tmp_path)
    assert check(cond(files_not_exist=("missing",)), env, tmp_path)
    assert not check(cond(files_not_exist=("there.txt",)), env, tmp_path)


def _touch(path: Path, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, (mtime, mtime))


def test_files_modified(tmp_path: Path) -> None:
    fm = cond(files_modified=FilesModified(input=("src/**/*.c",), output=("out/*.bin",)))
    _touch(tmp_path / "src" / "a" / "x.c", 1000)
    assert check(fm, cwd=tmp_path)  # no output yet
    _touch(tmp_path / "out" / "app.bin", 2000)
    assert not check(fm, cwd=tmp_path)  # every input older
    _touch(tmp_path / "src" / "b.c", 3000)
    assert check(fm, cwd=tmp_path)  # one input newer
    assert check(cond(files_modified=FilesModified(input=(), output=("out/*",))), cwd=tmp_path)


def test_files_modified_input_matching_nothing_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "out.bin", 2000)
    fm = cond(files_modified=FilesModified(input=("nothing/*.c",), output=("out.bin",)))
    with pytest.raises(UserError, match=r"nothing/\*\.c") as info:
        check(fm, cwd=tmp_path)
    assert info.value.location == WHERE


@pytest.mark.parametrize(
    ("ctype", "passed", "has_condition", "runs"),
    [
        ("And", True, True, True),
        ("And", False, True, False),
        ("And", True, False, True),  # only a condition_script
        ("Or", True, True, False),
        ("Or", False, True, True),
        ("GroupOr", True, True, False),
        ("GroupOr", False, True, True),
    ],
)
def test_needs_script(ctype: ConditionType, passed: bool, has_condition: bool, runs: bool) -> None:
    assert needs_script(ctype, passed, has_condition) is runs


@pytest.mark.parametrize(
    ("ctype", "passed", "script", "result"),
    [
        ("And", True, True, True),
        ("And", True, False, False),
        ("And", False, None, False),
        ("Or", True, None, True),
        ("Or", False, True, True),
        ("Or", False, False, False),
        ("Or", False, None, False),
        ("GroupOr", False, True, True),
    ],
)
def test_condition_result(
    ctype: ConditionType, passed: bool, script: bool | None, result: bool
) -> None:
    assert condition_result(cond(condition_type=ctype), passed, script) is result
