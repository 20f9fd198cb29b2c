"""@@ argument functions (SEMANTICS §6.6, case 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.errors import Location, UserError
from pitstop.steps.expand import expand_args
from pitstop.steps.functions import FunctionError, parse_call, run_functions

ENV = {
    "LIST": "VALUE1;VALUE2;VALUE3",
    "HOLES": "a;;b;",
    "PADDED": "  x y  ",
    "EMPTY": "",
    "MODE": "dev",
    "REF": "r",
}


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("plain", ["plain"]),
        ("@@notacall", ["@@notacall"]),
        ("@@split(LIST", ["@@split(LIST"]),
        ("@@split(LIST,;)", ["VALUE1", "VALUE2", "VALUE3"]),
        ("@@split(HOLES,;)", ["a", "", "b", ""]),
        ("@@split(HOLES,;,remove-empty)", ["a", "b"]),
        ("@@split(EMPTY,;)", []),
        ("@@split(UNSET,;)", []),
        ("@@split(PADDED, )", ["", "", "x", "y", "", ""]),  # single-char args are not trimmed
        ("@@remove-empty(EMPTY)", []),
        ("@@remove-empty(MODE)", ["dev"]),
        ("@@trim(PADDED)", ["x y"]),
        ("@@trim(PADDED,start)", ["x y  "]),
        ("@@trim(PADDED, end)", ["  x y"]),
        ("@@trim(EMPTY)", []),
        ("@@getat(LIST,;,1)", ["VALUE2"]),
        ("@@getat(LIST,;,9)", []),
        ("@@getat(EMPTY,;,0)", []),
        ("@@decode(MODE,dev,debug,prod,release)", ["debug"]),
        ("@@decode(MODE,x,1,y,2,fallback)", ["fallback"]),
        ("@@decode(MODE,x,1)", ["dev"]),  # no match, no default: the value itself
        ("@@decode(MODE,dev,${REF}-out)", ["r-out"]),  # the result is expanded
        ("@@decode(EMPTY,x,1)", []),
    ],
)
def test_functions(arg: str, expected: list[str]) -> None:
    assert run_functions([arg], ENV) == expected


def test_case_17_split_before_expansion() -> None:
    env = {"ITEM": "VALUE3"}
    env["LIST_VALUE"] = ";".join(["VALUE1", "VALUE2", env["ITEM"]])
    joined = expand_args(run_functions(["${LIST_VALUE}"], env), env, [])
    split = expand_args(run_functions(["@@split(LIST_VALUE,;)"], env), env, [])
    assert joined == ["VALUE1;VALUE2;VALUE3"]
    assert split == ["VALUE1", "VALUE2", "VALUE3"]


def test_parse_call() -> None:
    assert parse_call("@@f()") == ("f", [])
    assert parse_call("@@f( a , b )") == ("f", ["a", "b"])
    assert parse_call("x@@f()") is None


@pytest.mark.parametrize(
    "arg",
    ["@@nope(X)", "@@split(LIST)", "@@split(LIST,ab)", "@@trim(X,middle)", "@@getat(LIST,;,x)"],
)
def test_bad_calls_are_user_errors(arg: str) -> None:
    where = Location(Path("Makefile.toml"), 7)
    with pytest.raises(FunctionError) as info:
        run_functions([arg], ENV, where)
    assert isinstance(info.value, UserError)
    assert info.value.location == where
    assert arg in info.value.message


def test_unknown_function_names_itself() -> None:
    with pytest.raises(FunctionError, match="unknown function '@@nope'"):
        run_functions(["@@nope(X)"], ENV)
