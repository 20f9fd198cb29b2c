"""Startup: the wall time of `pitstop --list` (50 tasks) and `pitstop --version`, and imports.

    .venv/bin/python benchmarks/startup.py [--runs 20] [--top 12] [--core-tasks]

Prints the median (and min / max) of ``--runs`` runs, a bare ``python -c pass`` for scale
(the commands take turns, so a busy moment on the machine hits all of them alike),
the modules with the largest self time under ``python -X importtime``, and whether asyncio
was imported (it must not be: ``--list`` runs nothing). Bytecode caching is on (in a
temporary ``PYTHONPYCACHEPREFIX``) and one warm-up run precedes the timed ones, as for an
installed pitstop. The task file cache lives in a temporary ``XDG_CACHE_HOME``, which the
warm-up run fills, as any run after the first would find it; ``--list`` is also timed with
``PITSTOP_NO_CACHE=1`` (every run loads the file), and ``-X importtime`` sees a warm cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LIST_AIM_MS = 40.0
VERSION_AIM_MS = 30.0


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


def run_ms(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run.

    On a busy machine the wall time mostly measures the wait for a CPU; the CPU time of the
    child is the steadier figure, so both are shown.
    """
    # No `timeout=` on the wait itself: with one, CPython polls for the child's exit with
    # sleeps that grow to 50 ms, which rounds every time up. A timer kills a stuck run.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        code = proc.wait()
    finally:
        timer.cancel()
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    if code != 0:
        raise RuntimeError(f"{argv} failed with exit code {code}")
    return elapsed, cpu


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
    parser.add_argument(
        "--baseline", help="another pitstop executable (e.g. main's) timed in the same turns"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    pitstop = Path(sys.executable).with_name("pitstop")
    with tempfile.TemporaryDirectory(prefix="pitstop-startup-") as tmp:
        cwd = Path(tmp)
        (cwd / "Makefile.toml").write_text(taskfile(args.tasks, args.core_tasks))
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cwd / "pycache")
        env["XDG_CACHE_HOME"] = str(cwd / "cache")
        env.pop("PITSTOP_NO_CACHE", None)
        uncached = {**env, "PITSTOP_NO_CACHE": "1"}
        commands = {
            "list": [str(pitstop), "--list"],
            "list-uncached": [str(pitstop), "--list"],
            "version": [str(pitstop), "--version"],
            "bare": [sys.executable, "-c", "pass"],
        }
        envs = {"list-uncached": uncached}
        if args.baseline:
            commands["list-baseline"] = [args.baseline, "--list"]
            commands["version-baseline"] = [args.baseline, "--version"]
        for name, command in commands.items():
            # warm-up: writes the bytecode cache (and the task file cache)
            run_ms(command, cwd, envs.get(name, env))
        runs: dict[str, list[float]] = {name: [] for name in commands}
        cpu_ms: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                wall, cpu = run_ms(command, cwd, envs.get(name, env))
                runs[name].append(wall)
                cpu_ms[name].append(cpu)
        imports = import_times(["-m", "pitstop", "--list"], cwd, env)

    def line(label: str, name: str, aim: float | None) -> str:
        times = runs[name]
        median = statistics.median(times)
        cpu = statistics.median(cpu_ms[name])
        text = (
            f"- {label}: median {median:.1f} ms "
            f"(min {min(times):.1f}, max {max(times):.1f}, {args.runs} runs), "
            f"CPU {cpu:.1f} ms"
        )
        if aim is not None:
            text += f"; {'meets' if median <= aim else 'misses'} the {aim:.0f} ms aim"
        return text

    print(f"`{shlex.join(['python', 'benchmarks/startup.py', *sys.argv[1:]])}`")
    print(
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; "
        f"1-minute load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )
    print()
    built_ins = " + built-ins" if args.core_tasks else ""
    print(line(f"`pitstop --list`, {args.tasks} tasks{built_ins}", "list", LIST_AIM_MS))
    print(line("the same with `PITSTOP_NO_CACHE=1`", "list-uncached", None))
    print(line("`pitstop --version`", "version", VERSION_AIM_MS))
    print(line("`python -c pass`", "bare", None))
    if args.baseline:
        print(line(f"baseline `{args.baseline} --list`", "list-baseline", None))
        print(line(f"baseline `{args.baseline} --version`", "version-baseline", None))
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
