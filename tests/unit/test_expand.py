"""expand / expand_args: envmnt's UnixBracketsWithDefaults, and `${@}` (SEMANTICS §6.4)."""

from __future__ import annotations

import pytest

from pitstop.steps.expand import expand, expand_args, task_args_from_env

ENV = {"GREETING": "hello", "EMPTY": "", "REF": "${GREETING}", "COMPOSED": "hello world"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${GREETING} world", "hello world"),
        ("${GREETING}${GREETING}", "hellohello"),
        # default only when unset; set-but-empty stays empty
        ("${CM_UNSET:fallback}", "fallback"),
        ("${EMPTY:fallback}", ""),
        ("${GREETING:fallback}", "hello"),
        ("${CM_UNSET:}", ""),
        ("${CM_UNSET:a b}", "a b"),  # a space is allowed inside a default
        # unset without default stays literal
        ("x-${CM_UNSET}-y", "x-${CM_UNSET}-y"),
        ("${}", "${}"),
        # single pass: a substituted value is not expanded again
        ("${REF}", "${GREETING}"),
        # bare $NAME is not expanded
        ("$GREETING", "$GREETING"),
        ("a$b$", "a$b$"),
        # a space or '=' inside the name aborts the reference
        ("${A B}", "${A B}"),
        ("${A=B}", "${A=B}"),
        # unterminated references are kept
        ("${GREETING", "${GREETING"),
        ("${X:def", "${X:def"),
        # envmnt does not re-scan the character after a lone '$'
        ("$${GREETING}", "$${GREETING}"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_case_15_composition() -> None:
    env: dict[str, str] = {}
    env["GREETING"] = expand("hello", env)
    env["COMPOSED"] = expand("${GREETING} world", env)
    env["WITH_DEFAULT"] = expand("${CM_CASE_SURELY_UNSET_VAR:fallback}", env)
    env["LEFT_AS_IS"] = expand("x-${CM_CASE_SURELY_UNSET_VAR}-y", env)
    args = ["${COMPOSED}", "|", "${WITH_DEFAULT}", "|", "${LEFT_AS_IS}", "|", "$GREETING"]
    assert " ".join(expand_args(args, env, [])) == (
        "hello world | fallback | x-${CM_CASE_SURELY_UNSET_VAR}-y | $GREETING"
    )


@pytest.mark.parametrize(
    ("args", "task_args", "expected"),
    [
        (["${@}"], ["a", "b"], ["a", "b"]),
        (["-o=${@}"], ["a", "b"], ["-o=a", "-o=b"]),
        (["x", "${@}", "-o=${@}", "y"], [], ["x", "y"]),
        (["${GREETING}", "${@}"], ["${GREETING}"], ["hello", "hello"]),  # expanded after
        (["${@}${@}"], ["a"], ["aa"]),
    ],
)
def test_expand_args(args: list[str], task_args: list[str], expected: list[str]) -> None:
    assert expand_args(args, ENV, task_args) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, []), ("", []), ("a", ["a"]), ("a;b", ["a", "b"])],
)
def test_task_args_from_env(value: str | None, expected: list[str]) -> None:
    env = {} if value is None else {"CARGO_MAKE_TASK_ARGS": value}
    assert task_args_from_env(env) == expected
