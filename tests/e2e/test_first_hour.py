"""Issue 12, item 5: the rough edges a newcomer hits in the first hour, through the CLI."""

from __future__ import annotations

import argparse
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pitstop.cli import CONTROL_VERBS, build_parser, up_parser, verb_parser
from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, try_get, wait_until

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
    assert 'interrupted; stopped: "slow"; not run: "after", "all"' in err
    assert "interrupted by signal 2" in err


def test_ctrl_c_in_a_parallel_run_names_the_stopped_steps(project: Project) -> None:
    project.makefile(
        TWO_STEPS.replace('dependencies = ["slow", "after"]', 'dependencies = ["slow"]')
    )
    status, _, err = _interrupt_when_started(project, "-j", "2", "all")
    assert status == 130, err
    assert 'interrupted; stopped: "slow"; not run: "all"' in err


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


# --------------------------------------------------------------------------- watch mode

FAILING = """
[config]
skip_core_tasks = true

[tasks.check]
script = '''
echo run >> "$LOG"
exit 3
'''
"""


def _lines_of(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _edit_until_rerun(edit: Callable[[], None], log: Path, before: int) -> None:
    """Edit until a rerun is seen: the first edit may land before the watch is set up."""

    def rerun_seen() -> bool:
        if _lines_of(log) > before:
            return True
        edit()
        return False

    wait_until(rerun_seen, timeout=20, interval=0.3)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=20)


def test_watch_status_line_has_a_time_and_names_the_failed_task(project: Project) -> None:
    project.makefile(FAILING)
    log = project.root / "runs.log"
    proc = project.popen("--watch", "check", LOG=str(log))
    try:
        wait_until(lambda: _lines_of(log) >= 1, timeout=20)
        _out, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert re.search(
        r"ERROR - \d\d:\d\d:\d\d failed in \d+\.\d\ds: task \"check\" failed with exit code 3"
        r" · waiting for changes",
        err,
    ), err


def test_watch_shows_the_keys_once_and_q_quits(project: Project) -> None:
    project.makefile(FAILING.replace("exit 3", "exit 0"))
    log = project.root / "runs.log"
    main, side = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitstop", "--watch", "check"],
            cwd=project.root,
            env=project.env(LOG=str(log)),
            stdin=side,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(side)
        wait_until(lambda: _lines_of(log) >= 1, timeout=20)
        os.write(main, b"r")
        wait_until(lambda: _lines_of(log) >= 2, timeout=20)
        os.write(main, b"q")
        _out, err = proc.communicate(timeout=20)
    finally:
        os.close(main)
    assert proc.returncode == 0, err
    assert err.count("keys: Enter or r reruns now, q quits") == 1, err
    assert re.search(r"INFO - \d\d:\d\d:\d\d ok in", err), err


def test_sed_and_editor_temp_files_are_not_named_as_changed(project: Project) -> None:
    project.makefile(FAILING.replace("exit 3", "exit 0"))
    log = project.root / "runs.log"
    source = project.write("src/app.txt", "one\n")
    proc = project.popen("--watch", "--why", "--watch-path", "src", "check", LOG=str(log))
    try:
        wait_until(lambda: _lines_of(log) >= 1, timeout=20)
        editor_files = ["src/.app.txt.swp", "src/app.txt~", "src/4913", "src/.#app.txt"]

        def edit() -> None:
            for name in editor_files:
                (project.root / name).write_text("x")
            subprocess.run(["sed", "-i", "s/one/two/", str(source)], check=True)

        _edit_until_rerun(edit, log, 1)
        _out, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    changed = [line for line in err.splitlines() if line.endswith("changed")]
    assert changed, err
    for line in changed:
        assert "app.txt changed" in line, line
        assert "sed" not in line and ".swp" not in line and "~" not in line, line
        assert "4913" not in line and ".#" not in line, line


# --------------------------------------------------------------------------- --watch -- COMMAND


def test_watch_an_ad_hoc_command_without_a_task_file(project: Project) -> None:
    log = project.root / "runs.log"
    project.write(".gitignore", "build/\nruns.log\n")
    project.write("src/main.c", "int main;\n")
    (project.root / "build").mkdir()
    script = 'echo "run $1 ${PITSTOP_CHANGED_PATHS:-none}" >> runs.log'
    proc = project.popen("--watch", "--", "sh", "-c", script, "sh", "arg one")
    try:
        wait_until(lambda: _lines_of(log) >= 1, timeout=20)
        # Ignored by .gitignore: never a run.
        (project.root / "build" / "out.o").write_text("x")

        def edit() -> None:
            (project.root / "src" / "main.c").write_text("int main(void);\n")

        _edit_until_rerun(edit, log, 1)
        _out, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    runs = log.read_text().splitlines()
    assert runs[0] == "run arg one none"
    assert all(line.startswith("run arg one ") for line in runs), runs
    assert all("out.o" not in line for line in runs), runs
    assert "main.c" in runs[1]
    assert "Running Task: sh" in err
    assert "no task file" not in err


def test_watch_dash_dash_without_a_command_is_a_usage_error(project: Project) -> None:
    result = project.run("--watch", "--")
    assert result.returncode == 2
    assert "no command after `--`" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- service messages

APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"

SERVICE = """
[tasks.serve]
{build}command = "{python}"
args = ["{app}", "version.txt"]
watch = {{ watch = ["source.txt"] }}
service = {{ listen = "127.0.0.1:{port}", ready = {{ notify = true }}, ready_timeout = "20s" }}
"""

BUILD = """
[tasks.build]
script = "cp source.txt version.txt"

[tasks.serve]
dependencies = ["build"]
"""


def _service_file(project: Project, port: int, *, build: bool) -> None:
    text = SERVICE.format(build="", python=sys.executable, app=APP, port=port)
    if build:
        text = BUILD + text.replace("[tasks.serve]\n", "", 1)
    project.write("pitstop.toml", text)


def test_a_service_without_build_does_not_say_building(project: Project) -> None:
    port = free_port()
    project.write("version.txt", "v1\n")
    _service_file(project, port, build=False)
    proc = project.popen("serve")
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    text = "".join(stderr)
    assert proc.returncode == 0, text
    assert "serving #1" in text
    assert "building" not in text


def test_a_first_start_that_fails_says_failed_to_start(project: Project) -> None:
    port = free_port()
    project.write("version.txt", "v1 --exit-now\n")
    _service_file(project, port, build=False)
    result = project.run("serve", timeout=60)
    assert result.returncode != 0
    assert "instance #1 failed to start: " in result.stderr, result.stderr
    assert "rolled back" not in result.stderr


def test_the_swap_line_says_how_long_the_swap_took(project: Project) -> None:
    port = free_port()
    project.write("source.txt", "v1\n")
    _service_file(project, port, build=True)
    proc = project.popen("--watch", "serve")
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=30)

        def swapped() -> bool:
            if try_get(port) == "v2":
                return True
            (project.root / "source.txt").write_text("v2\n")
            return False

        wait_until(swapped, timeout=30, interval=0.3)
        wait_until(lambda: any("swap #" in line for line in stderr), timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    text = "".join(stderr)
    # The swap's duration is said once, on its own line, not again in the status line.
    assert re.search(r"swap #\d+ → #\d+ in \d+ ms · listeners: 0 dropped, 0 reset", text), text
    assert "swapped in" not in text and text.count(" ms") == text.count("swap #"), text
    assert "nothing serving · building #1" in text  # this service has a build


# --------------------------------------------------------------------------- shell completion


def _visible_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for name in action.option_strings
    }


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_offers_every_flag_and_subcommand(project: Project, shell: str) -> None:
    script = project.run("--completions", shell).stdout
    flags = _visible_flags(build_parser())
    assert {"--list-category-steps", "--hide-uninteresting", "--loglevel", "--silent"} <= flags
    for verb in ("up", *CONTROL_VERBS):
        flags |= _visible_flags(up_parser() if verb == "up" else verb_parser(verb))
        assert re.search(rf"\b{verb}\b", script), verb
    for flag in flags:
        if shell == "fish":
            spelled = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
        else:
            spelled = flag
        assert re.search(rf"(^|[\s|\"']){re.escape(spelled)}([\s|\"')]|$)", script), flag
    assert script.count("pitstop --task-names") >= 2  # task names: as TASK, and for -t
    assert "pitstop --service-names" in script  # service names: for up, logs, restart...


def _bash_complete(project: Project, *words: str) -> list[str]:
    """What the bash script offers for `pitstop WORDS...` (the last word is being typed)."""
    script = project.run("--completions", "bash").stdout
    line = "pitstop " + " ".join(words)
    program = (
        f"{script}\n"
        f"COMP_WORDS=(pitstop {' '.join(repr(w) for w in words)}); "
        f"COMP_CWORD={len(words)}; COMP_LINE={line!r}; _pitstop; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = project.env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", "-c", program],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_bash_completes_tasks_subcommands_flags_and_values(project: Project) -> None:
    project.makefile(
        """
        [tasks.build]
        command = "true"

        [tasks.bench]
        command = "true"
        """
    )
    assert {"build", "bench"} <= set(_bash_complete(project, "b"))
    assert "up" in _bash_complete(project, "u")
    assert "--hide-uninteresting" in _bash_complete(project, "--hid")
    assert _bash_complete(project, "--on-busy", "r") == ["restart"]
    assert "build" in _bash_complete(project, "-t", "")
    assert "--no-watch" in _bash_complete(project, "up", "--no-")
    assert _bash_complete(project, "logs", "--fol") == ["--follow"]


def test_bash_completes_service_names_after_up_and_the_verbs(project: Project) -> None:
    project.makefile(
        """
        [tasks.build]
        command = "true"

        [tasks.backend]
        dependencies = ["build"]
        command = "true"
        service = { listen = "127.0.0.1:8080" }

        [tasks.bench]
        command = "true"
        """
    )
    assert project.run("--service-names").stdout == "backend\n"
    for verb in ("up", "logs", "restart", "stop", "start", "rollback"):
        assert _bash_complete(project, verb, "b") == ["backend"], verb
    # As a task, every task is offered still.
    assert {"backend", "bench", "build"} <= set(_bash_complete(project, "b"))


# --------------------------------------------------------------------------- consistent messages


def test_messages_quote_task_names_and_count_steps_right(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.shaky]
        script = "exit 4"
        ignore_errors = true

        [tasks.bad]
        script = "exit 3"

        [tasks.after]
        command = "true"

        [tasks.all]
        dependencies = ["shaky", "bad", "after"]

        [tasks.lonely]
        env = { X = "1" }
        """
    )
    failed = project.run("all")
    assert failed.returncode == 3
    assert 'task "shaky" failed with exit code 4 (errors ignored)' in failed.stderr
    assert 'task "bad" failed with exit code 3; not run: "after", "all", "end"' in failed.stderr
    assert "task 'bad'" not in failed.stderr
    one = project.run("--skip-init-end-tasks", "--print-steps", "lonely")
    assert 'Plan for "lonely" (1 step):' in one.stdout
    nothing = project.run("--skip-init-end-tasks", "lonely")
    assert 'the plan for "lonely" (1 step) has no command' in nothing.stderr
    assert "1 steps" not in one.stdout + nothing.stderr
