"""One sample of a process tree's resource use (the instance and every child), with psutil.

psutil is imported on first use: only services load it, never `pitstop --list` or a run. A
sample reads /proc for each process of the tree, so it runs on a worker thread (health.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil


@dataclass(frozen=True)
class Sample:
    time: float  # time.monotonic()
    instance: int  # the instance number it was taken of
    cpu_percent: float  # percent of one CPU since the previous sample (200 = two CPUs)
    rss_bytes: int
    open_fds: int
    threads: int
    processes: int


class TreeSampler:
    """Samples one tree after another. CPU percent is measured between two calls, so the
    sampler keeps each process it has seen (by pid and start time, which a reused pid does
    not share) and forgets those that are gone."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], psutil.Process] = {}

    def sample(self, pid: int, instance: int) -> Sample | None:
        """The tree under `pid`; None if `pid` is gone."""
        import psutil

        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        seen: dict[tuple[int, float], psutil.Process] = {}
        cpu = 0.0
        rss = fds = threads = count = 0
        for proc in procs:
            try:
                key = (proc.pid, proc.create_time())
                known = self._seen.get(key, proc)
                with known.oneshot():
                    # The first call of a process it has not seen says 0.0 (no interval yet).
                    cpu += known.cpu_percent(None)
                    rss += known.memory_info().rss
                    threads += known.num_threads()
                    with contextlib.suppress(psutil.AccessDenied, AttributeError):
                        fds += known.num_fds()
                seen[key] = known
                count += 1
            except psutil.Error:
                continue  # ended while we looked: it uses nothing any more
        self._seen = seen
        if not count:
            return None
        return Sample(time.monotonic(), instance, cpu, rss, fds, threads, count)
