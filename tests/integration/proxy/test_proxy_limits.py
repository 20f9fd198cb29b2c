"""Slow, idle and numerous clients against the proxy's timeouts and connection limit (issue 9).

The timeouts are set short (1 s) and every wait has a generous deadline, so these tests
assert what happens, not how fast: a slow client gets 408 and EOF, an idle one EOF, while a
well-behaved client keeps getting answers the whole time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pitstop.supervisor.proxy.server import Timeouts
from tests.helpers import wait_until

from .support import DEADLINE, HOST, App, ProxyThread, get, read_until

# Short for what is tested; keep-alive long enough that the well-behaved client, whose
# thread a loaded machine may not run for a while, is never cut between two requests.
SHORT = Timeouts(head=1.0, body=1.0, keepalive=60.0, connect=5.0, response=60.0)
IDLE = Timeouts(head=1.0, body=1.0, keepalive=3.0, connect=5.0, response=60.0)
GENEROUS = 20.0  # the configured timeout plus this is when a test gives up


class WellBehaved(threading.Thread):
    """Keep-alive GETs until stopped; every failure is kept to be asserted on."""

    def __init__(self, proxy: ProxyThread) -> None:
        super().__init__(daemon=True)
        self.proxy = proxy
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = self.proxy.connection()
        while not self.stopping.is_set():
            try:
                assert get(conn) == (200, "v1")
                self.ok += 1
            except Exception as exc:  # every failure counts
                self.failures.append(repr(exc))
                conn = self.proxy.connection()

    def stop(self) -> None:
        self.stopping.set()
        self.join(DEADLINE)


@pytest.fixture(params=["asyncio", "uvloop"])
def proxy(request, apps: Callable[..., App], proxies) -> ProxyThread:
    proxy: ProxyThread = proxies("http", request.param, timeouts=SHORT)
    proxy.swap(apps("v1"), None)
    return proxy


def read_to_eof(sock: socket.socket) -> bytes:
    sock.settimeout(IDLE.keepalive + GENEROUS)
    return read_until(sock, b"")


def test_slowloris_gets_408_and_is_closed(proxy: ProxyThread) -> None:
    client = WellBehaved(proxy)
    client.start()
    with socket.create_connection((HOST, proxy.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        answer = b""
        deadline = time.monotonic() + SHORT.head + GENEROUS
        # A header byte every 200 ms: always active, never done.
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X")
            except OSError:
                break
            sock.settimeout(0.2)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            answer += data
            break  # the answer has begun: stop sending, read the rest
        answer += read_to_eof(sock)
    client.stop()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert client.failures == [] and client.ok > 0


def test_slow_body_gets_408_and_is_closed(proxy: ProxyThread) -> None:
    client = WellBehaved(proxy)
    client.start()
    with socket.create_connection((HOST, proxy.port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        answer = read_to_eof(sock)
    client.stop()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert client.failures == [] and client.ok > 0


def test_slow_streamed_body_gets_408_and_is_closed(proxy: ProxyThread) -> None:
    with socket.create_connection((HOST, proxy.port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
        answer = read_to_eof(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert get(proxy.connection()) == (200, "v1")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_idle_keepalive_connection_is_closed(loop: str, apps: Callable[..., App], proxies) -> None:
    proxy: ProxyThread = proxies("http", loop, timeouts=IDLE)
    proxy.swap(apps("v1"), None)
    client = WellBehaved(proxy)
    client.start()
    with socket.create_connection((HOST, proxy.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_until(sock, b"\r\n\r\nv1")
        rest = read_to_eof(sock)  # no response is due: just EOF
    client.stop()
    assert first.startswith(b"HTTP/1.1 200") and rest == b""
    assert client.failures == [] and client.ok > 0


def test_a_connection_that_never_sends_is_closed(proxy: ProxyThread) -> None:
    with socket.create_connection((HOST, proxy.port)) as sock:
        assert read_to_eof(sock) == b""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tcp_nodelay_on_client_and_upstream_sockets(
    loop: str, apps: Callable[..., App], proxies
) -> None:
    proxy: ProxyThread = proxies("http", loop)
    proxy.swap(apps("v1"), None)
    conn = proxy.connection()
    assert get(conn) == (200, "v1")

    def nodelay() -> tuple[list[int], list[int]]:
        fast = proxy.proxy._fast
        assert fast is not None
        opt = (socket.IPPROTO_TCP, socket.TCP_NODELAY)
        clients = [c.transport.get_extra_info("socket").getsockopt(*opt) for c in fast.clients]
        links = [
            link.transport.get_extra_info("socket").getsockopt(*opt) for link in fast.pool.links()
        ]
        return clients, links

    clients, links = proxy.run(nodelay)
    assert clients and all(clients), clients
    assert links and all(links), links


CHILD = Path(__file__).with_name("proxy_process.py")


def child_env(loop: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PROXY_LOOP": loop}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_many_idle_connections_under_a_low_fd_limit(loop: str, apps: Callable[..., App]) -> None:
    """1,100 idle connections, fd limit 1,024 (soft and hard): others are still served."""
    app = apps("v1")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(app.port), "1024", "1.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(loop),
    )
    idle: list[socket.socket] = []
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline().split()[1])
        for _ in range(1100):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((HOST, port))
            idle.append(sock)
        conn = socket.create_connection((HOST, port), timeout=60)
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until(conn, b"")
        conn.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"v1"), answer
    finally:
        for sock in idle:
            sock.close()
        child.terminate()
        _, stderr = child.communicate(timeout=DEADLINE)
    assert len(stderr) < 4096, stderr[-2000:]
    assert b"Traceback" not in stderr


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_accept_errors_are_logged_at_most_once_a_second(
    loop: str, apps: Callable[..., App]
) -> None:
    """With every fd taken for 3 s, accept() fails with EMFILE; then clients are served.

    On asyncio's loop the clients that connect meanwhile wait in the backlog and are served
    after, and the error is logged about once a second; libuv (uvloop) instead accepts and
    closes them while it has no fd (they see a reset), silently. No traceback on either.
    """
    app = apps("v1")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(app.port), "1024", "5.0", "3.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(loop),
    )
    waiting: list[socket.socket] = []
    answers: list[bytes] = []
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline().split()[1])
        assert child.stdout.readline().strip() == b"HOGGING"
        for _ in range(50):
            sock = socket.create_connection((HOST, port), timeout=60)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            waiting.append(sock)
        for sock in waiting:
            try:
                answers.append(read_until(sock, b""))
            except ConnectionResetError:
                answers.append(b"reset")
        assert child.stdout.readline().strip() == b"RELEASED"
        after = socket.create_connection((HOST, port), timeout=60)
        after.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers.append(read_until(after, b""))
        after.close()
    finally:
        for sock in waiting:
            sock.close()
        child.terminate()
        _, stderr = child.communicate(timeout=DEADLINE)
    served = [a.startswith(b"HTTP/1.1 200") and a.endswith(b"v1") for a in answers]
    assert served[-1], answers[-1]
    reports = [line for line in stderr.splitlines() if b"cannot accept" in line]
    assert len(reports) <= 5, stderr[-2000:]  # about 3 s of EMFILE, once a second at most
    if loop == "asyncio":
        assert all(served), answers
        assert reports, stderr[-2000:]
    else:  # libuv refuses them without reporting anything
        assert all(ok or a in (b"reset", b"") for ok, a in zip(served, answers, strict=True))
    assert b"Traceback" not in stderr


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_every_connection_leaves_the_count_when_it_ends(
    mode: str, apps: Callable[..., App], proxies
) -> None:
    """Fast path, handed-over and tcp connections each count once, and stop counting."""
    proxy: ProxyThread = proxies(mode, "asyncio", timeouts=SHORT)
    proxy.swap(apps("v1"), None)
    conns = [proxy.connection() for _ in range(3)]
    assert get(conns[0]) == (200, "v1")
    conns[1].request("POST", "/echo", body=iter([b"a", b"b"]), encode_chunked=True)
    assert conns[1].getresponse().read() == b"ab"  # handed over to the stream path
    assert get(conns[1]) == (200, "v1")
    assert get(conns[2]) == (200, "v1")
    assert proxy.run(lambda: proxy.proxy.connections) == 3
    for conn in conns:
        conn.close()
    wait_until(lambda: proxy.run(lambda: proxy.proxy.connections) == 0, DEADLINE)
