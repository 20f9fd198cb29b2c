"""Where the wall time of a `-j 2` run goes that is not CPU time: the scheduler's view.

    .venv/bin/python benchmarks/sched_wait.py [--tasks 1000] [--jobs 2] [--repeat 3]

Runs the runner's layered graph of `true` tasks (benchmarks/runner.py) under
`perf sched record`, once with pitstop and once with GNU make, and reads `perf sched
timehist`: how long the children ran, how long they waited, runnable, for a CPU (the
scheduling delay), how long the runner itself ran, and how long a CPU stood idle while the
run lasted. Prints medians per task over `--repeat` turns. Needs Linux `perf` with the
sched tracepoints readable (root, or perf_event_paranoid ≤ 1); says so and exits 1 without.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import runner

PITSTOP = Path(sys.executable).with_name("pitstop")


@dataclass(frozen=True)
class Sched:
    """One run, from `perf sched timehist`: totals in ms over the run's window."""

    wall: float  # first to last event of the runner or a child
    children_run: float
    children_delay: float  # runnable, waiting for a CPU
    runner_run: float
    before_exec: float  # a child between the vfork and its exec (still named as the runner)
    idle: float  # summed over CPUs


def timehist(data: Path, runner_names: tuple[str, ...]) -> Sched:
    done = subprocess.run(
        ["perf", "sched", "timehist", "-i", str(data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split()
        # time cpu task wait delay run
        if len(parts) < 6 or not parts[1].startswith("["):
            continue
        try:
            at, wait, delay, run = float(parts[0]), *map(float, parts[-3:])
        except ValueError:
            continue
        name = " ".join(parts[2:-3])
        task, _, ids = name.partition("[")
        pid = int(ids.rstrip("]").split("/")[-1]) if ids[:1].isdigit() else 0
        rows.append((at, task, wait, delay, run, pid))
    ours = [r for r in rows if r[1] == "true" or r[1] in runner_names]
    start, end = ours[0][0] - ours[0][4] / 1000, ours[-1][0]
    window = [r for r in rows if start <= r[0] <= end]
    # The runner is the first process of its name; later ones are its children before exec.
    main_pid = next(r[5] for r in ours if r[1] in runner_names)
    return Sched(
        wall=(end - start) * 1000,
        children_run=sum(r[4] for r in window if r[1] == "true"),
        children_delay=sum(r[3] for r in window if r[1] == "true"),
        runner_run=sum(r[4] for r in window if r[1] in runner_names and r[5] == main_pid),
        before_exec=sum(r[4] for r in window if r[1] in runner_names and r[5] != main_pid),
        idle=sum(r[4] for r in window if r[1] == "<idle>"),
    )


def record(argv: list[str], cwd: Path, env: dict[str, str], data: Path) -> None:
    subprocess.run(
        ["perf", "sched", "record", "-o", str(data), "--", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=300,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pitstop", default=str(PITSTOP))
    args = parser.parse_args()
    make = shutil.which("make")
    if shutil.which("perf") is None or make is None:
        print("needs Linux perf and GNU make", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pitstop-sched-") as tmp:
        folder = Path(tmp)
        graph = runner.layered_graph(args.tasks, 10, 3)
        (folder / "Makefile.toml").write_text(runner.makefile_toml(graph))
        (folder / "Makefile").write_text(runner.gnu_makefile(graph))
        env = runner.bench_env(folder / "pycache")
        commands = {
            "pitstop": ([args.pitstop, "-q", "-j", str(args.jobs), "root"], ("pitstop",)),
            "make": ([make, f"-j{args.jobs}", "root"], ("make",)),
        }
        data = folder / "perf.data"
        try:
            for argv, _ in commands.values():  # warm-up: bytecode and task-file caches
                subprocess.run(argv, cwd=folder, env=env, capture_output=True, timeout=300)
            runs: dict[str, list[Sched]] = {name: [] for name in commands}
            for _ in range(args.repeat):
                for name, (argv, names) in commands.items():
                    record(argv, folder, env, data)
                    runs[name].append(timehist(data, names))
        except (subprocess.CalledProcessError, IndexError) as error:
            print(f"perf sched failed ({error}); is perf allowed here?", file=sys.stderr)
            return 1
    size = graph.size
    print(
        f"{size} tasks of `true`, -j{args.jobs}, {os.cpu_count()} CPUs, median of "
        f"{args.repeat}; µs per task (load {os.getloadavg()[0]:.2f})"
    )
    print()
    print(
        "| runner | wall | runner ran | children ran, before exec | after exec "
        "| children waited for a CPU | CPUs idle |"
    )
    print("|--------|-----:|-----------:|---:|---:|---:|---:|")
    for name, scheds in runs.items():
        cells = [
            statistics.median(getattr(s, field) for s in scheds) * 1000 / size
            for field in (
                "wall",
                "runner_run",
                "before_exec",
                "children_run",
                "children_delay",
                "idle",
            )
        ]
        print(f"| {name} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
