"""The fixed cost of a run: importing the run path, loading the task file, planning it.

    .venv/bin/python benchmarks/fixed_cost.py [--sizes 1000,10000] [--repeat 5] [--baseline PYTHON]

Writes the runner's layered graph (benchmarks/runner.py) for each size, then times, in fresh
processes, what `pitstop -j 2 root` does before its first child: `import pitstop.app.run`,
the load as `dispatch` does it (the task-file cache warm, or off with ``--cold``) and one
`build_plan`. ``--baseline`` names another Python with pitstop installed (e.g. main's
venv), timed in the same turns. Prints the median milliseconds as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import bench_env, layered_graph, makefile_toml

# Run in the measured Python; prints "import load plan" in ms. Main's dispatch has no
# `_load_once`; it loaded with `load_taskfile` as it is.
PROBE = """
import time
t0 = time.perf_counter()
import pitstop.app.run
t1 = time.perf_counter()
from pathlib import Path
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import current_platform
from pitstop.taskfile.planner import build_plan
try:
    from pitstop.app.dispatch import _load_once as load
except ImportError:
    load = load_taskfile
t2 = time.perf_counter()
taskfile = load("Makefile.toml", Path.cwd())
t3 = time.perf_counter()
build_plan(taskfile, "root", allow_private=False, skip_tasks=None, skip_init_end=False,
           platform=current_platform(), cwd=Path.cwd())
t4 = time.perf_counter()
print((t1 - t0) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
"""


def probe(python: str, cwd: Path, env: dict[str, str]) -> list[float]:
    done = subprocess.run(
        [python, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed: {done.stderr[-500:]}")
    return [float(x) for x in done.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", help="another Python with pitstop installed")
    parser.add_argument("--cold", action="store_true", help="PITSTOP_NO_CACHE=1")
    args = parser.parse_args()
    pythons = [sys.executable, *([args.baseline] if args.baseline else [])]
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pitstop-fixed-") as tmp:
        env = bench_env(Path(tmp) / "pycache")
        if args.cold:
            env["PITSTOP_NO_CACHE"] = "1"
        for size in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / str(size)
            folder.mkdir()
            (folder / "Makefile.toml").write_text(makefile_toml(layered_graph(size, 10, 3)))
            for python in pythons:
                probe(python, folder, env)  # warm-up: bytecode and task-file caches
            runs: list[list[list[float]]] = [[] for _ in pythons]
            for _ in range(args.repeat):
                for i, python in enumerate(pythons):
                    runs[i].append(probe(python, folder, env))
            rows.append(
                (size + 1, [[statistics.median(c) for c in zip(*r, strict=True)] for r in runs])
            )
    print(f"`{' '.join(['python', 'benchmarks/fixed_cost.py', *sys.argv[1:]])}`")
    print(
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, median of {args.repeat}, "
        f"load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after, "
        f"task-file cache {'off' if args.cold else 'warm'})"
    )
    print()
    head = "| tasks | import ms | load ms | plan ms |"
    line = "|------:|----------:|--------:|--------:|"
    if args.baseline:
        head += " baseline import | baseline load | baseline plan |"
        line += "----------------:|--------------:|--------------:|"
    print(head)
    print(line)
    for tasks, figures in rows:
        print(f"| {tasks} | " + " | ".join(f"{x:.0f}" for f in figures for x in f) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
