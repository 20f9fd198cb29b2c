"""`pitstop up` through the real command line: bad input is one message naming file, line and
column, exit 2, no traceback; in the foreground, SIGTERM or Ctrl-C stops every service and
leaves no process and no bound port behind."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, pid_alive, port_open, wait_until

APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"


def _service(name: str, port: int, deps: str = "") -> str:
    return f"""
[tasks.{name}]
dependencies = [{deps}]
command = "{sys.executable}"
args = ["{APP}", "version.txt"]
service = {{ listen = "127.0.0.1:{port}", ready = {{ notify = true }} }}
"""


def _user_error(project: Project, *args: str) -> str:
    result = project.run("up", *args, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_an_unknown_service_is_named_with_suggestions(project: Project) -> None:
    project.write("pitstop.toml", _service("api", 9001) + _service("web", 9002, '"api"'))
    stderr = _user_error(project, "apj")
    assert "error: no service named 'apj'" in stderr
    assert "did you mean 'api'?" in stderr
    assert "--> pitstop.toml" in stderr


def test_a_plain_task_named_as_a_service_points_at_it(project: Project) -> None:
    project.write("pitstop.toml", _service("api", 9001) + '\n[tasks.lint]\ncommand = "true"\n')
    stderr = _user_error(project, "lint")
    assert 'task "lint" is not a service' in stderr
    assert re.search(r"--> pitstop\.toml:8:1", stderr), stderr


def test_a_cycle_between_services_shows_the_circle_and_its_line(project: Project) -> None:
    project.write("pitstop.toml", _service("a", 9001, '"b"') + _service("b", 9002, '"a"'))
    stderr = _user_error(project)
    assert "dependency cycle a -> b -> a" in stderr
    assert re.search(r"--> pitstop\.toml:9:\d+", stderr), stderr


def test_two_services_on_one_address_name_both_lines(project: Project) -> None:
    project.write("pitstop.toml", _service("a", 9001) + _service("b", 9001))
    stderr = _user_error(project)
    assert "services a and b both listen on 127.0.0.1:9001" in stderr
    assert re.search(r"--> pitstop\.toml:12:\d+", stderr), stderr
    assert re.search(r"pitstop\.toml:6:\d+", stderr), stderr


def test_a_file_without_services_says_so(project: Project) -> None:
    project.write("pitstop.toml", '[tasks.lint]\ncommand = "true"\n')
    assert "no service task in pitstop.toml" in _user_error(project)


def test_a_folder_without_a_task_file_says_so(project: Project) -> None:
    stderr = _user_error(project)
    assert "no task file: looked for pitstop.toml and Makefile.toml" in stderr
    assert "Makefile.toml" not in stderr.split("looked for")[0]


def test_a_missing_watch_path_points_at_the_watch_key(project: Project) -> None:
    text = _service("api", free_port()).replace(
        "service =", 'watch = { watch = ["nowhere"] }\nservice ='
    )
    project.write("pitstop.toml", text)
    project.write("version.txt", "v1\n")
    stderr = _user_error(project)
    assert "service api watches" in stderr and "nowhere, which does not exist" in stderr
    assert re.search(r"--> pitstop\.toml:6:\d+", stderr), stderr


@pytest.mark.parametrize("flag", ["--bogus", "-j"])
def test_a_bad_flag_is_a_usage_error(project: Project, flag: str) -> None:
    project.write("pitstop.toml", _service("api", 9001))
    assert "error: pitstop up: " in _user_error(project, flag)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_service_and_frees_every_port(
    project: Project, signum: signal.Signals
) -> None:
    ports = {"db": free_port(), "api": free_port()}
    project.write("version.txt", "v1\n")
    project.write(
        "pitstop.toml", _service("db", ports["db"]) + _service("api", ports["api"], '"db"')
    )
    child = project.popen("up", "--no-watch")
    assert child.stderr is not None
    lines = collect_lines(child.stderr)
    try:
        wait_until(lambda: all(port_open("127.0.0.1", p) for p in ports.values()), 30)
        wait_until(lambda: sum("serving #1 (pid" in line for line in lines) == 2, 30)
        pids = [int(m.group(1)) for line in lines if (m := re.search(r"\(pid (\d+)\)", line))]
        assert [line for line in lines if line.startswith("api ") and "serving" in line]
        child.send_signal(signum)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert len(pids) == 2 and not any(pid_alive(p) for p in pids)
    assert not any(port_open("127.0.0.1", p) for p in ports.values())
    # Reverse dependency order: api stops before db.
    stopped = [line.split()[0] for line in lines if line.rstrip().endswith("| stopped")]
    assert stopped == ["api", "db"], lines


def test_up_runs_a_task_named_up_in_a_file_without_services(project: Project) -> None:
    """cargo-make compatibility: `makers up` runs the file's `up` task; so does `pitstop up`
    when the file has no service for the process manager to start."""
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.up]
        command = "echo"
        args = ["compose up", "${@}"]
        """
    )
    result = project.run("up", "web")
    assert result.returncode == 0, result.stderr
    assert "compose up web" in result.stdout


@pytest.mark.parametrize("verb", ["start", "stop", "logs", "down", "ps", "restart", "events"])
def test_a_verb_runs_the_task_of_its_name_in_a_file_without_services(
    project: Project, verb: str
) -> None:
    """cargo-make compatibility: many Makefile.toml files have `start`, `stop` or `logs`
    tasks (docker compose wrappers); with no service to manage, the name means the task,
    its arguments included, even ones the verb would not accept."""
    project.makefile(
        f"""
        [config]
        skip_core_tasks = true

        [tasks.{verb}]
        command = "echo"
        args = ["task {verb}", "${{@}}"]
        """
    )
    result = project.run(verb, "--release")
    assert result.returncode == 0, result.stderr
    assert f"task {verb} --release" in result.stdout


def test_a_broken_save_of_the_task_file_is_reported_and_swaps_nothing(project: Project) -> None:
    # The service watches the whole folder (no watch key), the task file included.
    project.write("version.txt", "v1\n")
    good = _service("web", free_port())
    project.write("pitstop.toml", good)
    child = project.popen("up")
    assert child.stderr is not None
    lines = collect_lines(child.stderr)
    try:
        wait_until(lambda: any("serving #1 (pid" in line for line in lines), 30)

        def error_shown() -> bool:
            if any("invalid TOML in pitstop.toml" in line for line in lines):
                return True
            project.write("pitstop.toml", good + "x = [\n")
            return False

        wait_until(error_shown, 30, interval=0.3)

        def swapped() -> bool:
            if any("serving #2 (pid" in line for line in lines):
                return True
            project.write("version.txt", "v2\n")
            return False

        # A real change still rebuilds: the watch goes on after the broken save.
        wait_until(swapped, 30, interval=0.3)
        assert not any("pitstop.toml changed" in line for line in lines), lines
        assert any("version.txt changed: rebuilding web" in line for line in lines), lines
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_up_with_watch_says_that_up_watches_already(project: Project) -> None:
    project.makefile(
        """
        [tasks.web]
        command = "true"
        service = { proxy = "127.0.0.1:0" }
        """
    )
    result = project.run("up", "--watch")
    assert result.returncode == 2
    assert "watches every service's files already" in result.stderr
    assert "Traceback" not in result.stderr
