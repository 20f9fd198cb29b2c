"""`pitstop --watch` edge cases found in review: the real CLI, real inotify events."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Project
from tests.helpers import wait_until

TASKFILE = """
[tasks.record]
script = '''
echo "run {tag}" >> "$LOG"
'''
watch = {{ watch = ["a-file"] }}
"""


def _runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_editing_the_task_file_reloads_it_when_the_watch_paths_leave_it_out(
    project: Project, tmp_path: Path
) -> None:
    project.write("a-file", "1\n")
    project.makefile(TASKFILE.format(tag="v1"))
    log = tmp_path / "runs.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pitstop", "--watch", "--exts", "txt", "record"],
        cwd=project.root,
        env=project.env(LOG=str(log)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _runs(log) == ["run v1"], timeout=20)
        counter = 0

        def reloaded() -> bool:
            nonlocal counter
            if any("v2" in run for run in _runs(log)):
                return True
            counter += 1  # the first write may land before inotify is set up
            project.makefile(TASKFILE.format(tag=f"v2 {counter}"))
            return False

        wait_until(reloaded, timeout=20, interval=0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "reloaded Makefile.toml" in err
