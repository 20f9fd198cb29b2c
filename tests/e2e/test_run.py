"""The task runner end to end: real pitstop processes, real children, the real process table."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.conftest import Project
from tests.helpers import pid_alive, wait_until

# A task body that records its start and end in a shared log (small appends are atomic).
MARK = """script = '''
echo "start {name}" >> "$LOG"
echo "end {name}" >> "$LOG"
'''"""


def _graph(project: Project, edges: dict[str, list[str]]) -> None:
    parts = ["[config]\nskip_core_tasks = true\n"]
    for name, deps in edges.items():
        dep_list = ", ".join(f'"{d}"' for d in deps)
        parts.append(f"[tasks.{name}]\ndependencies = [{dep_list}]\n{MARK.format(name=name)}\n")
    project.makefile("\n".join(parts))


def _marks(log: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def test_diamond_runs_shared_dependency_once(project: Project) -> None:
    _graph(project, {"A": ["B", "C"], "B": ["D"], "C": ["D"], "D": []})
    log = project.root / "log"
    result = project.run("A", LOG=str(log))
    assert result.returncode == 0, result.stderr
    starts = [name for kind, name in _marks(log) if kind == "start"]
    assert starts == ["D", "B", "C", "A"]


def test_parallel_run_never_starts_a_task_before_its_dependencies_end(project: Project) -> None:
    edges = {
        "top": ["l1a", "l1b", "l1c"],
        "l1a": ["l2a", "l2b"],
        "l1b": ["l2b", "l2c"],
        "l1c": ["l2c"],
        "l2a": ["base"],
        "l2b": ["base"],
        "l2c": ["base"],
        "base": [],
    }
    _graph(project, edges)
    log = project.root / "log"
    result = project.run("-j", "3", "top", LOG=str(log))
    assert result.returncode == 0, result.stderr
    marks = _marks(log)
    position = {(kind, name): i for i, (kind, name) in enumerate(marks)}
    assert sorted(name for kind, name in marks if kind == "start") == sorted(edges)
    for name, deps in edges.items():
        for dep in deps:
            assert position[("end", dep)] < position[("start", name)], (name, dep, marks)


def test_parallel_run_really_overlaps_independent_tasks(project: Project) -> None:
    # Each of the two waits until the other has started: only a parallel run can finish.
    project.makefile(
        """
        [tasks.both]
        dependencies = ["left", "right"]

        [tasks.left]
        script = '''
        touch left.started
        for i in $(seq 1 500); do [ -e right.started ] && exit 0; sleep 0.02; done
        exit 9
        '''

        [tasks.right]
        script = '''
        touch right.started
        for i in $(seq 1 500); do [ -e left.started ] && exit 0; sleep 0.02; done
        exit 9
        '''
        """
    )
    result = project.run("-j", "2", "both")
    assert result.returncode == 0, result.stderr


def test_parallel_output_is_prefixed_with_the_task_name(project: Project) -> None:
    project.makefile(
        """
        [tasks.all]
        dependencies = ["one", "two"]
        [tasks.one]
        script = "echo from-one"
        [tasks.two]
        script = "echo from-two"
        """
    )
    result = project.run("-j", "2", "all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("one") and line.endswith("| from-one") for line in lines), lines
    assert any(line.startswith("two") and line.endswith("| from-two") for line in lines), lines


def test_parallel_prefixes_line_up_with_a_run_task_sub_flow(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true
        [tasks.prep]
        script = "echo from-prep"
        [tasks.a-long-sub-task]
        script = "echo from-sub"
        [tasks.all]
        dependencies = ["prep"]
        run_task = { name = ["a-long-sub-task"] }
        """
    )
    result = project.run("-j", "2", "all")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "| from-" in line]
    assert lines == ["prep            | from-prep", "a-long-sub-task | from-sub"], lines


def test_grouped_output_prints_each_task_as_one_block(project: Project) -> None:
    project.makefile(
        """
        [tasks.all]
        dependencies = ["one", "two", "after-two"]
        [tasks.one]
        script = '''
        echo one-a
        while [ ! -e two.done ]; do sleep 0.01; done
        echo one-b
        '''
        [tasks.two]
        script = '''
        echo two-a
        echo two-b
        '''
        # Starts only once two has finished, so one ends strictly after two.
        [tasks.after-two]
        dependencies = ["two"]
        script = "touch two.done"
        """
    )
    result = project.run("-j", "2", "--output", "group", "all")
    assert result.returncode == 0, result.stderr
    bodies = [line.split("| ", 1)[1] for line in result.stdout.splitlines() if "| " in line]
    assert bodies == ["two-a", "two-b", "one-a", "one-b"]


def test_failure_stops_the_run_kills_running_tasks_and_names_what_did_not_run(
    project: Project,
) -> None:
    project.makefile(
        """
        [tasks.root]
        dependencies = ["slow", "bad"]
        script = "echo root ran"

        [tasks.slow]
        script = '''
        sleep 300 &
        echo $! > slow.pid
        wait
        '''

        [tasks.bad]
        script = '''
        while [ ! -s slow.pid ]; do sleep 0.01; done
        exit 3
        '''
        """
    )
    result = project.run("-j", "2", "--stop-timeout", "2s", "root")
    assert result.returncode == 3, result.stderr
    assert 'task "bad" failed with exit code 3' in result.stderr
    assert 'stopped: "slow"' in result.stderr
    assert 'not run: "root", "end"' in result.stderr
    assert "root ran" not in result.stdout
    sleeper = int((project.root / "slow.pid").read_text())
    wait_until(lambda: not pid_alive(sleeper), timeout=5, message="the slow task's child survived")


def test_sequential_failure_exit_code_is_the_commands(project: Project) -> None:
    project.makefile(
        """
        [tasks.flow]
        dependencies = ["fails", "after"]
        [tasks.fails]
        command = "sh"
        args = ["-c", "exit 42"]
        [tasks.after]
        script = "echo after"
        """
    )
    result = project.run("flow")
    assert result.returncode == 42
    assert "after" not in result.stdout
    assert 'not run: "after", "flow", "end"' in result.stderr


def test_sigint_ends_a_child_that_ignores_it(project: Project) -> None:
    project.write(
        "stubborn.py",
        """
        import os, signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open("child.pid", "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(1)
        """,
    )
    project.makefile(
        """
        [tasks.hang]
        command = "python3"
        args = ["stubborn.py"]
        """
    )
    proc = project.popen("--stop-timeout", "1s", "hang")
    pid_file = project.root / "child.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=20)
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    wait_until(lambda: not pid_alive(child), timeout=5, message="the child outlived pitstop")


def test_sigterm_ends_every_running_task(project: Project) -> None:
    project.makefile(
        """
        [tasks.both]
        dependencies = ["a", "b"]
        [tasks.a]
        script = '''
        sleep 300 &
        echo $! > a.pid
        wait
        '''
        [tasks.b]
        script = '''
        sleep 300 &
        echo $! > b.pid
        wait
        '''
        """
    )
    proc = project.popen("-j", "2", "both")
    pids = [project.root / "a.pid", project.root / "b.pid"]
    wait_until(lambda: all(p.exists() and p.read_text().strip() for p in pids), timeout=20)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    for path in pids:
        pid = int(path.read_text())
        wait_until(lambda pid=pid: not pid_alive(pid), timeout=5)


def test_sigkill_of_pitstop_still_ends_its_children(project: Project) -> None:
    project.makefile(
        """
        [tasks.hang]
        script = '''
        sleep 300 &
        echo $! > sleeper.pid
        wait
        '''
        """
    )
    proc = project.popen("hang")
    pid_file = project.root / "sleeper.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=20)
    sleeper = int(pid_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    wait_until(lambda: not pid_alive(sleeper), timeout=10, message="orphan left after SIGKILL")


def test_sigkill_of_pitstop_ends_even_a_child_that_left_its_group(project: Project) -> None:
    project.makefile(
        """
        [tasks.hang]
        script = '''
        setsid sleep 300 &
        echo $! > escaped.pid
        wait
        '''
        """
    )
    proc = project.popen("hang")
    pid_file = project.root / "escaped.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=20)
    escaped = int(pid_file.read_text())
    wait_until(lambda: os.getsid(escaped) == escaped, timeout=5)  # really in a session of its own
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=20)
    wait_until(lambda: not pid_alive(escaped), timeout=10, message="escaped child survived")


def test_task_arguments_reach_command_and_script(project: Project) -> None:
    project.makefile(
        """
        [tasks.cmd]
        command = "echo"
        args = ["got", "${@}"]
        [tasks.scr]
        script = 'echo "script got $1 $2"'
        """
    )
    assert project.run("cmd", "x", "y").stdout.strip() == "got x y"
    assert project.run("scr", "p", "q").stdout.strip() == "script got p q"


def test_skip_tasks_and_env_flag(project: Project) -> None:
    project.makefile(
        """
        [tasks.root]
        dependencies = ["lint"]
        command = "echo"
        args = ["root ${WHO}"]
        [tasks.lint]
        script = "echo linting"
        """
    )
    result = project.run("--skip-tasks", "^lint$", "-e", "WHO=me", "root")
    assert result.stdout.split() == ["root", "me"]


def test_time_summary_lists_each_task(project: Project) -> None:
    project.makefile(
        """
        [tasks.root]
        dependencies = ["a"]
        script = "true"
        [tasks.a]
        script = "true"
        """
    )
    result = project.run("--time-summary", "root")
    assert "Time Summary" in result.stderr
    assert any(line.split("INFO - ")[-1].startswith("a ") for line in result.stderr.splitlines())


def test_task_cwd_updates_cargo_make_working_directory_for_that_task(project: Project) -> None:
    (project.root / "sub").mkdir()
    project.write("sub/marker", "")
    project.makefile(
        """
        [config]
        skip_core_tasks = true
        [tasks.a]
        cwd = "sub"
        condition = { files_exist = ["${CARGO_MAKE_WORKING_DIRECTORY}/marker"] }
        script = 'echo "a $(basename "$CARGO_MAKE_WORKING_DIRECTORY") $(basename "$PWD")"'
        [tasks.b]
        dependencies = ["a"]
        script = 'echo "b $(basename "$CARGO_MAKE_WORKING_DIRECTORY") $(basename "$PWD")"'
        """
    )
    result = project.run("b")
    assert result.returncode == 0, result.stderr
    top = project.root.name
    assert result.stdout.splitlines() == ["a sub sub", f"b {top} {top}"]


def test_a_reader_that_goes_away_leaves_the_run_going_without_a_traceback(
    project: Project,
) -> None:
    # `pitstop ci | head -1`: after the first line nobody reads stdout.
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.first]
        script = "echo first"

        [tasks.second]
        dependencies = ["first"]
        script = '''
        i=0
        while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
        for n in 1 2 3 4 5; do echo "more $n"; done
        '''

        [tasks.ci]
        dependencies = ["second"]
        script = "echo done > marker"
        """
    )
    proc = project.popen("-j", "2", "ci")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip().endswith("first")
    proc.stdout.close()
    (project.root / "go").touch()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert (project.root / "marker").read_text() == "done\n"
