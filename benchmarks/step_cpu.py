"""pitstop's own CPU time per step in the run phase, measured in-process.

    .venv/bin/python benchmarks/step_cpu.py [--tasks 1000] [--jobs 2] [--repeat 7] [--python OTHER]

Writes the runner's layered graph of `true` tasks, then runs `pitstop -q -j N root` in a
fresh interpreter `--repeat` times, timing `app.run.run_once` (the run phase: no import,
load or plan) with `time.process_time` (this process only, not its children) and the wall
clock. Prints the median µs per step. With `--python`, another interpreter (e.g. main's
venv) is timed in the same turns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import runner

PROBE = r"""
import json, os, sys, time
import pitstop.app.run as run
from pitstop.cli import main
real = run.run_once
took = []
spawning = [0.0, 0.0]
real_spawn = os.posix_spawn
def posix_spawn(*args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        return real_spawn(*args, **kwargs)
    finally:
        spawning[0] += time.process_time() - cpu
        spawning[1] += time.perf_counter() - wall
os.posix_spawn = posix_spawn
async def timed(*args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        return await real(*args, **kwargs)
    finally:
        took.append((time.process_time() - cpu, time.perf_counter() - wall))
run.run_once = timed
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("STEPCPU " + json.dumps([*took[-1], *spawning]) + "\n")
"""


def one(python: str, folder: Path, jobs: int) -> list[float]:
    done = subprocess.run(
        [python, "-c", PROBE, "-q", "-j", str(jobs), "root"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("STEPCPU "))
    return list(json.loads(line.split(" ", 1)[1]))  # cpu, wall; of which in posix_spawn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--python", help="another interpreter to time in the same turns")
    args = parser.parse_args()
    pythons = {"this": sys.executable}
    if args.python:
        pythons["other"] = args.python
    with tempfile.TemporaryDirectory(prefix="pitstop-stepcpu-") as tmp:
        folder = Path(tmp)
        graph = runner.layered_graph(args.tasks, 10, 2)
        (folder / "Makefile.toml").write_text(runner.makefile_toml(graph))
        results: dict[str, list[list[float]]] = {name: [] for name in pythons}
        for python in pythons.values():
            one(python, folder, args.jobs)  # warm-up: fills the task-file cache
        for _ in range(args.repeat):
            for name, python in pythons.items():
                results[name].append(one(python, folder, args.jobs))
        steps = graph.size
        for name, runs in results.items():
            cpu, wall, spawn_cpu, spawn_wall = (
                statistics.median(run[i] for run in runs) / steps * 1e6 for i in range(4)
            )
            print(
                f"{name} ({pythons[name]}): {steps} steps, -j {args.jobs}, median of "
                f"{args.repeat}: {cpu:.0f} µs CPU and {wall:.0f} µs wall per step, of which "
                f"in os.posix_spawn {spawn_cpu:.0f} µs CPU and {spawn_wall:.0f} µs wall"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
