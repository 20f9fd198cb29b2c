"""Watch idle cost on a big tree: CPU % while nothing changes, and the time to start watching.

    .venv/bin/python benchmarks/watch_idle.py [--files 20000] [--dirs 2000] [--idle 20]
                                              [--tools pitstop,pitstop-watchfiles,watchfiles,entr]

Builds ``--files`` files in ``--dirs`` folders under ``src/`` and starts each watcher on it the
same way as ``watch_latency.py`` (pitstop with the default debounce, watchfiles' CLI, entr).
For each it reports

- *first run*: launch → the command's first start (pitstop and entr run it at once);
- *watching*: launch → the first rewrite of a file that causes a run (one rewrite every
  0.2 s until one does: no tool says when its watch is live, so this is the honest bound);
- *idle CPU*: after ``--settle`` s of quiet, user+system CPU time of the watcher's whole process
  tree (every thread, and children such as pitstop's watchdog; from /proc/PID/stat) over
  ``--idle`` s, as a % of one core;
- *RSS*: the resident memory of the tree at the end of the idle period.

Linux only (reads /proc). Every wait has a deadline, so the script is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from watch_latency import (
    Project,
    Running,
    make_project,
    more_runs_than,
    tools,
    touch,
    wait_for,
)

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime+stime (all threads) of each pid still alive."""
    ticks = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            ticks[pid] = int(stat[11]) + int(stat[12])
    return ticks


def rss_mb(pids: list[int]) -> float:
    pages = 0
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            pages += int(stat[21])
    return pages * PAGE / 2**20


@dataclass
class Idle:
    name: str
    first_run_s: float | None
    watching_s: float | None
    cpu_percent: float | None
    rss: float | None

    def row(self) -> str:
        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        return (
            f"| {self.name} | {fmt(self.first_run_s, '.2f')} | {fmt(self.watching_s, '.2f')} "
            f"| {fmt(self.cpu_percent, '.2f')} | {fmt(self.rss, '.0f')} |"
        )


def measure(tool_index: int, project: Project, args: argparse.Namespace, base: Path) -> Idle:
    tool = tools(project, args.tools.split(","), [args.debounce])[tool_index]
    project.log.write_text("")
    running = Running(tool, project, base)
    try:
        if not wait_for(more_runs_than(project, 0), args.deadline):
            return Idle(tool.name, None, None, None, None)
        first_run = (project.starts()[0] - running.started_ns) / 1e9
        watching = None
        for attempt in range(int(args.deadline / 0.2)):
            count = len(project.starts())
            wrote = touch(project.files[attempt % len(project.files)], attempt)
            if wait_for(more_runs_than(project, count), 0.2):
                watching = (wrote - running.started_ns) / 1e9
                break
        time.sleep(args.settle)
        pids = tree(running.proc.pid)
        before, t0 = cpu_ticks(pids), time.monotonic()
        time.sleep(args.idle)
        after, t1 = cpu_ticks(pids), time.monotonic()
        used = sum(after[p] - before[p] for p in after if p in before) / TICKS
        return Idle(tool.name, first_run, watching, 100 * used / (t1 - t0), rss_mb(pids))
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--dirs", type=int, default=2_000)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measured")
    parser.add_argument("--settle", type=float, default=3.0, help="quiet seconds before that")
    parser.add_argument("--debounce", type=int, default=50, help="pitstop --debounce")
    parser.add_argument("--tools", default="pitstop,pitstop-watchfiles,watchfiles,entr")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds to start up")
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, nproc {os.cpu_count()}, python {platform.python_version()}"
    )
    print(f"tree: {args.files} files in {args.dirs} folders; idle CPU over {args.idle:.0f} s\n")
    print("| watcher | first run s | watching s | idle CPU % | RSS MB |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="watch-idle-") as tmp:
        base = Path(tmp)
        project = make_project(base, args.files, args.dirs)
        for i in range(len(tools(project, args.tools.split(","), [args.debounce]))):
            print(measure(i, project, args, base).row(), flush=True)


if __name__ == "__main__":
    main()
