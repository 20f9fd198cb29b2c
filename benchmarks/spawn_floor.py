"""The floor under pitstop's per-task cost: a bare asyncio loop starting `true` children.

    .venv/bin/python benchmarks/spawn_floor.py [--tasks 1000] [--jobs 2] [--work-us 0,100,250]

Each child is started the way pitstop's fast path starts one (`os.posix_spawn` in a new
session, stdout and stderr on two pipes, its exit learnt through a pidfd watched by the
loop), at most `--jobs` at a time, with no task logic at all; `--work-us` adds that much
busy Python per child, as a stand-in for a task runner's own work. GNU make running the same
number of `@true` recipes at the same `-j` is timed in the same turns. The gap between make
and the 0 µs row is what Python and asyncio cost before any task logic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRUE = shutil.which("true") or "/bin/true"


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def spawn_all(tasks: int, jobs: int, work: float) -> float:
    loop = asyncio.get_running_loop()
    env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    slots = asyncio.Semaphore(jobs)

    async def one() -> None:
        async with slots:
            busy(work / 2)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            pid = os.posix_spawn(
                TRUE,
                ["true"],
                env,
                file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
                setsigdef=(signal.SIGPIPE,),
                setsid=True,
            )
            os.close(out_w)
            os.close(err_w)
            pidfd = os.pidfd_open(pid)
            exited = loop.create_future()

            def reap() -> None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                os.waitpid(pid, 0)
                exited.set_result(None)

            loop.add_reader(pidfd, reap)
            await exited
            os.close(out_r)
            os.close(err_r)
            busy(work / 2)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(tasks)))
    return time.perf_counter() - started


def make_time(tasks: int, jobs: int, folder: Path) -> float:
    names = [f"t{i}" for i in range(tasks)]
    lines = [".PHONY: all " + " ".join(names), "all: " + " ".join(names)]
    lines += [f"{name}:\n\t@true" for name in names]
    (folder / "Makefile").write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    subprocess.run(["make", f"-j{jobs}", "all"], cwd=folder, check=True, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work-us", default="0,100,250", help="busy Python per child (µs)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not hasattr(os, "pidfd_open") or shutil.which("make") is None:
        print("needs Linux with pidfds, and GNU make", file=sys.stderr)
        return 1
    works = [int(w) for w in args.work_us.split(",")]
    runs: dict[str, list[float]] = {"make": [], **{f"{w} us": [] for w in works}}
    with tempfile.TemporaryDirectory(prefix="pitstop-floor-") as tmp:
        for _ in range(args.repeat):  # turns, so that a busy moment hits all alike
            runs["make"].append(make_time(args.tasks, args.jobs, Path(tmp)))
            for w in works:
                runs[f"{w} us"].append(asyncio.run(spawn_all(args.tasks, args.jobs, w / 1e6)))
    load = os.getloadavg()[0]
    print(
        f"{args.tasks} children of `true`, -j{args.jobs}, median of {args.repeat} (load {load:.2f})"
    )
    base = statistics.median(runs["make"])
    for name, times in runs.items():
        median = statistics.median(times)
        label = "GNU make" if name == "make" else f"asyncio + posix_spawn, {name} of Python"
        print(f"  {label:<42} {median:.3f} s  {median / base:.2f}x make")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
