"""Task-runner overhead: pitstop against GNU make on the same graph of no-op tasks.

    .venv/bin/python benchmarks/runner.py [--sizes 1000,10000] [--repeat 3] [--layers 10]

Builds a layered graph (``--layers`` layers; each task depends on ``--fanin`` tasks of the
previous layer; one ``root`` depends on the whole last layer), writes it both as a
``Makefile.toml`` (``command = "true"``) and as a GNU ``Makefile`` (phony targets, recipe
``@true``), then times ``pitstop -q root`` / ``make root`` and ``pitstop -q -j 2 root`` /
``make -j2 root``. Prints the median wall time of ``--repeat`` runs as a markdown table.
Every run has a timeout (``--timeout`` seconds), so the script is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import platform
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


def time_run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> float:
    # No `timeout=` on the wait itself: with one, CPython polls for the child's exit with
    # sleeps that grow to 50 ms, which rounds every time up. A timer kills a stuck run.
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
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed


def compare(
    ours: list[str], theirs: list[str], cwd: Path, env: dict[str, str], args: argparse.Namespace
) -> tuple[float, float]:
    """Median wall times; the two commands alternate, so a busy moment hits both alike."""
    time_run(ours, cwd, env, args.timeout)  # warm-up: bytecode cache, page cache
    time_run(theirs, cwd, env, args.timeout)
    a: list[float] = []
    b: list[float] = []
    for _ in range(args.repeat):
        a.append(time_run(ours, cwd, env, args.timeout))
        b.append(time_run(theirs, cwd, env, args.timeout))
    return statistics.median(a), statistics.median(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated task counts")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--fanin", type=int, default=3, help="dependencies per task")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (median)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--pitstop", default=str(PITSTOP), help="pitstop executable")
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
        for size in sizes:
            graph = layered_graph(size, args.layers, args.fanin)
            folder = Path(tmp) / str(size)
            folder.mkdir()
            (folder / "Makefile.toml").write_text(makefile_toml(graph))
            (folder / "Makefile").write_text(gnu_makefile(graph))
            for jobs in (1, 2):
                pitstop_argv = [args.pitstop, "-q", *(["-j", "2"] if jobs > 1 else []), "root"]
                make_argv = [make, *(["-j2"] if jobs > 1 else []), "root"]
                ours, theirs = compare(pitstop_argv, make_argv, folder, env, args)
                rows.append((graph.size, jobs, ours, theirs))
                print(
                    f"  {graph.size} tasks, -j{jobs}: pitstop {ours:.2f}s, make {theirs:.2f}s",
                    file=sys.stderr,
                    flush=True,
                )

    print(f"`{shlex.join(['python', 'benchmarks/runner.py', *sys.argv[1:]])}`")
    print(
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, median of {args.repeat}, "
        f"load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after)"
    )
    print()
    print("| tasks | jobs | pitstop (s) | make (s) | pitstop / make |")
    print("|------:|-----:|------------:|---------:|---------------:|")
    for size, jobs, ours, theirs in rows:
        print(f"| {size} | {jobs} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
