"""Startup: the wall time of `pitstop --list` on a 50-task file, and what its imports cost.

    .venv/bin/python benchmarks/startup.py [--runs 20] [--top 12] [--core-tasks]

Prints the median (and min / max) of ``--runs`` runs, a bare ``python -c pass`` for scale,
the modules with the largest self time under ``python -X importtime``, and whether asyncio
was imported (it must not be: ``--list`` runs nothing). Bytecode caching is on (in a
temporary ``PYTHONPYCACHEPREFIX``) and one warm-up run precedes the timed ones, as for an
installed pitstop.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

AIM_MS = 80.0


def taskfile(size: int, core_tasks: bool = False) -> str:
    """`size` tasks in a chain; `core_tasks` loads cargo-make's built-in Rust tasks too."""
    lines = [] if core_tasks else ["[config]", "skip_core_tasks = true", ""]
    for i in range(size):
        lines.append(f"[tasks.task{i}]")
        lines.append(f'description = "task number {i}"')
        lines.append(f'category = "group{i % 5}"')
        if i:
            lines.append(f'dependencies = ["task{i - 1}"]')
        lines.append('command = "true"')
        lines.append("")
    return "\n".join(lines)


def run_ms(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    # No `timeout=` on the wait itself: with one, CPython polls for the child's exit with
    # sleeps that grow to 50 ms, which rounds every time up. A timer kills a stuck run.
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        code = proc.wait()
    finally:
        timer.cancel()
    elapsed = (time.perf_counter() - started) * 1000
    if code != 0:
        raise RuntimeError(f"{argv} failed with exit code {code}")
    return elapsed


def import_times(argv: list[str], cwd: Path, env: dict[str, str]) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) from `python -X importtime`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        timeout=60,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        rows.append((int(own), int(cumulative), name.strip()))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--top", type=int, default=12, help="import offenders to show")
    parser.add_argument(
        "--core-tasks",
        action="store_true",
        help="leave out skip_core_tasks: ~190 built-in Rust tasks are loaded and listed too",
    )
    args = parser.parse_args()
    pitstop = Path(sys.executable).with_name("pitstop")
    with tempfile.TemporaryDirectory(prefix="pitstop-startup-") as tmp:
        cwd = Path(tmp)
        (cwd / "Makefile.toml").write_text(taskfile(args.tasks, args.core_tasks))
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cwd / "pycache")
        command = [str(pitstop), "--list"]
        run_ms(command, cwd, env)  # warm-up: writes the bytecode cache
        times = [run_ms(command, cwd, env) for _ in range(args.runs)]
        bare = statistics.median(
            run_ms([sys.executable, "-c", "pass"], cwd, env) for _ in range(args.runs)
        )
        imports = import_times(["-m", "pitstop", "--list"], cwd, env)

    median = statistics.median(times)
    verdict = "meets" if median < AIM_MS else "misses"
    print(f"`{shlex.join(['python', 'benchmarks/startup.py', *sys.argv[1:]])}`")
    print(
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()})"
    )
    print()
    print(
        f"- `pitstop --list`, {args.tasks} tasks{' + built-ins' if args.core_tasks else ''}: median {median:.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f}, {args.runs} runs); "
        f"{verdict} the {AIM_MS:.0f} ms aim"
    )
    print(f"- `python -c pass`: median {bare:.1f} ms")
    print(f"- imports: {len(imports)} modules, {sum(own for own, _, _ in imports) / 1000:.1f} ms")
    names = {name for _, _, name in imports}
    print(f"- asyncio imported: {'yes' if 'asyncio' in names else 'no'}")
    print()
    print("| module | self (ms) | cumulative (ms) |")
    print("|--------|----------:|----------------:|")
    for own, cumulative, name in sorted(imports, reverse=True)[: args.top]:
        print(f"| {name} | {own / 1000:.1f} | {cumulative / 1000:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
