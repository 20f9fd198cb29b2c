"""`pitstop --watch` end to end: real files, real inotify events, the real CLI."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, pid_alive, wait_until

TASKFILE = """
[tasks.record]
script = '''
echo "run ${{PITSTOP_CHANGED_PATHS:-none}} {tag}" >> "$LOG"
'''
"""


@pytest.fixture
def watched(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    return Project(root)


def _start(project: Project, log: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pitstop", "--watch", *args, "record"],
        cwd=project.root,
        env=project.env(LOG=str(log)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return out, err


def _change_until_rerun(path: Path, log: Path, before: int) -> list[str]:
    """Write `path` until a rerun is seen: the first write may land before inotify is set up."""
    counter = 0

    def rerun_seen() -> bool:
        nonlocal counter
        if len(_runs(log)) > before:
            return True
        counter += 1
        path.write_text(f"change {counter}\n")
        return False

    wait_until(rerun_seen, timeout=20, interval=0.2)
    return _runs(log)


def test_a_change_reruns_the_task_with_the_changed_path(watched: Project, tmp_path: Path) -> None:
    watched.makefile(TASKFILE.format(tag="v1"))
    log = tmp_path / "runs.log"
    proc = _start(watched, log)
    try:
        wait_until(lambda: len(_runs(log)) == 1, timeout=20)
        assert _runs(log) == ["run none v1"]
        runs = _change_until_rerun(watched.root / "src" / "a.txt", log, 1)
        assert str(watched.root / "src" / "a.txt") in runs[1]
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "src/a.txt changed" in err


def test_ignored_paths_do_not_trigger(watched: Project, tmp_path: Path) -> None:
    watched.makefile(TASKFILE.format(tag="v1"))
    watched.write(".gitignore", "build/\n")
    (watched.root / "build").mkdir()
    log = tmp_path / "runs.log"
    proc = _start(watched, log)
    try:
        wait_until(lambda: len(_runs(log)) == 1, timeout=20)
        # Ignored writes first, then a sentinel: the rerun must name only the sentinel.
        (watched.root / "build" / "out.o").write_text("x")
        (watched.root / "src" / "x.swp").write_text("x")
        runs = _change_until_rerun(watched.root / "src" / "real.txt", log, 1)
        assert "build" not in runs[1]
        assert "x.swp" not in runs[1]
        assert "real.txt" in runs[1]
    finally:
        _stop(proc)


def test_broken_task_file_waits_then_fixed_file_runs(watched: Project, tmp_path: Path) -> None:
    watched.makefile(TASKFILE.format(tag="v1"))
    log = tmp_path / "runs.log"
    proc = _start(watched, log)
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        wait_until(lambda: len(_runs(log)) == 1, timeout=20)
        broken = "[tasks.record\n"  # broken TOML: reported, pitstop keeps waiting

        def error_shown() -> bool:
            if any(line.startswith("error:") for line in stderr):
                return True
            (watched.root / "Makefile.toml").write_text(broken)
            return False

        wait_until(error_shown, timeout=20, interval=0.3)
        assert any("Makefile.toml:1" in line for line in stderr), stderr
        # The status line blames the file, not the task.
        wait_until(lambda: any("Makefile.toml does not load" in line for line in stderr))
        assert not any("could not start" in line for line in stderr), stderr
        assert proc.poll() is None
        # Fix it with a new tag; keep rewriting until the new version has run.
        fixed = textwrap.dedent(TASKFILE.format(tag="v2"))

        def v2_ran() -> bool:
            if any(line.endswith(" v2") for line in _runs(log)):
                return True
            (watched.root / "Makefile.toml").write_text(fixed)
            return False

        wait_until(v2_ran, timeout=20, interval=0.3)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0


# Watches only a-file, with --exts txt: the task file is outside both.
NARROW_TASKFILE = """
[tasks.record]
script = '''
echo "run {tag}" >> "$LOG"
'''
watch = {{ watch = ["a-file"] }}
"""


def test_editing_the_task_file_reloads_it_when_the_watch_paths_leave_it_out(
    project: Project, tmp_path: Path
) -> None:
    project.write("a-file", "1\n")
    project.makefile(NARROW_TASKFILE.format(tag="v1"))
    log = tmp_path / "runs.log"
    proc = _start(project, log, "--exts", "txt")
    try:
        wait_until(lambda: _runs(log) == ["run v1"], timeout=20)
        counter = 0

        def reloaded() -> bool:
            nonlocal counter
            if any("v2" in run for run in _runs(log)):
                return True
            counter += 1  # the first write may land before inotify is set up
            project.makefile(NARROW_TASKFILE.format(tag=f"v2 {counter}"))
            return False

        wait_until(reloaded, timeout=20, interval=0.2)
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "reloaded Makefile.toml" in err


def test_a_key_misspelt_in_a_reloaded_task_file_is_warned_about(
    project: Project, tmp_path: Path
) -> None:
    project.makefile(NARROW_TASKFILE.format(tag="v1"))
    project.write("a-file", "1\n")
    log = tmp_path / "runs.log"
    proc = _start(project, log)
    try:
        wait_until(lambda: _runs(log) == ["run v1"], timeout=20)
        counter = 0

        def reloaded() -> bool:
            nonlocal counter
            if any("v2" in run for run in _runs(log)):
                return True
            counter += 1  # the first write may land before inotify is set up
            text = NARROW_TASKFILE.format(tag=f"v2 {counter}")
            project.makefile(text.replace("watch =", 'descripton = "typo"\nwatch =', 1))
            return False

        wait_until(reloaded, timeout=20, interval=0.2)
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err
    before, _, after = err.partition("reloaded Makefile.toml")
    assert 'unknown key "descripton"' not in before
    assert re.search(
        r'WARN - .*Makefile\.toml:\d+:\d+: task "record": unknown key "descripton"', after
    ), err


def test_quit_leaves_no_process_behind(watched: Project, tmp_path: Path) -> None:
    watched.makefile(
        """
        [tasks.record]
        script = '''
        sleep 300 &
        echo $! > "$LOG"
        wait
        '''
        """
    )
    log = tmp_path / "sleeper.pid"
    proc = _start(watched, log)
    wait_until(lambda: log.exists() and log.read_text().strip(), timeout=20)
    sleeper = int(log.read_text())
    _, err = _stop(proc)
    assert proc.returncode == 0, err
    # Ctrl-C in the middle of a run says so, not that files changed (no file did).
    assert "run cancelled: watch stopping" in err
    assert "--on-busy restart" not in err
    wait_until(lambda: not pid_alive(sleeper), timeout=10, message="child left after quit")
