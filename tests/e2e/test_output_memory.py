"""`--output group` through the real CLI: a task printing 200 MB, pitstop's own memory bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Project

# Runs pitstop in this process and, at exit, writes this process's own peak RSS (KiB on
# Linux): the tasks are other processes and do not count.
PEAK_RSS_WRAPPER = """
import atexit, resource, sys
out = sys.argv.pop(1)
def report():
    with open(out, "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
atexit.register(report)
from pitstop.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

LINES = 2_000_000  # 100 bytes each: 200 MB

TASKFILE = """
[config]
skip_core_tasks = true
[tasks.all]
dependencies = ["big", "small"]
[tasks.big]
command = "{python}"
args = ["-c", '''
import sys
w = sys.stdout.write
for i in range({lines}):
    w(f"{{i:09d}}" + "x" * 90 + "\\n")
print("to stderr", file=sys.stderr)
''']
[tasks.small]
command = "echo"
args = ["small-done"]
"""


def test_grouped_output_of_200_mb_keeps_pitstops_memory_under_64_mb(
    project: Project, tmp_path: Path
) -> None:
    project.makefile(TASKFILE.format(python=sys.executable, lines=LINES))
    peak_file = tmp_path / "peak"
    out_file = tmp_path / "stdout"
    with out_file.open("wb") as out:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK_RSS_WRAPPER,
                str(peak_file),
                "-j2",
                "--output=group",
                "all",
            ],
            cwd=project.root,
            env=project.env(),
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert b"big   | to stderr" in done.stderr
    peak_mib = int(peak_file.read_text()) / 1024
    assert peak_mib < 64, f"pitstop's peak RSS was {peak_mib:.0f} MiB"
    # Complete and in order: the small task's block, then every line of the big one.
    with out_file.open("rb") as out:
        assert out.readline() == b"small | small-done\n"
        expected = 0
        for line in out:
            assert line == b"big   | %09d%s\n" % (expected, b"x" * 90), line[:40]
            expected += 1
    assert expected == LINES
