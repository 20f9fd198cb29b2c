"""Shim cost: how long the exec shim (which moves the listening sockets to fds 3, 4, ...) adds
to the start of a service instance.

    .venv/bin/python benchmarks/shim.py [--runs 20]

Times `/bin/true` started directly and through `sockets.shim_argv` (a `python -S` that
moves no descriptor, then execs), each `--runs` times, alternating, and prints the medians
and their difference: the cost the shim adds to every instance start.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pitstop.supervisor import sockets  # noqa: E402


def run_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, timeout=30)
    return 1000 * (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    direct_argv = ["/bin/true"]
    shimmed_argv = sockets.shim_argv(direct_argv, [])
    run_ms(direct_argv)  # warm-up: the page cache, python's own files
    run_ms(shimmed_argv)
    direct: list[float] = []
    shimmed: list[float] = []
    for _ in range(args.runs):  # alternating, so a busy moment hits both alike
        direct.append(run_ms(direct_argv))
        shimmed.append(run_ms(shimmed_argv))

    print(f"`{shlex.join(['python', 'benchmarks/shim.py', *sys.argv[1:]])}`")
    print(
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()})"
    )
    print()
    d, s = statistics.median(direct), statistics.median(shimmed)
    print(f"- `/bin/true` directly: median {d:.1f} ms ({args.runs} runs)")
    print(f"- through the shim: median {s:.1f} ms")
    print(f"- the shim adds {s - d:.1f} ms per instance start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
