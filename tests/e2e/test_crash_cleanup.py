"""SIGKILL of pitstop during a build and during a swap: the watchdog leaves nothing behind.

pitstop cannot clean up after a SIGKILL, so its watchdog (engine/reaper.py) must end every
child and remove every temporary folder pitstop made. Each test gives pitstop a private
$TMPDIR, checks that pitstop's folders are there before the kill and gone after it, and
that no process carrying this pitstop's mark (its children, their children, the watchdog)
is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import script_pids, wait_until

APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"

TASKFILE = """
[tasks.build]
script = '''
if grep -q hang source.txt; then touch build.hanging; sleep 300; fi
cp source.txt version.txt
'''

[tasks.serve]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "version.txt"]
watch = {{ watch = ["source.txt"] }}
service = {{ listen = "127.0.0.1:0", ready = {{ notify = true }}, ready_timeout = "120s", stop_timeout = "5s" }}
"""


@pytest.fixture
def served(project: Project, tmp_path: Path) -> tuple[Project, Path]:
    project.write("pitstop.toml", TASKFILE.format(python=sys.executable, app=APP))
    tmpdir = tmp_path / "private-tmp"
    tmpdir.mkdir()
    return project, tmpdir


def _started_by(pitstop: int) -> list[int]:
    """Processes marked by this pitstop: children (by the reaper token in their environment,
    which their own children inherit) and the watchdog (which has the token in its argv)."""
    prefix = f"{pitstop}-".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        marks = [
            v[len(b"PITSTOP_ANCESTRY=") :] for v in environ if v.startswith(b"PITSTOP_ANCESTRY=")
        ]
        tokens = [t for m in marks for t in m.split(b":")] + argv
        if any(t.startswith(prefix) for t in tokens):
            found.append(int(entry))
    return found


def _pitstop_folders(tmpdir: Path) -> list[str]:
    return sorted(name for name in os.listdir(tmpdir) if name.startswith("pitstop"))


def _kill_and_check(proc: subprocess.Popen[str], tmpdir: Path) -> None:
    before = _pitstop_folders(tmpdir)
    assert len(before) >= 2, f"expected pitstop's temp folders before the kill: {before}"
    assert _started_by(proc.pid), "no child of pitstop found before the kill"
    proc.kill()
    proc.communicate(timeout=10)
    wait_until(lambda: not _started_by(proc.pid), timeout=20, message="a child outlived pitstop")
    # The watchdog removes the folders before it exits, so they are gone by now.
    assert _pitstop_folders(tmpdir) == [], f"left in $TMPDIR: {_pitstop_folders(tmpdir)}"


def test_sigkill_during_a_build_leaves_no_temp_folder_and_no_child(
    served: tuple[Project, Path],
) -> None:
    project, tmpdir = served
    project.write("source.txt", "hang\n")
    proc = project.popen("serve", TMPDIR=str(tmpdir))
    try:
        wait_until(lambda: (project.root / "build.hanging").exists(), timeout=30)
        _kill_and_check(proc, tmpdir)
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_sigkill_during_a_swap_leaves_no_temp_folder_and_no_child(
    served: tuple[Project, Path],
) -> None:
    project, tmpdir = served
    project.write("source.txt", "v1\n")
    proc = project.popen("--watch", "serve", TMPDIR=str(tmpdir))
    assert proc.stderr is not None
    try:
        wait_until(
            lambda: len(script_pids("fd_app.py", project.root)) == 1,
            timeout=30,
            message="v1 started",
        )
        wait_until(lambda: (project.root / "version.txt").exists(), timeout=30)

        # v2 never says it is ready: the swap stays in progress, two instances running.
        def swapping() -> bool:
            if len(script_pids("fd_app.py", project.root)) == 2:
                return True
            (project.root / "source.txt").write_text("v2 --never-ready\n")  # until watched
            return False

        wait_until(swapping, timeout=30, interval=0.3, message="the swap to v2 started")
        _kill_and_check(proc, tmpdir)
        assert script_pids("fd_app.py", project.root) == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
