"""Watch latency, end to end: a file write → the rerun command's start, for real watch CLIs.

    .venv/bin/python benchmarks/watch_latency.py [--samples 50] [--debounces 50,10,0]
                                                 [--tools pitstop,watchfiles,entr]

For each tool, a temp project with a ``src/`` tree (``--files`` files in ``--dirs`` folders)
is watched by

- ``pitstop --watch --watch-path src --debounce D stamp`` (task ``stamp``: ``sh -c CMD``),
- ``pitstop-watchfiles[-STEP]`` in ``--tools``: pitstop made to use watchfiles instead of
  inotify, with watchfiles' step set to STEP ms (default 10, pitstop's setting),
- ``watchfiles --target-type command "sh -c CMD" src`` (watchfiles' own CLI, its defaults),
- ``entr -n sh -c CMD`` fed the list of files in ``src/``,

where ``CMD`` is ``date +%s%N >> OUT/starts.log`` and ``OUT`` is outside the watched tree.
The command start is the time ``date`` reads, so the figure includes forking ``sh`` and
``date`` (about 1-2 ms) but no interpreter start-up. Each sample rewrites one existing file
(time taken just before ``open``), then waits (deadline ``--deadline`` s) for the new line in
``starts.log``; a random pause of 150-300 ms between samples keeps the writes out of phase
with any polling step. Then a burst of ``--burst`` saves (distinct files, as fast as Python
writes them) checks coalescing: how many runs it caused after ``--settle`` s of quiet.
Prints a markdown table: median / p95 / max of write → start, misses, runs per burst.
Every wait has a deadline, so the script is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
PITSTOP = BIN / "pitstop"
WATCHFILES = BIN / "watchfiles"


@dataclass(frozen=True)
class Project:
    """A temp project: ``root/pitstop.toml``, ``root/src/`` and, outside it, the start log."""

    root: Path
    log: Path
    files: list[Path]

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def stamp(self) -> str:
        return f"date +%s%N >> {self.log}"

    def starts(self) -> list[int]:
        """Start times (ns since the epoch) recorded so far; a half-written last line is skipped."""
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split("\n")[:-1] if line]


def make_project(base: Path, files: int, dirs: int) -> Project:
    root = base / "project"
    paths = [root / "src" / f"d{i % dirs:04}" / f"f{i:05}.txt" for i in range(files)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("0\n")
    out = base / "out"
    out.mkdir()
    log = out / "starts.log"
    (root / "pitstop.toml").write_text(
        f'[tasks.stamp]\ncommand = "sh"\nargs = ["-c", "{f"date +%s%N >> {log}"}"]\n'
    )
    return Project(root, log, paths)


_ON_WATCHFILES = """
import sys
from pitstop.watch import changes, inotify
inotify.available = lambda: False
step = int(sys.argv.pop(1))
changes._WatchSettings.step_ms = property(lambda self: step)  # not capped at debounce / 4
from pitstop.cli import main
sys.exit(main())
"""


@dataclass(frozen=True)
class Tool:
    name: str
    argv: list[str]
    stdin: bytes | None = None


def tools(project: Project, names: Sequence[str], debounces: Sequence[int]) -> list[Tool]:
    found: list[Tool] = []
    for name in names:
        if name == "pitstop":
            for d in debounces:
                argv = [str(PITSTOP), "--watch", "--watch-path", "src", "--debounce", str(d)]
                found.append(Tool(f"pitstop --debounce {d}", [*argv, "stamp"]))
        elif name.startswith("pitstop-watchfiles"):
            # pitstop on watchfiles instead of inotify (what every other OS uses), with
            # watchfiles' step in ms after the dash: the comparison docs/benchmarks.md quotes.
            step = name.rpartition("-")[2] if name.count("-") == 2 else "10"
            for d in debounces:
                argv = [sys.executable, "-c", _ON_WATCHFILES, step, "--watch", "--watch-path"]
                argv += ["src", "--debounce", str(d), "stamp"]
                found.append(Tool(f"pitstop on watchfiles, step {step} ms, --debounce {d}", argv))
        elif name == "watchfiles":
            cmd = f"sh -c '{project.stamp}'"
            argv = [str(WATCHFILES), "--target-type", "command", cmd, "src"]
            found.append(Tool("watchfiles CLI", argv))
        elif name == "entr" and shutil.which("entr"):
            listing = "".join(f"{p.relative_to(project.root)}\n" for p in project.files)
            argv = ["entr", "-n", "sh", "-c", project.stamp]
            found.append(Tool("entr -n", argv, listing.encode()))
        elif name == "entr":
            print("entr not found: skipped (apt-get install entr)", file=sys.stderr)
    return found


class Running:
    """A started watcher in its own session; ``stop`` ends its whole process group."""

    def __init__(self, tool: Tool, project: Project, log_dir: Path) -> None:
        self.tool = tool
        self.output = (log_dir / f"{tool.name.replace(' ', '_')}.out").open("wb")
        self.started_ns = time.time_ns()
        self.proc = subprocess.Popen(
            tool.argv,
            cwd=project.root,
            stdin=subprocess.PIPE if tool.stdin is not None else subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if tool.stdin is not None and self.proc.stdin is not None:
            self.proc.stdin.write(tool.stdin)
            self.proc.stdin.close()

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGINT, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.output.close()


def wait_for(predicate: Callable[[], bool], deadline_s: float) -> bool:
    """Poll ``predicate`` every 2 ms until it holds or the deadline passes (benchmark only)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def more_runs_than(project: Project, count: int) -> Callable[[], bool]:
    return lambda: len(project.starts()) > count


def touch(path: Path, n: int) -> int:
    """Rewrite ``path``; returns the wall-clock time (ns) just before the write began."""
    before = time.time_ns()
    with path.open("w") as file:
        file.write(f"{n}\n")
    return before


@dataclass
class Result:
    name: str
    latencies_ms: list[float]
    misses: int
    burst_runs: int | None
    first_run_s: float | None

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        if not lat:
            return f"| {self.name} | - | - | - | {self.misses} | - |"
        p95 = lat[max(0, -(-len(lat) * 95 // 100) - 1)]
        burst = "-" if self.burst_runs is None else str(self.burst_runs)
        return (
            f"| {self.name} | {statistics.median(lat):.1f} | {p95:.1f} | {lat[-1]:.1f} "
            f"| {self.misses}/{len(lat) + self.misses} | {burst} |"
        )


def measure(tool: Tool, project: Project, args: argparse.Namespace, log_dir: Path) -> Result:
    project.log.write_text("")
    running = Running(tool, project, log_dir)
    try:
        if not wait_for(more_runs_than(project, 0), args.deadline * 6):
            return Result(tool.name, [], args.samples, None, None)
        first_run_s = (project.starts()[0] - running.started_ns) / 1e9
        # No tool says when its watch is live: rewrite a file until a run answers.
        for attempt in range(200):
            count = len(project.starts())
            touch(project.files[-1], attempt)
            if wait_for(more_runs_than(project, count), 0.5):
                break
        rng = random.Random(1)
        latencies: list[float] = []
        misses = 0
        for i in range(args.samples):
            time.sleep(rng.uniform(0.15, 0.30))
            count = len(project.starts())
            wrote = touch(project.files[(i * 7919) % len(project.files)], i)
            if wait_for(more_runs_than(project, count), args.deadline):
                latencies.append((project.starts()[count] - wrote) / 1e6)
            else:
                misses += 1
        burst_runs = burst(project, args)
        return Result(tool.name, latencies, misses, burst_runs, first_run_s)
    finally:
        running.stop()


def burst(project: Project, args: argparse.Namespace) -> int | None:
    """Runs caused by ``args.burst`` quick saves of distinct files (after things settle)."""
    time.sleep(args.settle)
    count = len(project.starts())
    for i, path in enumerate(project.files[: args.burst]):
        touch(path, 1000 + i)
    if not wait_for(more_runs_than(project, count), args.deadline):
        return None
    time.sleep(args.settle)  # any further run caused by the same burst shows up by now
    return len(project.starts()) - count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--debounces", default="50,10,0", help="pitstop --debounce values")
    parser.add_argument("--tools", default="pitstop,watchfiles,entr")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--settle", type=float, default=1.0, help="quiet seconds around a burst")
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds to wait for a run")
    args = parser.parse_args()
    debounces = [int(d) for d in args.debounces.split(",") if d]
    print(
        f"machine: {platform.platform()}, nproc {os.cpu_count()}, python {platform.python_version()}"
    )
    print(f"tree: {args.files} files in {args.dirs} folders; {args.samples} single-file writes\n")
    print(f"| watcher | median ms | p95 ms | max ms | missed | runs per burst of {args.burst} |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="watch-latency-") as tmp:
        base = Path(tmp)
        project = make_project(base, args.files, args.dirs)
        for tool in tools(project, args.tools.split(","), debounces):
            print(measure(tool, project, args, base).row(), flush=True)


if __name__ == "__main__":
    main()
