"""Swaps through the proxy with real $PORT apps: no failed request, no closed connection."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import wait_until
from tests.load import Load

from .support import HOST, App, ProxyThread, get, read_until


def run_swaps(proxy: ProxyThread, apps: Callable[..., App], n: int, kind: str) -> None:
    current = apps("v0", kind)
    proxy.swap(current, None)
    with Load.keep_alive((HOST, proxy.port), clients=4) as load:
        for i in range(1, n + 1):
            load.wait_for_more(1, each=True)
            new = apps(f"v{i}", kind)
            assert proxy.swap(new, current), f"v{i - 1} did not drain"
            current = new
        # Two: the first may be a request that was answered by the old instance before it
        # drained, but counted only now; the second started after the swap.
        load.wait_for_more(2, each=True)
    assert load.failures == []
    for worker in load.workers:
        assert worker.bodies[-1] == f"v{n}"
        assert len(set(worker.bodies)) > 1  # the keep-alive connection did move to new instances


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_twenty_swaps_under_keepalive_load(loop: str, apps, proxies) -> None:
    run_swaps(proxies("http", loop), apps, 20, "python")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_swaps_with_a_node_http_app(apps, proxies) -> None:
    run_swaps(proxies(), apps, 5, "node")


def test_slow_request_in_flight_completes_on_the_old_instance(apps, proxies) -> None:
    proxy = proxies()
    old = apps("v1")
    proxy.swap(old, None)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, proxy.connection(), "/slow?s=1")
        old.wait_line("SLOW v1")
        new = apps("v2")
        proxy.set_backend(new.backend)
        assert get(proxy.connection()) == (200, "v2")
        assert proxy.run(proxy.proxy.in_flight, old.backend) == 1
        assert proxy.drain(old.backend)
        assert slow.result(10) == (200, "v1")


def test_request_waits_for_the_first_backend(apps, proxies) -> None:
    proxy = proxies(wait_timeout=30.0)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get, proxy.connection())
        wait_until(lambda: proxy.proxy.waiting == 1)
        proxy.swap(apps("v1"), None)
        assert pending.result(10) == (200, "v1")


def test_no_backend_gives_503_with_the_reason(proxies) -> None:
    proxy = proxies(wait_timeout=0.1)
    proxy.run(proxy.proxy.unavailable, "build failed: cargo exited with 101")
    conn = proxy.connection()
    status, body = get(conn)
    assert status == 503
    assert body.strip() == "pitstop: build failed: cargo exited with 101"


def test_refused_backend_gives_502_and_keeps_the_client(apps, proxies) -> None:
    proxy = proxies()
    dead = apps("dead")
    dead.stop()
    proxy.set_backend(dead.backend)
    conn = proxy.connection()
    status, body = get(conn)
    assert status == 502
    assert "refused" in body
    proxy.swap(apps("v1"), None)
    assert get(conn) == (200, "v1")


def test_websocket_stays_on_its_instance_until_closed(apps, proxies) -> None:
    proxy = proxies()
    old = apps("v1")
    proxy.swap(old, None)
    with socket.create_connection((HOST, proxy.port), timeout=10) as ws:
        ws.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = read_until(ws, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        assert ws_echo(ws, "hi") == "v1:hi"
        new = apps("v2")
        proxy.set_backend(new.backend)
        assert get(proxy.connection()) == (200, "v2")
        assert ws_echo(ws, "still") == "v1:still"
        assert proxy.run(proxy.proxy.in_flight, old.backend) == 1
        ws.sendall(b"\x88\x80\x00\x00\x00\x00")  # masked close frame
        assert read_until(ws, b"\x88\x00").endswith(b"\x88\x00")
    assert proxy.drain(old.backend)


def ws_echo(ws: socket.socket, text: str) -> str:
    payload = text.encode()
    ws.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
    head = recv_exact(ws, 2)
    return recv_exact(ws, head[1]).decode()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_tcp_mode_swap_keeps_connections_on_their_instance(apps, proxies) -> None:
    proxy = proxies("tcp")
    old = apps("v1")
    proxy.swap(old, None)
    pinned = proxy.connection()
    assert get(pinned) == (200, "v1")
    new = apps("v2")
    proxy.set_backend(new.backend)
    assert get(proxy.connection()) == (200, "v2")
    assert get(pinned) == (200, "v1")  # the whole connection stays where it started
    assert proxy.run(proxy.proxy.in_flight, old.backend) == 1
    pinned.close()
    assert proxy.drain(old.backend)


def test_tcp_mode_drain_timeout_closes_what_is_left(apps, proxies) -> None:
    proxy = proxies("tcp")
    old = apps("v1")
    proxy.swap(old, None)
    pinned = proxy.connection()
    assert get(pinned) == (200, "v1")
    proxy.set_backend(apps("v2").backend)
    assert proxy.drain(old.backend, timeout=0.1) is False
    with pytest.raises((ConnectionError, OSError)):
        get(pinned)
