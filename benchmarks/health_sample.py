"""What one resource sample of a service's process tree costs (supervisor/resources.py), for
trees of 1, 5 and 20 processes: the time of `TreeSampler.sample` (on a worker thread in
pitstop, so it never blocks the event loop), median and 95th percentile of 200 samples.

    .venv/bin/python benchmarks/health_sample.py
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import sys
import time

from pitstop.supervisor.resources import TreeSampler


def tree(children: int) -> subprocess.Popen[bytes]:
    script = "".join("sleep 600 & " for _ in range(children)) + "wait"
    return subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)


def main() -> None:
    print(f"$ {sys.executable} {' '.join(sys.argv)}")
    print(
        f"# {os.cpu_count()} CPUs, Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    for children in (0, 4, 19):
        proc = tree(children)
        try:
            sampler = TreeSampler()
            while (s := sampler.sample(proc.pid, 1)) is None or s.processes < children + 1:
                time.sleep(0.01)
            times = []
            for _ in range(200):
                start = time.perf_counter()
                sampler.sample(proc.pid, 1)
                times.append(time.perf_counter() - start)
            times.sort()
            print(
                f"{children + 1:3d} processes: median {statistics.median(times) * 1e3:.2f} ms, "
                f"p95 {times[189] * 1e3:.2f} ms"
            )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    main()
