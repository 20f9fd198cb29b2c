"""A service's health: its serving instance's process tree sampled every `sample_interval`,
limits checked on each sample, and each new version compared to the last once it settles.

    sample (worker thread) ──▶ history (the last hour, bounded)
        ├─ a limit crossed ──▶ LimitCrossed event, desktop notification, alert_command
        │                      └─ on_limit = "swap": a fresh instance of the same version
        │                         (Supervisor.replace_instance), backing off like crash restarts
        └─ a new version served `settle` seconds ──▶ ResourceRegression if past the threshold

The monitor only reads the Supervisor (which instance serves, with which command) and asks it
for a fresh instance; it decides nothing else. It works alike under `pitstop up` (one monitor
per service) and single-service `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pitstop.engine.events import Notice, Source
from pitstop.supervisor import events as ev
from pitstop.supervisor.health_text import limit_text
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.resources import Sample, TreeSampler
from pitstop.supervisor.supervisor import Supervisor

log = logging.getLogger(__name__)

HISTORY_S = 3600.0  # the samples of the last hour are kept
REARM_BELOW = 0.9  # a memory alert fires again only after the tree fell under 90 % of the limit
CPU_NOISE = 5.0  # CPU percentage points below which a rise is never called a regression


class HealthMonitor:
    def __init__(
        self, supervisor: Supervisor, emit: Callable[[Any], None], *, notify: bool = True
    ) -> None:
        self.supervisor = supervisor
        self.health = supervisor.spec.health
        self._emit = emit
        self._notify = notify
        interval = self.health.sample_interval
        self.history: deque[Sample] = deque(maxlen=math.ceil(HISTORY_S / interval) + 1)
        self._task: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[None]] = set()  # alerts and swaps under way
        # Versions: the serving instance and the command it runs (a fresh instance from a
        # limit swap runs the same command object; a build makes a new one).
        self._current: int | None = None
        self._command: InstanceCommand | None = None
        self._compare: tuple[int, int, float] | None = None  # (new, previous, serving since)
        # Limits, for the serving instance.
        self._limit_instance: int | None = None
        self._memory_alerted = False
        self._cpu_alerted = False
        self._cpu_over_since: float | None = None
        self._cpu_under_since: float | None = None
        self._last_sample_at: float | None = None
        # Limit swaps of this version, for the backoff.
        self._swap_times: list[float] = []
        self._swapping: asyncio.Task[None] | None = None
        self._gave_up = False

    @property
    def name(self) -> str:
        return self.supervisor.name

    @property
    def latest(self) -> Sample | None:
        """The last sample, if it is of the instance that serves now."""
        if not self.history:
            return None
        last = self.history[-1]
        return last if last.instance == self.supervisor.serving else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"health-{self.name}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._side) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    # ----------------------------------------------------------------- sampling

    async def _run(self) -> None:
        sampler = TreeSampler()
        while True:
            n, pid = self.supervisor.serving, self.supervisor.serving_pid
            if n is not None and pid is not None:
                # /proc reads for a whole tree: never on the event loop.
                sample = await asyncio.to_thread(sampler.sample, pid, n)
                if sample is not None and self.supervisor.serving == n:
                    try:
                        self._take(sample)
                    except Exception:  # a bug here must not end the sampling
                        log.exception("health check of %s failed", self.name)
            await asyncio.sleep(self.health.sample_interval)

    def _take(self, sample: Sample) -> None:
        self.history.append(sample)
        self._follow_version(sample.instance, sample.time)
        self._check_limits(sample)
        self._check_regression(sample.time)
        self._last_sample_at = sample.time

    def _follow_version(self, n: int, now: float) -> None:
        if n == self._current:
            return
        previous, command = self._current, self.supervisor.command
        fresh = command is self._command  # a limit swap: the same version, a new instance
        self._current, self._command = n, command
        if fresh:
            return
        self._swap_times.clear()
        self._gave_up = False
        self._compare = (n, previous, now) if previous is not None else None

    # ----------------------------------------------------------------- limits

    def _check_limits(self, s: Sample) -> None:
        limits = self.health.limits
        if s.instance != self._limit_instance:
            self._limit_instance = s.instance
            self._memory_alerted = self._cpu_alerted = False
            self._cpu_over_since = self._cpu_under_since = None
            self._last_sample_at = None
        if limits.memory is not None:
            if s.rss_bytes > limits.memory and not self._memory_alerted:
                self._memory_alerted = True
                self._crossed(s.instance, "memory", s.rss_bytes, limits.memory)
            elif s.rss_bytes < limits.memory * REARM_BELOW:
                self._memory_alerted = False
        if limits.cpu is not None:
            if s.cpu_percent <= limits.cpu:
                self._cpu_over_since = None
                # Under for as long as it had to be over ends the episode: a dip of a sample
                # or two (a busy machine) does not make the next peak a new alert.
                if self._cpu_under_since is None:
                    self._cpu_under_since = self._last_sample_at or s.time
                if s.time - self._cpu_under_since >= limits.cpu_for:
                    self._cpu_alerted = False
                return
            self._cpu_under_since = None
            if self._cpu_over_since is None:
                # A sample's CPU is the mean since the one before: over since then.
                self._cpu_over_since = self._last_sample_at or s.time
            over_for = s.time - self._cpu_over_since
            if over_for >= limits.cpu_for and not self._cpu_alerted:
                self._cpu_alerted = True
                self._crossed(s.instance, "cpu", s.cpu_percent, limits.cpu)

    def _crossed(self, n: int, limit: str, value: float, threshold: float) -> None:
        action = self._plan_swap(n) if self.health.on_limit == "swap" else "alert"
        event = ev.LimitCrossed(n, limit, float(value), float(threshold), action, service=self.name)
        self._emit(event)
        if self._notify:
            argv = desktop_notification(f"pitstop: {self.name}", limit_text(event))
            if argv is not None:
                self._background(self._quietly(argv))
        if self.health.alert_command:
            self._background(self._alert_command(event))

    def _plan_swap(self, n: int) -> str:
        """Swap now, later (backing off), or no more; what the alert says about it."""
        if self._swapping is not None and not self._swapping.done():
            return "swap under way"
        spec = self.supervisor.spec
        if self._gave_up:
            return "alert only (gave up swapping this version)"
        now = time.monotonic()
        self._swap_times = [t for t in self._swap_times if now - t < spec.crash_window]
        swaps = len(self._swap_times)
        if swaps >= spec.max_crashes:
            self._gave_up = True
            return (
                f"not swapping: {swaps} swaps within {spec.crash_window:g}s did not help; "
                "alert only until the next version"
            )
        delay = (
            0.0
            if swaps == 0
            else min(spec.restart_backoff * 2 ** (swaps - 1), spec.restart_backoff_max)
        )
        self._swap_times.append(now)
        self._swapping = self._background(self._swap_after(delay, n))
        return "swap" if delay == 0 else f"swap in {delay:g}s"

    async def _swap_after(self, delay: float, n: int) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.supervisor.serving == n:  # not replaced meanwhile by a build or a crash
            self.supervisor.replace_instance()

    async def _alert_command(self, event: ev.LimitCrossed) -> None:
        from pitstop.engine import process

        command = self.supervisor.command
        env = {
            **os.environ,
            "PITSTOP_SERVICE": self.name,
            "PITSTOP_INSTANCE": str(event.n),
            "PITSTOP_LIMIT": event.limit,
            "PITSTOP_VALUE": _number(event.value),
            "PITSTOP_THRESHOLD": _number(event.threshold),
            "PITSTOP_ACTION": event.action,
        }
        argv = self.health.alert_command
        try:
            # The values go in the environment, never into a command line.
            result = await process.capture(argv, cwd=command.cwd, env=env)
        except OSError as exc:
            self._warn(event.n, f"alert_command {argv[0]} could not start: {exc.strerror or exc}")
            return
        if result.status != 0:
            said = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            self._warn(
                event.n, f"alert_command exited with status {result.status}: {said[0]}".rstrip()
            )

    async def _quietly(self, argv: list[str]) -> None:
        """A desktop notification: best effort (no display, no D-Bus: nothing to say)."""
        from pitstop.engine import process

        with contextlib.suppress(OSError):
            await process.capture(argv)

    def _warn(self, n: int, text: str) -> None:
        self._emit(Notice("warning", text, Source(self.name, n)))

    def _background(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._side.add(task)
        task.add_done_callback(self._side.discard)
        return task

    # ----------------------------------------------------------------- regressions

    def _check_regression(self, now: float) -> None:
        if self._compare is None:
            return
        n, previous, since = self._compare
        if n != self._current:
            self._compare = None
            return
        settle = self.health.settle
        if now - since < settle:
            return
        self._compare = None
        # The settled half of the new version's samples against as many of the last ones of
        # the previous version (its start-up, and the new one's, do not count).
        after = [s for s in self.history if s.instance == n and s.time >= since + settle / 2]
        before = [s for s in self.history if s.instance == previous][-max(1, len(after)) :]
        if not after or not before:
            return
        rss_before, rss_after = (
            _mean(s.rss_bytes for s in before),
            _mean(s.rss_bytes for s in after),
        )
        cpu_before, cpu_after = (
            _mean(s.cpu_percent for s in before),
            _mean(s.cpu_percent for s in after),
        )
        factor = 1.0 + self.health.regression
        more_memory = rss_after > rss_before * factor
        more_cpu = cpu_after > cpu_before * factor and cpu_after - cpu_before >= CPU_NOISE
        if more_memory or more_cpu:
            self._emit(
                ev.ResourceRegression(
                    n,
                    previous,
                    rss_before,
                    rss_after,
                    cpu_before,
                    cpu_after,
                    self.health.regression,
                    service=self.name,
                )
            )


def _mean(values: Any) -> float:
    found = list(values)
    return sum(found) / len(found) if found else 0.0


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def desktop_notification(title: str, text: str) -> list[str] | None:
    """The command that shows a desktop notification here, if there is one."""
    if sys.platform == "darwin":
        if shutil.which("osascript") is None:
            return None
        return [
            "osascript",
            "-e",
            f"display notification {_applescript(text)} with title {_applescript(title)}",
        ]
    if shutil.which("notify-send") is None:
        return None
    return ["notify-send", "--app-name=pitstop", title, text]


def _applescript(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
