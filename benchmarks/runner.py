"""Task-runner overhead: pitstop against GNU make on the same graph of no-op tasks.

    .venv/bin/python benchmarks/runner.py [--sizes 1000,10000] [--repeat 3] [--layers 10]

Builds a layered graph (``--layers`` layers; each task depends on ``--fanin`` tasks of the
previous layer; one ``root`` depends on the whole last layer), writes it both as a
``Makefile.toml`` (``command = "true"``) and as a GNU ``Makefile`` (phony targets, recipe
``@true``), then times ``pitstop -q root`` / ``make root`` and ``pitstop -q -j 2 root`` /
``make -j2 root``. Prints the median wall and CPU time of ``--repeat`` runs as a markdown table;
``--baseline`` times another pitstop (e.g. main's) in the same turns, for a before and after.
Every run has a timeout (``--timeout`` seconds), so the script is bounded in time.

The task file is written once per size and every run reads the same file, as a CI's reruns
would: the warm-up run fills pitstop's task-file cache and the timed runs hit it ("warm").
``--cold`` sets PITSTOP_NO_CACHE=1, so every run loads and validates the file afresh.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PITSTOP = Path(sys.executable).with_name("pitstop")


@dataclass(frozen=True)
class Graph:
    """Task names by layer and each task's dependencies."""

    deps: dict[str, list[str]]

    @property
    def size(self) -> int:
        return len(self.deps)


def layered_graph(size: int, layers: int, fanin: int) -> Graph:
    """`size` tasks in `layers` layers; task i of a layer depends on `fanin` tasks before it."""
    per_layer = max(1, size // layers)
    names = [[f"t{layer}_{i}" for i in range(per_layer)] for layer in range(layers)]
    deps: dict[str, list[str]] = {}
    for layer, row in enumerate(names):
        for i, name in enumerate(row):
            if layer == 0:
                deps[name] = []
            else:
                previous = names[layer - 1]
                deps[name] = [previous[(i + k) % per_layer] for k in range(fanin)]
    deps["root"] = list(names[-1])
    return Graph(deps)


def makefile_toml(graph: Graph) -> str:
    lines = ["[config]", "skip_core_tasks = true", ""]
    for name, deps in graph.deps.items():
        lines.append(f"[tasks.{name}]")
        if deps:
            lines.append("dependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]")
        lines.append('command = "true"')
        lines.append("")
    return "\n".join(lines)


def gnu_makefile(graph: Graph) -> str:
    lines = [".PHONY: " + " ".join(graph.deps), ""]
    for name, deps in graph.deps.items():
        lines.append(f"{name}: {' '.join(deps)}".rstrip())
        lines.append("\t@true")
    return "\n".join(lines) + "\n"


def bench_env(cache: Path) -> dict[str, str]:
    """The caller's environment with bytecode caching on (in `cache`), as for an installed tool.

    Some sandboxes set PYTHONDONTWRITEBYTECODE; then every pitstop start would recompile its
    modules, which measures the sandbox, not pitstop.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def time_run(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the tool and every child it waited for) in s.

    On a shared machine the wall time also measures waiting for a CPU; the CPU time does not.
    """
    # No `timeout=` on the wait itself: with one, CPython polls for the child's exit with
    # sleeps that grow to 50 ms, which rounds every time up. A timer kills a stuck run.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, stderr = proc.communicate()
    finally:
        timer.cancel()
    done = subprocess.CompletedProcess(argv, proc.returncode, None, stderr)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed, cpu


def compare(
    commands: list[list[str]], cwd: Path, env: dict[str, str], args: argparse.Namespace
) -> list[tuple[float, float]]:
    """Median (wall, CPU) of each command; they take turns, so a busy moment hits all alike."""
    for argv in commands:
        time_run(argv, cwd, env, args.timeout)  # warm-up: bytecode cache, page cache
    runs: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(args.repeat):
        for i, argv in enumerate(commands):
            runs[i].append(time_run(argv, cwd, env, args.timeout))
    return [(statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for r in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated task counts")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--fanin", type=int, default=3, help="dependencies per task")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (median)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--pitstop", default=str(PITSTOP), help="pitstop executable")
    parser.add_argument(
        "--baseline", help="another pitstop executable (e.g. main's) timed in the same turns"
    )
    parser.add_argument("--jobs", default="1,2", help="comma-separated -j values")
    parser.add_argument(
        "--cold", action="store_true", help="no task-file cache (PITSTOP_NO_CACHE=1)"
    )
    args = parser.parse_args()
    make = shutil.which("make")
    if make is None:
        print("GNU make is not installed", file=sys.stderr)
        return 1
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-") as tmp:
        env = bench_env(Path(tmp) / "pycache")
        if args.cold:
            env["PITSTOP_NO_CACHE"] = "1"
        for size in sizes:
            graph = layered_graph(size, args.layers, args.fanin)
            folder = Path(tmp) / str(size)
            folder.mkdir()
            (folder / "Makefile.toml").write_text(makefile_toml(graph))
            (folder / "Makefile").write_text(gnu_makefile(graph))
            for jobs in (int(j) for j in args.jobs.split(",")):
                flags = ["-q", *(["-j", str(jobs)] if jobs > 1 else []), "root"]
                commands = [
                    [args.pitstop, *flags],
                    [make, *([f"-j{jobs}"] if jobs > 1 else []), "root"],
                ]
                if args.baseline:
                    commands.append([args.baseline, *flags])
                figures = compare(commands, folder, env, args)
                rows.append((graph.size, jobs, figures))
                print(
                    f"  {graph.size} tasks, -j{jobs}: "
                    + ", ".join(f"{w:.2f}s (CPU {c:.2f}s)" for w, c in figures),
                    file=sys.stderr,
                    flush=True,
                )

    print(f"`{shlex.join(['python', 'benchmarks/runner.py', *sys.argv[1:]])}`")
    print(
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, median of {args.repeat}, "
        f"load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after, "
        f"task-file cache {'off' if args.cold else 'warm'})"
    )
    print()
    head = "| tasks | jobs | pitstop s (CPU s) | make s (CPU s) | pitstop / make, wall (CPU) |"
    line = "|------:|-----:|------------------:|---------------:|---------------------------:|"
    if args.baseline:
        head += " baseline s (CPU s) | baseline / make |"
        line += "-------------------:|----------------:|"
    print(head)
    print(line)
    for size, jobs, figures in rows:
        (ow, oc), (mw, mc) = figures[0], figures[1]
        text = (
            f"| {size} | {jobs} | {ow:.2f} ({oc:.2f}) | {mw:.2f} ({mc:.2f}) "
            f"| {ow / mw:.2f}x ({oc / mc:.2f}x) |"
        )
        if args.baseline:
            bw, bc = figures[2]
            text += f" {bw:.2f} ({bc:.2f}) | {bw / mw:.2f}x ({bc / mc:.2f}x) |"
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
