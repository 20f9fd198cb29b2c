"""cargo-make's behaviour cases, run through the real `pitstop` CLI.

Each case folder holds a Makefile.toml, the expected output and a case.md naming the command
line (`makers ...`, run here as `pitstop ...`) and the mode (plan, stdout, stdout-unordered,
error). The copies in cargo_make_cases/ come from shared/cargo-make/cases; when that folder
is beside the repository its cases run too, so new ones are picked up without a copy.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
LOCAL_CASES = HERE / "cargo_make_cases"
SHARED_CASES = HERE.parents[2] / "shared" / "cargo-make" / "cases"


def _case_dirs() -> list[Path]:
    cases = {d.name: d for d in sorted(LOCAL_CASES.iterdir()) if (d / "case.md").exists()}
    if SHARED_CASES.is_dir():
        for d in sorted(SHARED_CASES.iterdir()):
            if (d / "case.md").exists():
                cases[d.name] = d
    return [cases[name] for name in sorted(cases)]


def _parse_case(case: Path) -> tuple[list[str], str, dict[str, str]]:
    text = (case / "case.md").read_text()
    run = re.search(r"\*\*Run:\*\*\s*`([^`]+)`", text)
    mode = re.search(r"\*\*Mode:\*\*\s*([a-z-]+)", text)
    assert run and mode, f"{case}: case.md has no Run/Mode line"
    argv = shlex.split(run.group(1))
    env: dict[str, str] = {}
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        key, _, value = argv.pop(0).partition("=")
        env[key] = value
    assert argv[0] == "makers", argv
    return argv[1:], mode.group(1), env


def _run(
    case: Path, args: list[str], extra_env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CM_CASE_")}
    env.pop("CI", None)
    env.update(extra_env)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pitstop", *args],
        cwd=case,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", _case_dirs(), ids=lambda d: d.name)
def test_case(case: Path) -> None:
    args, mode, extra_env = _parse_case(case)
    expected = (case / "expected.txt").read_text()
    if mode == "plan":
        args = ["--print-steps", "--output-format", "short-description", *args]
    result = _run(case, args, extra_env)
    assert "Traceback" not in result.stderr, result.stderr
    if mode == "error":
        assert result.returncode != 0, result.stdout + result.stderr
        assert expected.strip() in result.stderr + result.stdout, result.stderr
        return
    stdout_lines = [line for line in result.stdout.splitlines() if line.strip()]
    expected_lines = [line for line in expected.splitlines() if line.strip()]
    if mode == "plan":
        names = [re.sub(r"^\d+\. (.*?) - .*$", r"\1", line) for line in stdout_lines]
        assert result.returncode == 0, result.stderr
        assert names == expected_lines, result.stderr
    elif mode == "stdout-unordered":
        assert sorted(stdout_lines) == sorted(expected_lines), result.stderr
    else:
        assert stdout_lines == expected_lines, result.stderr
    case_text = (case / "case.md").read_text()
    if "exit status non-zero" in case_text:
        assert result.returncode != 0
    elif mode != "error":
        assert result.returncode == 0, result.stderr
