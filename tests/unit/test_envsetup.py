"""Env setup off the event loop gives the results the synchronous version gave.

Real children and real files: `process.capture` against `subprocess.run`, which the env
value scripts and `git check-ignore` used before; `initial_env` with real `.git` files, env
files and env scripts; globs and file conditions, now listed in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from pitstop.engine import process
from pitstop.errors import Location, UserError
from pitstop.steps.conditions import check_criteria, check_criteria_off_loop, reads_files
from pitstop.steps.envglob import glob_paths
from pitstop.steps.envsetup import initial_env
from pitstop.steps.gitinfo import git_env
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Condition, EnvGlob, FilesModified
from tests.helpers import async_wait_until, pid_alive, wait_until

SCRIPTS = [
    "echo one; echo two",
    "printf 'no newline at the end'",
    "printf 'crlf\\r\\nlines\\r\\n\\n'",
    "printf 'lone\\rreturn'",
    "echo out; echo err >&2; exit 3",
    "printf '\\303\\251t\\303\\251 \\377 bad byte'",
    "kill -TERM $$",
    "head -c 200000 /dev/zero | tr '\\0' x",  # more than a pipe holds
    "",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_capture_gives_what_subprocess_run_gave(script: str, tmp_path: Path) -> None:
    argv = ["sh", "-c", script]
    before = subprocess.run(
        argv,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        check=False,
    )
    after = asyncio.run(process.capture(argv, cwd=tmp_path))
    assert after.stdout == before.stdout
    assert after.stderr == before.stderr
    assert after.status == process.exit_status(before.returncode)


def test_capture_feeds_stdin_as_subprocess_run_input_did(tmp_path: Path) -> None:
    given = "a\0b c\0ü\0"
    argv = ["sh", "-c", "tr '\\0' '\\n'; echo done"]
    before = subprocess.run(argv, input=given, capture_output=True, text=True, check=False)
    after = asyncio.run(process.capture(argv, stdin=given.encode()))
    assert (after.status, after.stdout) == (before.returncode, before.stdout)


def test_capture_cancelled_ends_the_child_and_what_it_started(tmp_path: Path) -> None:
    script = "echo $$ > shell.pid; sleep 300 & echo $! > child.pid; wait"
    pid_files = [tmp_path / "shell.pid", tmp_path / "child.pid"]

    async def scenario() -> list[int]:
        job = asyncio.create_task(process.capture(["sh", "-c", script], cwd=tmp_path))
        await async_wait_until(
            lambda: all(p.is_file() and p.read_text().strip() for p in pid_files),
            message="the script started",
        )
        pids = [int(p.read_text()) for p in pid_files]
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        return pids

    pids = asyncio.run(scenario())
    assert pids
    for pid in pids:
        # Signalled already; a killed process may take a moment to be gone.
        wait_until(
            lambda pid=pid: not pid_alive(pid), timeout=5, message=f"pid {pid} outlived capture"
        )


def test_capture_of_a_missing_program_raises_like_subprocess_did(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        subprocess.run(["pitstop-no-such-program"], check=False)
    with pytest.raises(FileNotFoundError):
        asyncio.run(process.capture(["pitstop-no-such-program"], cwd=tmp_path))


# --------------------------------------------------------------------------- initial_env


def _project(tmp_path: Path, makefile: str) -> Path:
    root = tmp_path / "proj"
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/trunk\n")
    (git / "refs" / "heads" / "trunk").write_text("cafebabe0123456789\n")
    (git / "config").write_text("[user]\n\tname = Grace\n\temail = grace@x.org\n")
    (root / "Makefile.toml").write_text(textwrap.dedent(makefile))
    return root


def _initial_env(root: Path, **kwargs: object) -> dict[str, str]:
    taskfile = load_taskfile(str(root / "Makefile.toml"), root)
    settings: dict[str, object] = {
        "task": "default",
        "task_args": ["x"],
        "profile": "development",
        "cwd": root,
        "cli_env": [],
        "env_file": None,
        **kwargs,
    }
    return asyncio.run(initial_env(taskfile, **settings))  # type: ignore[arg-type]


def test_initial_env_has_git_files_env_and_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    root = _project(
        tmp_path,
        """
        env_files = ["./global.env"]
        env_scripts = ["test \\"$FROM_SCRIPT\\" = from-script || exit 9"]

        [env]
        FROM_ENV = "${FROM_GLOBAL_FILE}+${CARGO_MAKE_GIT_BRANCH}"
        FROM_SCRIPT = { script = ["echo from-script"] }
        FILES = { glob = "*.env" }
        """,
    )
    (root / "global.env").write_text("FROM_GLOBAL_FILE=global\n")
    (tmp_path / "cli.env").write_text("FROM_CLI_FILE=cli\n")
    env = _initial_env(root, env_file=str(tmp_path / "cli.env"), cli_env=["FROM_CLI=1"])
    expected_git = git_env(root, {"HOME": str(tmp_path / "home")})
    assert expected_git["CARGO_MAKE_GIT_BRANCH"] == "trunk"
    assert {k: env[k] for k in expected_git} == expected_git
    assert env["CARGO_MAKE_GIT_USER_NAME"] == "Grace"
    assert env["CARGO_MAKE_TASK"] == "default"
    assert env["CARGO_MAKE_TASK_ARGS"] == "x"
    assert env["FROM_CLI_FILE"] == "cli"
    assert env["FROM_CLI"] == "1"
    assert env["FROM_ENV"] == "global+trunk"
    assert env["FROM_SCRIPT"] == "from-script"
    assert env["FILES"] == "./global.env"
    assert os.environ.get("FROM_ENV") is None  # os.environ is never touched


def test_a_failing_env_script_is_a_user_error_at_the_task_file(tmp_path: Path) -> None:
    root = _project(tmp_path, 'env_scripts = ["exit 4"]\n')
    with pytest.raises(UserError, match="exit code 4") as info:
        _initial_env(root)
    assert info.value.location == Location(root / "Makefile.toml")


def test_an_env_script_killed_by_a_signal_reports_128_plus_n(tmp_path: Path) -> None:
    root = _project(tmp_path, 'env_scripts = ["kill -TERM $$"]\n')
    with pytest.raises(UserError, match=f"exit code {128 + signal.SIGTERM}"):
        _initial_env(root)


# --------------------------------------------------------------------------- threads


def test_glob_drops_what_git_ignores(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.log\nbuild/\n")
    for name in ("a.txt", "b.log", "build/c.txt", "src/d.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    every = asyncio.run(glob_paths(EnvGlob("**/*", include_dirs=False), tmp_path))
    kept = asyncio.run(glob_paths(EnvGlob("**/*", include_dirs=False, ignore_type="git"), tmp_path))
    assert "./b.log" in every and "./build/c.txt" in every
    # git does not report its own .git folder as ignored, so the glob keeps it, as before
    assert [p for p in kept if not p.startswith("./.git/")] == [
        "./.gitignore",
        "./a.txt",
        "./src/d.txt",
    ]


def test_file_conditions_off_the_loop_agree_with_the_checks_in_place(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x")
    os.utime(tmp_path / "in.txt", (1_000_000, 1_000_000))
    (tmp_path / "out.txt").write_text("x")
    where = Location(tmp_path / "Makefile.toml")
    conditions = [
        Condition(where, files_exist=("${DIR}/in.txt",)),
        Condition(where, files_not_exist=("in.txt",)),
        Condition(where, files_modified=FilesModified(("*.txt",), ("out.txt",))),
        Condition(where, files_modified=FilesModified(("in.txt",), ("out.txt",))),
        Condition(where, env_set=("DIR",)),
        None,
    ]
    env = {"DIR": str(tmp_path)}
    for cond in conditions:
        in_place = check_criteria(cond, env, profile="development", cwd=tmp_path)
        off_loop = asyncio.run(
            check_criteria_off_loop(cond, env, profile="development", cwd=tmp_path)
        )
        assert off_loop == in_place, cond
    assert [reads_files(c) for c in conditions] == [True, True, True, True, False, False]
