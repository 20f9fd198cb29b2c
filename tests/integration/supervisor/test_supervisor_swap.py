"""Swaps, rollbacks, crashes and stops with real processes on 127.0.0.1 (socket hand-off)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from pitstop.supervisor.events import (
    BuildCancelled,
    BuildFailed,
    CrashRestart,
    GaveUp,
    InstanceOutput,
    InstanceStopped,
    RolledBack,
    Status,
    Swapped,
)
from tests.helpers import async_wait_until, pid_alive
from tests.load import Load, http_get

from .support import DEADLINE, Harness, run


def test_swaps_under_continuous_requests_lose_none(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")

    async def scenario() -> Load:
        sup = h.make()
        assert await sup.start()
        async with Load.new_connections(h.address, clients=4) as load:
            await load.async_wait_to_see("v1")
            for version in ("v2", "v3", "v4", "v5", "v6"):
                h.release(version)
                await sup.settled()
                await load.async_wait_to_see(version)
                await load.async_wait_for_more(20)
        await sup.stop()
        return load

    load = run(scenario())
    print(f"{len(load.bodies)} requests, {len(load.failures)} failed")
    assert load.failures == []
    assert [e.new for e in h.of_type(Swapped)] == [1, 2, 3, 4, 5, 6]
    assert set(load.bodies) == {"v1", "v2", "v3", "v4", "v5", "v6"}


def test_broken_build_keeps_the_old_version_answering(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")

    async def scenario() -> None:
        sup = h.make()
        assert await sup.start()
        h.release("v2 broken")
        await sup.settled()
        assert h.of_type(BuildFailed) == [BuildFailed(2, service="service")]
        assert h.of_type(Status)[-1].text == "serving #1 · build #2 failed"
        assert await h.get() == "v1"
        h.release("v3")
        await sup.settled()
        assert await h.get() == "v3"
        await sup.stop()

    run(scenario())
    assert "error: src is broken" in h.build_output


def test_first_build_failing_leaves_nothing_serving_until_a_change(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1 broken")

    async def scenario() -> None:
        sup = h.make()
        assert not await sup.start()
        assert h.of_type(Status)[-1].text == "nothing serving · build #1 failed"
        h.release("v2")
        await sup.settled()
        assert await h.get() == "v2"
        await sup.stop()

    run(scenario())


def test_new_version_that_exits_at_once_is_rolled_back(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")

    async def scenario() -> None:
        sup = h.make()
        assert await sup.start()
        h.release("v2 --exit-now")
        await sup.settled()
        (rolled,) = h.of_type(RolledBack)
        assert rolled.n == 2 and rolled.serving == 1
        assert "exited with status 3 before it was ready" in rolled.reason
        assert sup.serving == 1
        assert await h.get() == "v1"
        await sup.stop()

    run(scenario())


def test_new_version_never_ready_gets_no_connection_and_is_rolled_back(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1", ready_timeout="5s")

    async def scenario() -> Load:
        sup = h.make()
        assert await sup.start()
        async with Load.new_connections(h.address, clients=2) as load:
            await load.async_wait_to_see("v1")
            h.release("v2 --never-ready")
            # #2 accepts on its own socket, but new connections are steered to #1's.
            await h.wait_event(InstanceOutput, lambda e: e.n == 2 and e.line == "accepting")
            await load.async_wait_for_more(200)
            assert sup.instance_pids() and len(sup.instance_pids()) == 2
            await sup.settled()
            await load.async_wait_for_more(20)
        (rolled,) = h.of_type(RolledBack)
        assert rolled.reason == "not ready after 5s"
        assert sup.instance_pids() == [sup.serving_pid]
        assert await h.get() == "v1"
        await sup.stop()
        return load

    load = run(scenario())
    assert load.failures == []
    assert set(load.bodies) == {"v1"}


def test_crash_restart_takes_over_the_waiting_connections(tmp_path: Path) -> None:
    """The serving instance dies under load: the restarted one gets the same socket, so the
    connections that queued meanwhile are answered, not reset."""
    h = Harness.fd_app(tmp_path, "v1", restart_backoff="50ms")

    async def scenario() -> Load:
        sup = h.make()
        assert await sup.start()
        async with Load.new_connections(h.address, clients=2) as load:
            await load.async_wait_to_see("v1")
            first = sup.serving_pid
            assert first is not None
            # The app SIGKILLs itself while it holds this one connection; the load's
            # connections wait in the shared listen queue meanwhile.
            with pytest.raises((OSError, ConnectionError)):
                await asyncio.to_thread(http_get, h.address, 5.0, "/crash")
            await h.wait_event(CrashRestart)
            await async_wait_until(lambda: sup.serving_pid not in (None, first), DEADLINE)
            await load.async_wait_for_more(50)
            h.release("v2")
            await sup.settled()
            await load.async_wait_to_see("v2")
        await sup.stop()
        return load

    load = run(scenario())
    # fd_app serves one connection at a time: the crash takes only the /crash request with
    # it; every load connection queued meanwhile is answered by #1's successor.
    assert load.failures == []
    assert [e.new for e in h.of_type(Swapped)] == [1, 1, 2]


def test_crashes_restart_with_backoff_then_give_up(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1 --crash-after-ready", restart_backoff="50ms", max_crashes=3)

    async def scenario() -> None:
        sup = h.make()
        await sup.start()
        gave_up = await h.wait_event(GaveUp)
        assert "crashed 3 times" in gave_up.reason
        assert [e.delay for e in h.of_type(CrashRestart)] == [0.05, 0.1]
        assert sup.serving is None
        assert h.of_type(Status)[-1].text.endswith("waiting for a change")
        # The next change gets a fresh start.
        h.release("v2")
        await sup.settled()
        assert await h.get() == "v2"
        await sup.stop()

    run(scenario())


def test_a_change_during_a_build_cancels_it(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")
    pid_file = tmp_path / "build.pid"

    async def scenario() -> None:
        sup = h.make()
        assert await sup.start()
        h.release("v2 slow")
        await async_wait_until(pid_file.exists, DEADLINE)
        await async_wait_until(lambda: pid_file.read_text().strip(), DEADLINE)
        build_pid = int(pid_file.read_text())
        assert pid_alive(build_pid)
        h.release("v3")
        await h.wait_event(BuildCancelled)
        assert not pid_alive(build_pid)
        await sup.settled()
        assert await h.get() == "v3"
        assert [e.new for e in h.of_type(Swapped)] == [1, 3]
        await sup.stop()

    run(scenario())


def test_a_change_during_a_swap_is_queued(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")

    async def scenario() -> None:
        sup = h.make()
        assert await sup.start()
        h.release("v2")
        # Wait until instance #2 is starting (the build is over), then change again.
        await async_wait_until(lambda: "starting #2" in h.of_type(Status)[-1].text, DEADLINE)
        h.release("v3")
        await sup.settled()
        assert h.of_type(BuildCancelled) == []
        assert [e.new for e in h.of_type(Swapped)] == [1, 2, 3]
        assert await h.get() == "v3"
        await sup.stop()

    run(scenario())


def test_stop_leaves_no_process_and_frees_the_port(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")

    async def scenario() -> tuple[list[int], tuple[str, int]]:
        sup = h.make()
        assert await sup.start()
        h.release("v2")
        await sup.settled()
        pids = sup.instance_pids()
        await sup.stop()
        return pids, h.address

    pids, address = run(scenario())
    assert pids and not any(pid_alive(p) for p in pids)
    assert {e.n for e in h.of_type(InstanceStopped)} == {1, 2}
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    assert not any(p.name.startswith("notify") for p in tmp_path.iterdir())


def test_unix_socket_listen_address(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    h = Harness.fd_app(tmp_path, "v1", listen=f"unix:{path}")

    async def scenario() -> None:
        sup = h.make()
        assert await sup.start()
        assert path.exists()
        await sup.stop()

    run(scenario())
    assert not os.path.exists(path)
