"""Proof of zero downtime: what pitstop's proxy counts (served, failed, per swap and in
total) against what a real load client counted, with tests/apps/port_app.py behind it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import sys
from dataclasses import replace
from pathlib import Path

from pitstop.errors import Location
from pitstop.supervisor.events import ListenerTally, SwapFinished, Traffic
from pitstop.supervisor.frontends import SocketFrontend
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.supervisor import Supervisor
from pitstop.taskfile.service import parse_service
from tests.helpers import async_wait_until
from tests.load import KeepAlive, Load, NewConnections, http_get

from .support import APPS, Harness, run


def port_app(tmp_path: Path, mode: str = "http") -> Harness:
    (tmp_path / "src").write_text("v1")
    spec = parse_service(
        {
            "proxy": "127.0.0.1:0",
            "mode": mode,
            "ready": {"http": "/health"},
            "drain_timeout": "5s",
        },
        Location(tmp_path / "pitstop.toml"),
    )
    # port_app reads its VERSION from the environment; the "artifact" is the version file.
    script = f'VERSION=$(cat version) exec "{sys.executable}" "{APPS / "port_app.py"}"'
    return Harness(tmp_path, spec, InstanceCommand(("/bin/sh", "-c", script), tmp_path))


def test_served_counts_add_up_to_what_the_client_counted_over_several_swaps(
    tmp_path: Path,
) -> None:
    h = port_app(tmp_path)
    versions = ["v2", "v3", "v4"]

    async def scenario() -> tuple[Load, Load, Traffic | None]:
        sup = h.make()
        assert await sup.start()
        address = h.address
        fresh = Load(lambda: NewConnections(address), clients=2)
        kept = Load(lambda: KeepAlive(address), clients=2)
        async with fresh, kept:
            await fresh.async_wait_to_see("v1")
            await kept.async_wait_to_see("v1")
            for version in versions:
                h.release(version)
                await sup.settled()
                await fresh.async_wait_to_see(version)
                await kept.async_wait_to_see(version)
                await fresh.async_wait_for_more(50)
                await kept.async_wait_for_more(50)
        # Both loads have stopped: every request they counted has ended in the proxy.
        traffic = sup.traffic()
        await sup.stop()
        return fresh, kept, traffic

    fresh, kept, traffic = run(scenario())
    assert fresh.failures == [] and kept.failures == []
    assert traffic == Traffic(served=len(fresh.bodies) + len(kept.bodies), failed=0)
    swaps = h.of_type(SwapFinished)
    assert [(s.old, s.new) for s in swaps] == [(1, 2), (2, 3), (3, 4)]
    for swap in swaps:
        assert swap.failed == 0
        assert swap.served is not None and swap.served_old is not None
        assert swap.served == swap.served_old + (swap.served_new or 0)
    # Each window lies inside the run, and the windows do not overlap (each swap settled).
    assert sum(s.served or 0 for s in swaps) <= traffic.served


def test_a_backend_that_resets_shows_as_failed(tmp_path: Path) -> None:
    h = port_app(tmp_path)

    async def scenario() -> tuple[Load, Load, Traffic | None]:
        sup = h.make()
        assert await sup.start()
        address = h.address
        good = Load(lambda: NewConnections(address), clients=1)
        bad = Load(lambda: NewConnections(address, "/reset"), clients=1)
        async with good, bad:
            await good.async_wait_to_see("v1")
            h.release("v2")
            await sup.settled()
            await good.async_wait_to_see("v2")
            await bad.async_wait_for_more(5)
        traffic = sup.traffic()
        await sup.stop()
        return good, bad, traffic

    good, bad, traffic = run(scenario())
    assert good.failures == []
    assert bad.bodies == [] and len(bad.failures) >= 5
    assert all("502" in failure for failure in bad.failures)
    # Every request either client counted is in the proxy's counts, on the right side.
    assert traffic == Traffic(served=len(good.bodies), failed=len(bad.failures))
    [swap] = h.of_type(SwapFinished)
    assert swap.failed is not None and swap.failed > 0
    assert swap.summary.endswith(f"{swap.served:,} served, {swap.failed:,} failed")


def test_tcp_mode_counts_connections(tmp_path: Path) -> None:
    h = port_app(tmp_path, mode="tcp")

    async def scenario() -> tuple[Load, Traffic | None]:
        sup = h.make()
        assert await sup.start()
        address = h.address
        async with Load(lambda: NewConnections(address), clients=2) as load:
            await load.async_wait_to_see("v1")
            h.release("v2")
            await sup.settled()
            await load.async_wait_to_see("v2")
        traffic = sup.traffic()
        await sup.stop()
        return load, traffic

    load, traffic = run(scenario())
    assert load.failures == []
    # One request per connection: each connection the client made was served once.
    assert traffic == Traffic(served=len(load.bodies), failed=0)


def test_socket_mode_swaps_count_what_the_listeners_dropped_and_reset(tmp_path: Path) -> None:
    """With socket hand-off the kernel gives connections straight to the instance and keeps
    no count of what a listener accepted: no served counts (None, not a false 0), but what
    the listening sockets dropped (full queue) and reset (closed with a queue), both 0."""
    h = Harness.fd_app(tmp_path, "v1")

    async def scenario() -> tuple[Load, ListenerTally | Traffic | None]:
        sup = h.make()
        assert await sup.start()
        async with Load.new_connections(h.address, clients=4) as load:
            await load.async_wait_to_see("v1")
            for version in ("v2", "v3"):
                h.release(version)
                await sup.settled()
                await load.async_wait_to_see(version)
                await load.async_wait_for_more(20)
        traffic = sup.traffic()
        await sup.stop()
        return load, traffic

    load, traffic = run(scenario())
    assert load.failures == []
    assert traffic == ListenerTally(dropped=0, reset=0)
    swaps = h.of_type(SwapFinished)
    assert [(s.old, s.new) for s in swaps] == [(1, 2), (2, 3)]
    for swap in swaps:
        assert (swap.served, swap.served_old, swap.served_new) == (None, None, None)
        assert (swap.failed, swap.dropped, swap.reset) == (0, 0, 0)
        assert (
            swap.summary
            == f"swap #{swap.old} → #{swap.new} in {swap.ms} ms · listeners: 0 dropped, 0 reset"
        )


STUCK_APP = """
import os, signal, socket, sys, time
# An instance that says it is ready and never accepts (a hung server), unless its version
# file says otherwise: then it is fd_app.
if open(sys.argv[1]).read().strip() != "stuck":
    os.execv(sys.executable, [sys.executable, {fd_app!r}, sys.argv[1]])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
while True:
    time.sleep(1)
"""


def test_socket_mode_counts_drops_at_a_full_queue_and_resets_at_a_closed_one(
    tmp_path: Path,
) -> None:
    """A hung instance behind a listener with room for one connection: the next clients'
    SYNs are dropped (counted once per attempt); the swap away from it waits drain_timeout,
    then closes its socket with one connection still queued (reset). The dropped clients
    land on the new version's socket when they try again."""
    (tmp_path / "stuck_app.py").write_text(STUCK_APP.format(fd_app=str(APPS / "fd_app.py")))
    h = Harness.fd_app(tmp_path, "stuck", drain_timeout="300ms")
    h.command = InstanceCommand(
        (sys.executable, str(tmp_path / "stuck_app.py"), str(tmp_path / "version")), tmp_path
    )

    async def scenario() -> tuple[list[str], ListenerTally | Traffic | None]:
        assert h.command is not None
        sup = Supervisor(
            h.spec, h.command, h.build, h.events.append, frontend=SocketFrontend(h.spec, backlog=0)
        )
        h.supervisor = sup
        assert await sup.start()
        queued = await asyncio.to_thread(socket.create_connection, h.address, 5)
        waiting = [asyncio.create_task(asyncio.to_thread(reached, h.address)) for _ in range(2)]
        await async_wait_until(
            lambda: (t := sup.traffic()) is not None and t.dropped >= 2, 20, "two drops"
        )
        h.release("v2")
        await sup.settled()
        results = [await t for t in waiting]
        with contextlib.suppress(OSError):
            results.append(repr(queued.recv(100)))  # b'' or a reset: it was never accepted
        queued.close()
        traffic = sup.traffic()
        await sup.stop()
        return results, traffic

    results, traffic = run(scenario())
    assert results[:2] == ["v2", "v2"]  # dropped, then served by the new version
    assert isinstance(traffic, ListenerTally)
    assert traffic.reset == 1 and traffic.dropped >= 2
    [swap] = h.of_type(SwapFinished)
    assert swap.reset == 1 and swap.dropped is not None
    assert swap.failed == swap.dropped + swap.reset
    assert swap.served is None


def reached(address: tuple[str, int]) -> str:
    """A request that waits as long as a client's kernel retries its SYN."""
    return http_get(address, timeout=30)


def test_the_stream_path_and_no_backend_are_counted(tmp_path: Path) -> None:
    """Chunked bodies go through the stream path (http.py), not the fast path: counted the
    same. A request that finds no instance (the first build failed) gets 503: failed."""
    h = port_app(tmp_path)
    h.spec = replace(h.spec, ready_timeout=0.5)
    (tmp_path / "src").write_text("broken")

    async def scenario() -> tuple[list[int], Traffic | None]:
        sup = h.make()
        assert not await sup.start()
        statuses = [await asyncio.to_thread(post_chunked, h.address)]  # 503: nothing serves
        h.release("v1")
        await sup.settled()
        for _ in range(3):
            statuses.append(await asyncio.to_thread(post_chunked, h.address))
        traffic = sup.traffic()
        await sup.stop()
        return statuses, traffic

    statuses, traffic = run(scenario())
    assert statuses == [503, 200, 200, 200]
    assert traffic == Traffic(served=3, failed=1)


def post_chunked(address: tuple[str, int]) -> int:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("POST", "/echo", body=iter([b"hello ", b"world"]), encode_chunked=True)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
