"""Env files (SEMANTICS §6.5, §6.8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.errors import Location, UserError
from pitstop.steps.envfile import (
    EnvFileError,
    load_env_file,
    load_env_files,
    parse_env_text,
    resolve_env_file_path,
)
from pitstop.taskfile.model import EnvFile


def test_parse() -> None:
    text = (
        "\n# a comment\nA=1\n  B = two words  \n"
        + """export C="quoted # not a comment"
D='single'
E=
F="unbalanced'
no equals sign
=novalue
G=a=b
"""
    )
    assert parse_env_text(text) == [
        ("A", "1"),
        ("B", "two words"),
        ("C", "quoted # not a comment"),
        ("D", "single"),
        ("E", ""),
        ("F", "\"unbalanced'"),
        ("G", "a=b"),
    ]


def test_values_expanded_in_order_and_defaults_only(tmp_path: Path) -> None:
    f = tmp_path / "x.env"
    f.write_text("FIRST=${BASE}-1\nSECOND=${FIRST}-2\nKEEP=new\n")
    env = {"BASE": "b", "KEEP": "old"}
    load_env_file(f, env)
    assert env == {"BASE": "b", "KEEP": "new", "FIRST": "b-1", "SECOND": "b-1-2"}
    env2 = {"KEEP": "old"}
    load_env_file(f, env2, defaults_only=True)
    assert env2["KEEP"] == "old"
    assert env2["FIRST"] == "${BASE}-1"


@pytest.mark.parametrize(
    ("name", "base", "expected"),
    [
        ("./a.env", None, "/work/./a.env"),
        ("./a.env", "/decl", "/decl/./a.env"),
        ("./a.env", "./sub", "/work/./sub/./a.env"),
        ("/abs/a.env", "/decl", "/abs/a.env"),
        ("rel/a.env", "/decl", "rel/a.env"),  # used as written
        ("${DIR}/a.env", None, "/from-env/a.env"),
    ],
)
def test_resolve(name: str, base: str | None, expected: str) -> None:
    env = {"DIR": "/from-env"}
    assert resolve_env_file_path(name, env, base_dir=base, working_dir=Path("/work")) == Path(
        expected
    )


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    decl = tmp_path / "decl"
    work.mkdir()
    decl.mkdir()
    (work / "a.env").write_text("WHERE=work\n")
    (decl / "a.env").write_text("WHERE=decl\n")
    (work / "prod.env").write_text("PROD=1\n")
    return work, decl


def test_task_scope_against_working_dir(tmp_path: Path) -> None:
    work, decl = _layout(tmp_path)
    entry = EnvFile("./a.env", Location(decl / "Makefile.toml", 3))
    env: dict[str, str] = {}
    load_env_files([entry], env, profile="development", working_dir=work)
    assert env == {"WHERE": "work"}


def test_global_scope_against_declaring_makefile(tmp_path: Path) -> None:
    work, decl = _layout(tmp_path)
    entry = EnvFile("./a.env", Location(decl / "Makefile.toml", 3))
    env: dict[str, str] = {}
    load_env_files([entry], env, profile="development", working_dir=work, scope="global")
    assert env == {"WHERE": "decl"}


def test_profile_filter(tmp_path: Path) -> None:
    work, _ = _layout(tmp_path)
    at = Location(work / "Makefile.toml", 1)
    files = [EnvFile("./prod.env", at, profile="production")]
    env: dict[str, str] = {}
    load_env_files(files, env, profile="development", working_dir=work)
    assert env == {}
    load_env_files(
        files, env, profile="development", additional_profiles=["production"], working_dir=work
    )
    assert env == {"PROD": "1"}


def test_missing_file_names_file_and_entry(tmp_path: Path) -> None:
    at = Location(tmp_path / "Makefile.toml", 12)
    with pytest.raises(EnvFileError) as info:
        load_env_files([EnvFile("./nope.env", at)], {}, profile="development", working_dir=tmp_path)
    assert isinstance(info.value, UserError)
    assert "nope.env" in info.value.message
    assert info.value.location == at
