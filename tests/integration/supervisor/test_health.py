"""The health monitor over a real Supervisor and real processes (tests/apps/leaky_app.py,
whose BALLAST_MB is memory a version keeps from its start): a version that needs much more
memory than the one before is named once it settles; one that needs about the same is not;
an instance that crosses its limit right after every swap is swapped with a backoff, then no
more (alerts only), as crash restarts give up."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pitstop.errors import Location
from pitstop.supervisor.events import LimitCrossed, ResourceRegression, Swapped
from pitstop.supervisor.health import HealthMonitor
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.supervisor import Supervisor
from pitstop.taskfile.service import parse_service
from tests.helpers import async_wait_until

from .support import APPS, DEADLINE, run

LEAKY = APPS / "leaky_app.py"


def _command(root: Path, ballast_mb: int) -> InstanceCommand:
    import os

    env = {**os.environ, "BALLAST_MB": str(ballast_mb)}
    return InstanceCommand((sys.executable, str(LEAKY)), root, env)


def _spec(root: Path, **keys: Any) -> Any:
    raw = {"proxy": "127.0.0.1:0", "sample_interval": "100ms", **keys}
    return parse_service(raw, Location(root / "pitstop.toml"))


def test_a_settled_version_using_more_memory_is_named_with_both_values(tmp_path: Path) -> None:
    events: list[Any] = []
    ballasts = iter([0, 80, 80])

    async def build(_changes: frozenset[Path]) -> InstanceCommand:
        return _command(tmp_path, next(ballasts))

    async def scenario() -> None:
        spec = _spec(tmp_path, settle="1s")
        sup = Supervisor(spec, _command(tmp_path, 0), build, events.append, name="api")
        monitor = HealthMonitor(sup, events.append, notify=False)
        monitor.start()
        try:
            assert await sup.start()
            await async_wait_until(lambda: monitor.latest is not None, DEADLINE, "a sample")
            sup.changed()  # version 2 keeps 80 MiB more
            await sup.settled()
            await async_wait_until(
                lambda: any(isinstance(e, ResourceRegression) for e in events),
                DEADLINE,
                "the regression warning",
            )
            sup.changed()  # version 3 keeps as much as version 2: nothing to say
            await sup.settled()
            assert sup.serving == 3
            # Settled and compared: samples of #3 from past its settle time.
            await async_wait_until(lambda: monitor.latest is not None, DEADLINE, "a sample of #3")
            start = next(s.time for s in monitor.history if s.instance == 3)
            await async_wait_until(
                lambda: any(s.instance == 3 and s.time > start + 1.5 for s in monitor.history),
                DEADLINE,
                "#3 settled",
            )
        finally:
            await monitor.stop()
            await sup.stop()

    run(scenario())
    (warning,) = [e for e in events if isinstance(e, ResourceRegression)]
    assert (warning.n, warning.previous, warning.service) == (2, 1, "api")
    assert warning.rss_after > warning.rss_before + 60 * 2**20
    assert warning.threshold == 0.5
    from pitstop.supervisor.health_text import regression_text

    text = regression_text(warning)
    assert text.startswith("#2 uses more than #1: RSS ") and "MiB →" in text


def test_crossing_right_after_each_swap_backs_off_then_gives_up(tmp_path: Path) -> None:
    events: list[Any] = []

    async def scenario() -> None:
        # Every instance keeps 80 MiB from its start: past the limit at once, whatever runs.
        spec = _spec(
            tmp_path,
            limits={"memory": "64MiB"},
            on_limit="swap",
            max_crashes=3,
            crash_window="60s",
            restart_backoff="100ms",
        )
        sup = Supervisor(spec, _command(tmp_path, 80), None, events.append, name="api")
        monitor = HealthMonitor(sup, events.append, notify=False)
        monitor.start()
        try:
            assert await sup.start()

            def crossed() -> list[LimitCrossed]:
                return [e for e in events if isinstance(e, LimitCrossed)]

            await async_wait_until(
                lambda: any(e.action.startswith("not swapping") for e in crossed()),
                DEADLINE,
                "giving up",
            )
            serving = sup.serving
            assert serving is not None
            # Sampled on, still past the limit: no more swaps, and no second alert for it.
            seen = len(monitor.history)
            await async_wait_until(lambda: len(monitor.history) > seen + 10, DEADLINE, "samples")
            assert sup.serving == serving
        finally:
            await monitor.stop()
            await sup.stop()

    run(scenario())
    actions = [(e.n, e.action) for e in events if isinstance(e, LimitCrossed)]
    assert [a for _n, a in actions[:3]] == ["swap", "swap in 0.1s", "swap in 0.2s"], actions
    assert actions[3][1].startswith("not swapping: 3 swaps within 60s"), actions
    assert len(actions) == 4, actions
    assert [n for n, _a in actions] == [1, 2, 3, 4]
    assert [e.new for e in events if isinstance(e, Swapped)] == [1, 2, 3, 4]


def test_a_sample_covers_the_instance_and_its_children(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from pitstop.supervisor.resources import TreeSampler
    from tests.helpers import wait_until

    # A shell with two children, one of which keeps 40 MiB.
    hold = f"{sys.executable} -c \"import sys; b = b'x' * (40 << 20); print(1, flush=True); sys.stdin.read()\""
    shell = subprocess.Popen(
        ["/bin/sh", "-c", f"sleep 60 & {hold}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: the test ends the whole tree
    )
    try:
        assert shell.stdout is not None and shell.stdout.readline() == "1\n"
        sampler = TreeSampler()
        sample = wait_until(lambda: sampler.sample(shell.pid, 7), 10, "a sample")
        assert sample.processes == 3 and sample.instance == 7
        assert sample.rss_bytes > 40 << 20
        assert sample.threads >= 3 and sample.open_fds >= 3
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    assert TreeSampler().sample(shell.pid, 7) is None  # gone: nothing to sample


def test_cpu_held_past_its_limit_alerts_once(tmp_path: Path) -> None:
    # 5 %: a busy loop stays above it even on a crowded machine (a dip would re-arm it).
    events: list[Any] = []

    async def scenario() -> None:
        raw = {
            "listen": "127.0.0.1:0",
            "sample_interval": "100ms",
            "limits": {"cpu": "5%", "cpu_for": "500ms"},
        }
        spec = parse_service(raw, Location(tmp_path / "pitstop.toml"))
        busy = InstanceCommand((sys.executable, "-c", "while True: pass"), tmp_path)
        sup = Supervisor(spec, busy, None, events.append, name="spin")
        monitor = HealthMonitor(sup, events.append, notify=False)
        monitor.start()
        try:
            assert await sup.start()
            pid = sup.serving_pid
            await async_wait_until(
                lambda: any(isinstance(e, LimitCrossed) for e in events), DEADLINE, "the alert"
            )
            seen = len(monitor.history)
            await async_wait_until(lambda: len(monitor.history) > seen + 10, DEADLINE, "samples")
            assert sup.serving_pid == pid  # "alert" only tells
        finally:
            await monitor.stop()
            await sup.stop()

    run(scenario())
    (alert,) = [e for e in events if isinstance(e, LimitCrossed)]
    assert (alert.limit, alert.threshold, alert.action, alert.n) == ("cpu", 5.0, "alert", 1)
    assert alert.value > 5.0
