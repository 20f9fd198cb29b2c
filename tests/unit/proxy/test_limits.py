"""The proxy's limits: service keys, the connection limit's fit to the fd limit, Deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pitstop.errors import Location, TaskFileError
from pitstop.supervisor.proxy.limits import Deadline, Gate, connection_limit
from pitstop.taskfile.service import parse_service

WHERE = Location(Path("pitstop.toml"), 3, 1)


def test_service_keys_for_the_proxy_limits() -> None:
    spec = parse_service({"proxy": "127.0.0.1:8080"}, WHERE)
    assert (spec.head_timeout, spec.body_timeout, spec.keepalive_timeout) == (10.0, 30.0, 60.0)
    assert (spec.connect_timeout, spec.response_timeout, spec.max_connections) == (5.0, 60.0, 1000)
    spec = parse_service(
        {
            "proxy": "127.0.0.1:8080",
            "head_timeout": "2s",
            "body_timeout": "1m",
            "keepalive_timeout": 5,
            "connect_timeout": "500ms",
            "response_timeout": "2m30s",
            "max_connections": 50,
        },
        WHERE,
    )
    assert (spec.head_timeout, spec.body_timeout, spec.keepalive_timeout) == (2.0, 60.0, 5.0)
    assert (spec.connect_timeout, spec.response_timeout, spec.max_connections) == (0.5, 150.0, 50)


@pytest.mark.parametrize(
    "raw", [{"head_timeout": "soon"}, {"max_connections": 0}, {"max_connections": "10"}]
)
def test_bad_limit_values_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(TaskFileError):
        parse_service({"proxy": "127.0.0.1:8080", **raw}, WHERE)


def test_the_connection_limit_fits_two_fds_per_connection() -> None:
    assert connection_limit(1000, 65536) == 1000
    assert connection_limit(1000, 1024) == 480


def test_gate_pauses_and_resumes_its_listeners_at_the_limit() -> None:
    class FakeListener:
        def __init__(self) -> None:
            self.serving = True

        def pause(self) -> None:
            self.serving = False

        def resume(self) -> None:
            self.serving = True

    gate = Gate(2)
    listener = FakeListener()
    gate.listeners.append(listener)  # type: ignore[arg-type]
    gate.enter()
    assert listener.serving
    gate.enter()
    assert gate.full() and not listener.serving
    gate.leave()
    assert not gate.full() and listener.serving


def test_deadline_fires_once_at_its_latest_setting() -> None:
    async def run() -> list[float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        deadline = Deadline(loop, lambda: fired.append(loop.time()))
        start = loop.time()
        deadline.set(0.05)
        deadline.set(0.2)  # later: no reschedule, the first timer sleeps again
        await asyncio.sleep(0.4)
        cleared = Deadline(loop, lambda: fired.append(-1.0))
        cleared.set(0.01)
        cleared.clear()
        await asyncio.sleep(0.05)
        return [t - start for t in fired]

    fired = asyncio.run(run())
    assert len(fired) == 1 and fired[0] >= 0.2
