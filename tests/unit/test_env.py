"""Ordering and applying `[env]` (SEMANTICS §6, cases 15, 16, 17, 19, 20)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pitstop.errors import Location, TaskFileError, UserError
from pitstop.steps.builtin_vars import builtin_env, is_ci, is_pr, task_env
from pitstop.steps.env import (
    CLI_LOCATION,
    ScriptOutput,
    apply_cli_env,
    apply_env,
    order_global_env,
    references,
)
from pitstop.steps.gitinfo import git_env
from pitstop.taskfile.model import (
    Condition,
    EnvConditional,
    EnvDecode,
    EnvEntry,
    EnvGlob,
    EnvProfile,
    EnvScript,
    EnvUnset,
    EnvValue,
)

MAKEFILE = Path("/proj/Makefile.toml")


def e(key: str, value: EnvValue, line: int = 1) -> EnvEntry:
    return EnvEntry(key, value, Location(MAKEFILE, line))


def keys(entries: Sequence[EnvEntry]) -> list[str]:
    return [x.key for x in entries]


def run(
    entries: Sequence[EnvEntry],
    env: dict[str, str] | None = None,
    *,
    profile: str = "development",
    additional: Sequence[str] = (),
    cwd: Path = Path("."),
) -> dict[str, str]:
    env = {} if env is None else env
    asyncio.run(apply_env(entries, env, profile=profile, additional_profiles=additional, cwd=cwd))
    return env


# --------------------------------------------------------------------------- ordering


def test_forward_reference_resolves() -> None:  # case 16
    entries = [e("VAR1", "${VAR2}"), e("VAR2", "2")]
    ordered = order_global_env(entries, {})
    assert keys(ordered) == ["VAR2", "VAR1"]
    assert run(ordered)["VAR1"] == "2"


def test_declaration_order_kept_without_references() -> None:
    entries = [e("C", "1"), e("A", "2"), e("B", "${C}")]
    assert keys(order_global_env(entries, {})) == ["C", "A", "B"]


def test_case_17_list_item_reference() -> None:
    entries = [e("LIST_VALUE", ("VALUE1", "VALUE2", "${ITEM}")), e("ITEM", "VALUE3")]
    assert run(order_global_env(entries, {}))["LIST_VALUE"] == "VALUE1;VALUE2;VALUE3"


@pytest.mark.parametrize(
    ("value", "refs"),
    [
        ("${A} and ${ B }", ["A", "B"]),
        ("${A:default}", ["A:default"]),  # no edge for a defaulted reference, as cargo-make
        (("${A}", "x", "${B}"), ["A", "B"]),
        (EnvDecode("${A}", (("x", "${B}"),)), ["A"]),
        (EnvConditional("${A}"), ["A"]),
        (EnvGlob("${A}/*"), ["A"]),
        (EnvScript(("echo $A ${B} ${#C}",)), ["A", "B", "C"]),
        (EnvScript(("echo $A",), depends_on=("Z",)), ["Z"]),
        (EnvUnset(), []),
    ],
)
def test_references(value: EnvValue, refs: list[str]) -> None:
    assert references(value) == refs


def test_cycle_is_a_task_file_error_with_the_circle() -> None:  # case 19
    entries = [e("OK", "1", 3), e("A", "${B}", 4), e("B", "${A}", 5)]
    with pytest.raises(TaskFileError) as info:
        order_global_env(entries, {})
    error = info.value
    assert "Cycle: A -> B -> A" in error.message
    assert error.location == Location(MAKEFILE, 4)
    assert error.exit_code == 2


def test_self_reference_needs_an_external_value() -> None:
    entries = [e("PATH", "${PATH}:/extra")]
    ordered = order_global_env(entries, {"PATH": "/bin"})
    assert run(ordered, {"PATH": "/bin"})["PATH"] == "/bin:/extra"
    with pytest.raises(TaskFileError, match="Cycle: X -> X"):
        order_global_env([e("X", "${X}")], {})


def test_last_definition_wins_at_its_position() -> None:
    entries = [e("A", "1"), e("B", "2"), e("A", "3")]
    ordered = order_global_env(entries, {})
    assert [(x.key, x.value) for x in ordered] == [("B", "2"), ("A", "3")]


def test_profile_blocks_are_ordered_inside() -> None:
    block = EnvProfile((e("P1", "${P2}"), e("P2", "p")))
    ordered = order_global_env([e("prod", block)], {})
    inner = ordered[0].value
    assert isinstance(inner, EnvProfile)
    assert keys(inner.entries) == ["P2", "P1"]


# --------------------------------------------------------------------------- value kinds


def test_case_15_values() -> None:
    entries = [
        e("GREETING", "hello"),
        e("COMPOSED", "${GREETING} world"),
        e("WITH_DEFAULT", "${CM_CASE_SURELY_UNSET_VAR:fallback}"),
        e("LEFT_AS_IS", "x-${CM_CASE_SURELY_UNSET_VAR}-y"),
        e("BOOL_VALUE", "true"),
        e("NUMBER_VALUE", "42"),
    ]
    env = run(order_global_env(entries, {}))
    assert env["COMPOSED"] == "hello world"
    assert env["WITH_DEFAULT"] == "fallback"
    assert env["LEFT_AS_IS"] == "x-${CM_CASE_SURELY_UNSET_VAR}-y"


def test_unset() -> None:
    assert "GONE" not in run([e("GONE", EnvUnset())], {"GONE": "x"})
    assert run([e("GONE", EnvUnset())], {}) == {}


def test_decode() -> None:
    mapping = (("development", "debug"), ("production", "${OUT}"))
    env = {"CARGO_MAKE_PROFILE": "production", "OUT": "release"}
    assert run([e("K", EnvDecode("${CARGO_MAKE_PROFILE}", mapping))], env)["K"] == "release"
    assert run([e("K", EnvDecode("other", mapping, "dflt"))])["K"] == "dflt"
    assert run([e("K", EnvDecode("other", mapping))])["K"] == "other"


def test_conditional_value() -> None:
    yes = Condition(Location(MAKEFILE), env_set=("FLAG",))
    env = run([e("K", EnvConditional("${FLAG}-on", yes))], {"FLAG": "1"})
    assert env["K"] == "1-on"
    assert "K" not in run([e("K", EnvConditional("on", yes))], {})


def test_env_script_real_sh(tmp_path: Path) -> None:
    entries = [
        e("BASE", "base"),
        e("LAST", EnvScript(("echo first", "echo", 'echo "$BASE-${BASE}"', "printf ''"))),
        e("MULTI", EnvScript(("echo a", "echo b"), multi_line=True)),
        e("WHERE", EnvScript(("pwd",))),
        e("EXPANDED", EnvScript(("echo '${BASE}'",))),
    ]
    env = run(entries, {"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert env["LAST"] == "base-base"
    assert env["MULTI"] == "a\nb\n"
    assert Path(env["WHERE"]).resolve() == tmp_path.resolve()
    assert env["EXPANDED"] == "base"  # the output is expanded again


def test_env_script_failure_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"'BAD'.*exit code 3.*oops") as info:
        run(
            [e("BAD", EnvScript(("echo oops >&2", "exit 3")), 9)],
            {"PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
        )
    assert info.value.location == Location(MAKEFILE, 9)


def test_env_script_condition_and_injected_runner(tmp_path: Path) -> None:
    calls: list[Sequence[str]] = []

    async def fake(lines: Sequence[str], env: Mapping[str, str], cwd: Path) -> ScriptOutput:
        calls.append(lines)
        return ScriptOutput(0, "x\r\ny\r\n\n", "")

    never = Condition(Location(MAKEFILE), env_set=("NOPE",))
    env: dict[str, str] = {}
    asyncio.run(
        apply_env(
            [e("A", EnvScript(("one",))), e("B", EnvScript(("two",), condition=never))],
            env,
            profile="development",
            cwd=tmp_path,
            run_script=fake,
        )
    )
    assert env == {"A": "y"}
    assert calls == [("one",)]


def test_glob(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", ".hidden.txt", "sub/c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    env = run([e("G", EnvGlob("**/*.txt"))], cwd=tmp_path)
    assert env["G"] == "./.hidden.txt;./a.txt;./b.txt;./sub/c.txt"
    only_dirs = run([e("G", EnvGlob("*", include_files=False))], cwd=tmp_path)
    assert only_dirs["G"] == "./sub"


# --------------------------------------------------------------------------- profiles


def test_profile_override_order() -> None:
    entries = [
        e("A", "plain-before"),
        e("production", EnvProfile((e("A", "prod"), e("B", "prod"), e("C", "${A}")))),
        e("extra", EnvProfile((e("B", "extra"),))),
        e("B", "plain-after"),
        e("other", EnvProfile((e("A", "other"),))),
    ]
    env = run(entries, profile="production", additional=("extra",))
    # the current profile's block is applied again after the rest, so it wins
    assert env["A"] == "prod"
    assert env["B"] == "prod"
    assert env["C"] == "prod"

    dev = run(entries, profile="development", additional=("extra",))
    assert dev == {"A": "plain-before", "B": "plain-after"}  # "extra" applied, then overwritten

    dev_extra_last = run(
        [e("B", "plain"), e("extra", EnvProfile((e("B", "extra"),)))], additional=("extra",)
    )
    assert dev_extra_last["B"] == "extra"


def test_profile_blocks_do_not_nest() -> None:
    nested = EnvProfile((e("X", "1"), e("production", EnvProfile((e("Y", "2"),)))))
    assert run([e("production", nested)], profile="production") == {"X": "1"}


# --------------------------------------------------------------------------- CLI --env


def test_cli_env_first_and_replaces_makefile_entries() -> None:
    entries = [
        e("FLAG", EnvConditional("from-file")),
        e("USES", "${FLAG}!"),
        e("OTHER", "o"),
    ]
    merged = apply_cli_env(entries, ["FLAG=cli=value"])
    assert keys(merged) == ["FLAG", "USES", "OTHER"]
    assert merged[0].location == CLI_LOCATION
    assert run(order_global_env(merged, {}))["USES"] == "cli=value!"
    assert keys(apply_cli_env(entries, [("OTHER", "x")])) == ["OTHER", "FLAG", "USES"]


def test_cli_env_needs_key_value() -> None:
    with pytest.raises(UserError, match="KEY=VALUE"):
        apply_cli_env([], ["NOVALUE"])


# --------------------------------------------------------------------------- case 20


def test_case_20_task_env_persists() -> None:
    env: dict[str, str] = {}
    asyncio.run(apply_env([e("SHARED", "set-by-first")], env, profile="development", cwd=Path(".")))
    # the second task's args see it: nothing is restored between tasks
    from pitstop.steps.expand import expand

    assert expand("second: ${SHARED}", env) == "second: set-by-first"


# --------------------------------------------------------------------------- built-ins


def test_builtin_env(tmp_path: Path) -> None:
    project = tmp_path / "myproj"
    project.mkdir()
    out = builtin_env(
        task="build",
        task_args=["a", "b"],
        cwd=project,
        makefile=project / "Makefile.toml",
        profile="development",
        additional_profiles=["x", "y"],
        base_env={},
    )
    assert out["CARGO_MAKE"] == "true"
    assert out["CARGO_MAKE_TASK"] == "build"
    assert out["CARGO_MAKE_TASK_ARGS"] == "a;b"
    assert out["CARGO_MAKE_COMMAND"] == "pitstop"
    assert out["CARGO_MAKE_WORKING_DIRECTORY"] == str(project.resolve())
    assert out["CARGO_MAKE_WORKSPACE_WORKING_DIRECTORY"] == str(project.resolve())
    assert out["CARGO_MAKE_PROFILE"] == "development"
    assert out["CARGO_MAKE_ADDITIONAL_PROFILES"] == "x;y"
    assert out["CARGO_MAKE_MAKEFILE_PATH"] == str((project / "Makefile.toml").resolve())
    assert out["CARGO_MAKE_CI"] == "false"
    assert out["CARGO_MAKE_PR"] == "false"
    assert out["CARGO_MAKE_PROJECT_NAME"] == "myproj"
    assert not any(k.startswith("CARGO_MAKE_GIT_") for k in out)


@pytest.mark.parametrize(
    ("env", "ci"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "false"}, False),
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"BUILD_NUMBER": "7"}, True),
    ],
)
def test_is_ci(env: dict[str, str], ci: bool) -> None:
    assert is_ci(env) is ci


def test_ci_vendor_branch_and_pr() -> None:
    base = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_HEAD_REF": "feature",
    }
    out = builtin_env(
        task="t",
        task_args=[],
        cwd=Path("."),
        makefile=MAKEFILE,
        profile="development",
        base_env=base,
    )
    assert out["CARGO_MAKE_CI"] == "true"
    assert out["CARGO_MAKE_PR"] == "true"
    assert out["CARGO_MAKE_CI_VENDOR"] == "GitHub Actions"
    assert out["CARGO_MAKE_CI_BRANCH_NAME"] == "feature"


def test_task_env(tmp_path: Path) -> None:
    out = task_env("build", Location(tmp_path / "Makefile.toml", 4))
    assert out == {
        "CARGO_MAKE_CURRENT_TASK_NAME": "build",
        "CARGO_MAKE_CURRENT_TASK_INITIAL_MAKEFILE": str((tmp_path / "Makefile.toml").resolve()),
        "CARGO_MAKE_CURRENT_TASK_INITIAL_MAKEFILE_DIRECTORY": str(tmp_path.resolve()),
    }


def test_git_env_from_files(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("0123456789abcdef\n")
    (git / "config").write_text(
        '[core]\n\tbare = false\n[user]\n\tname = "Ada L"\n\temail = ada@x.org\n'
    )
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    out = git_env(sub, {"HOME": str(tmp_path / "nohome")})
    assert out == {
        "CARGO_MAKE_GIT_BRANCH": "main",
        "CARGO_MAKE_GIT_HEAD_LAST_COMMIT_HASH": "0123456789abcdef",
        "CARGO_MAKE_GIT_HEAD_LAST_COMMIT_HASH_PREFIX": "0123456",
        "CARGO_MAKE_GIT_USER_NAME": "Ada L",
        "CARGO_MAKE_GIT_USER_EMAIL": "ada@x.org",
    }


def test_git_env_packed_ref_and_no_repo(tmp_path: Path) -> None:
    git = tmp_path / "r" / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/dev\n")
    (git / "packed-refs").write_text("# pack-refs\nfeedbeef1234 refs/heads/dev\n")
    out = git_env(tmp_path / "r", {"HOME": str(tmp_path)})
    assert out["CARGO_MAKE_GIT_HEAD_LAST_COMMIT_HASH"] == "feedbeef1234"
    assert git_env(tmp_path, {"HOME": str(tmp_path)}) == {} or (tmp_path / ".git").exists()


@pytest.mark.parametrize(
    ("env", "pr"),
    [
        ({}, False),
        ({"GITHUB_EVENT_NAME": "push"}, False),
        ({"GITHUB_EVENT_NAME": "pull_request_target"}, True),
        ({"TRAVIS_PULL_REQUEST": "false"}, False),
        ({"TRAVIS_PULL_REQUEST": "12"}, True),
        ({"CI_MERGE_REQUEST_ID": "3"}, True),
    ],
)
def test_is_pr(env: dict[str, str], pr: bool) -> None:
    assert is_pr(env) is pr
