"""`--output group` memory: pitstop's own peak RSS while a task prints a lot, before and after.

    .venv/bin/python benchmarks/output_memory.py [--mb 200] [--before 4fa62f5]

Runs `pitstop -j2 --output group all` where `all` is one task printing `--mb` megabytes of
100-byte lines and one printing a line. pitstop runs inside a small wrapper that writes
its own peak RSS (`getrusage(RUSAGE_SELF)`) at exit, so the tasks' memory does not count.
"after" is this checkout's `src`; "before" is `src` of the `--before` commit (the one
before the spool, by default), unpacked with `git archive` into a temporary folder. Both
write their stdout to /dev/null; the wall time includes printing every line.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = """
import atexit, resource, sys
out = sys.argv.pop(1)
def report():
    with open(out, "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
atexit.register(report)
from pitstop.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

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
line = "x" * 99 + "\\n"
for i in range({lines}):
    w(line)
''']
[tasks.small]
command = "echo"
args = ["small"]
"""


def unpack(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def measure(src: Path, project: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one pitstop run with `src` on its path."""
    env = dict(os.environ, PYTHONPATH=str(src), NO_COLOR="1")
    peak = project / "peak"
    argv = [sys.executable, "-c", WRAPPER, str(peak), "-q", "-j2", "--output=group", "all"]
    started = time.perf_counter()
    subprocess.run(argv, cwd=project, env=env, stdout=subprocess.DEVNULL, check=True, timeout=600)
    return int(peak.read_text()) / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="megabytes the task prints")
    parser.add_argument("--before", default="4fa62f5", help="commit to compare with")
    args = parser.parse_args()
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-") as tmp:
        folder = Path(tmp)
        project = folder / "project"
        project.mkdir()
        lines = args.mb * 1_000_000 // 100
        text = TASKFILE.format(python=sys.executable, lines=lines)
        (project / "Makefile.toml").write_text(text)
        before_src = folder / "before"
        before_src.mkdir()
        sources = {
            f"before ({args.before})": unpack(args.before, before_src),
            "after": ROOT / "src",
        }
        print(f"task prints {args.mb} MB ({lines:,} lines of 100 bytes) with --output group")
        print(f"{'':<20} {'peak RSS':>10} {'wall':>8}")
        for label, src in sources.items():
            peak, wall = measure(src, project)
            print(f"{label:<20} {peak:>7.1f} MiB {wall:>7.2f}s")


if __name__ == "__main__":
    main()
