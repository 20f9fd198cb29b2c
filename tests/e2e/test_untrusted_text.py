"""Terminal control bytes in file names and task files are printed escaped, never raw."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, wait_until

HOSTILE = "x\x1b]0;pwned\x07y\x1b[31mz.txt"
SHOWN = "x\\x1b]0;pwned\\x07y\\x1b[31mz.txt"


def test_watch_prints_a_changed_file_name_with_its_control_characters_escaped(
    project: Project,
) -> None:
    project.makefile(
        """
        [tasks.record]
        script = "echo ran >> runs.log"
        watch = { watch = ["src"] }
        """
    )
    (project.root / "src").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pitstop", "--watch", "record"],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="surrogateescape",
    )
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        runs = project.root / "runs.log"
        wait_until(lambda: runs.exists(), timeout=20, message="first run")

        def changed_line() -> str | None:
            for line in list(stderr):
                if "changed" in line:
                    return line
            (project.root / "src" / HOSTILE).write_text("x")  # until the watcher sees it
            return None

        line = wait_until(changed_line, timeout=20, interval=0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert f"src/{SHOWN} changed" in line
    assert "\x1b" not in "".join(stderr)
    assert "\x07" not in "".join(stderr)


def test_an_error_quoting_a_task_file_escapes_its_control_characters(project: Project) -> None:
    (project.root / "Makefile.toml").write_text('[tasks."a\x1b]0;pwned\x07"]\nbogus_key = 1\n')
    result = project.run("--list-all-steps")
    assert result.returncode == 2, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "a\\x1b]0;pwned\\x07" in result.stderr


def test_the_caret_still_points_at_its_column_after_an_escaped_character(
    project: Project,
) -> None:
    # U+009B (a one-byte CSI on some terminals) is legal in a TOML string; "junk" is not.
    (project.root / "Makefile.toml").write_text('[tasks.t]\ndescription = "\x9b31m" junk\n')
    result = project.run("--list-all-steps")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    source = next(line for line in lines if line.startswith("2 | "))
    caret = lines[lines.index(source) + 1]
    assert source == '2 | description = "\\x9b31m" junk'
    assert source[caret.index("^") :].startswith("junk")
