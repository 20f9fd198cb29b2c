"""Issue 12, item 5: the rough edges a newcomer hits in the first hour, through the CLI."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys

from tests.e2e.conftest import Project
from tests.helpers import wait_until

TWO_STEPS = """
[config]
skip_core_tasks = true

[tasks.slow]
script = "echo slow-started > started; exec sleep 30"

[tasks.after]
command = "echo"
args = ["after ran"]

[tasks.all]
dependencies = ["slow", "after"]
"""


def _interrupt_when_started(project: Project, *args: str) -> tuple[int, str, str]:
    proc = project.popen(*args)
    try:
        wait_until(lambda: (project.root / "started").exists(), timeout=20)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_names_what_stopped_and_what_did_not_run(project: Project) -> None:
    project.makefile(TWO_STEPS)
    status, out, err = _interrupt_when_started(project, "all")
    assert status == 130, err
    assert "after ran" not in out
    assert "interrupted; stopped: slow; not run: after, all" in err
    assert "interrupted by signal 2" in err


def test_ctrl_c_in_a_parallel_run_names_the_stopped_steps(project: Project) -> None:
    project.makefile(
        TWO_STEPS.replace('dependencies = ["slow", "after"]', 'dependencies = ["slow"]')
    )
    status, _, err = _interrupt_when_started(project, "-j", "2", "all")
    assert status == 130, err
    assert "interrupted; stopped: slow; not run: all" in err


# --------------------------------------------------------------------------- --no-color


def _stderr_on_a_terminal(project: Project, *args: str) -> str:
    """Run pitstop with stderr on a pseudo-terminal (colour is for terminals only)."""
    main, side = pty.openpty()
    env = project.env()
    env.pop("NO_COLOR", None)
    env.pop("CARGO_MAKE_DISABLE_COLOR", None)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitstop", *args],
            cwd=project.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=side,
        )
        os.close(side)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=20)
    finally:
        os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_no_color_turns_colour_off(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.hello]
        command = "echo"
        args = ["hi"]
        """
    )
    assert "\x1b[" in _stderr_on_a_terminal(project, "hello")
    plain = _stderr_on_a_terminal(project, "--no-color", "hello")
    assert "Running Task: hello" in plain
    assert "\x1b[" not in plain
    failed = _stderr_on_a_terminal(project, "--no-color", "missing")
    assert "error:" in failed
    assert "\x1b[" not in failed


def test_no_color_reaches_the_tasks_as_no_color(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.show]
        script = 'echo "NO_COLOR=${NO_COLOR:-unset}"'
        """
    )
    env_free = project.env()
    env_free.pop("NO_COLOR")
    result = subprocess.run(
        [sys.executable, "-m", "pitstop", "--no-color", "show"],
        cwd=project.root,
        env=env_free,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "NO_COLOR=1" in result.stdout
