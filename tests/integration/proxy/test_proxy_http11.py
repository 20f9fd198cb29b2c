"""HTTP/1.1 features forwarded to a real app, on both event loops."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from .support import HOST, App, ProxyThread, get, raw_exchange, read_until


@pytest.fixture(params=["asyncio", "uvloop"])
def proxy(request, apps: Callable[..., App], proxies) -> Iterator[ProxyThread]:
    proxy: ProxyThread = proxies("http", request.param)
    proxy.swap(apps("v1"), None)
    yield proxy


def test_content_length_and_chunked_request_bodies(proxy: ProxyThread) -> None:
    conn = proxy.connection()
    conn.request("POST", "/echo", body=b"hello")
    assert conn.getresponse().read() == b"hello"
    conn.request("POST", "/echo", body=iter([b"chun", b"ked"]), encode_chunked=True)
    assert conn.getresponse().read() == b"chunked"
    big = b"x" * 300_000  # larger than the buffered-body limit: streamed
    conn.request("POST", "/echo", body=big)
    assert conn.getresponse().read() == big


def test_expect_100_continue(proxy: ProxyThread) -> None:
    with socket.create_connection((HOST, proxy.port), timeout=10) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert read_until(sock, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ping")
        response = read_until(sock, b"ping")
    assert response.startswith(b"HTTP/1.1 200")
    assert response.endswith(b"\r\n\r\nping")


def test_streaming_response_is_forwarded_as_it_arrives(proxy: ProxyThread) -> None:
    with socket.create_connection((HOST, proxy.port), timeout=10) as sock:
        sock.sendall(b"GET /stream?hold=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        # The app holds the rest of the body until /release: the first chunk must get here.
        first = read_until(sock, b"first v1\n")
        assert b"Transfer-Encoding: chunked" in first
        assert get(proxy.connection(), "/release") == (200, "released")
        rest = read_until(sock, b"0\r\n\r\n")
    assert rest.endswith(b"part 2\n\r\n0\r\n\r\n")


def test_head_has_no_body_and_the_connection_goes_on(proxy: ProxyThread) -> None:
    conn = proxy.connection()
    conn.request("HEAD", "/")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("Content-Length"), resp.read()) == (200, "2", b"")
    assert get(conn) == (200, "v1")


def test_http10_client(proxy: ProxyThread) -> None:
    closed = raw_exchange(proxy.port, b"GET / HTTP/1.0\r\n\r\n", b"\r\n\r\nv1")
    assert closed.startswith(b"HTTP/1.1 200") and b"Connection: close" in closed
    with socket.create_connection((HOST, proxy.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            kept = read_until(sock, b"\r\n\r\nv1")
            assert b"Connection: keep-alive" in kept


def test_pipelined_requests_get_responses_in_order(proxy: ProxyThread) -> None:
    requests = b"".join(
        b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path for path in (b"/slow?s=0.2", b"/health", b"/")
    )
    data = raw_exchange(proxy.port, requests + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", b"")
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b.rstrip(b"\r\n") for b in bodies] == [b"v1", b"ok", b"v1", b"v1"]


def test_forwarded_headers_and_host(proxy: ProxyThread) -> None:
    conn = proxy.connection()
    conn.request("GET", "/headers", headers={"Host": "app.test:8080", "X-Forwarded-For": "1.2.3.4"})
    lines = conn.getresponse().read().decode().splitlines()
    assert "Host: app.test:8080" in lines
    assert "X-Forwarded-For: 1.2.3.4, 127.0.0.1" in lines
    assert "X-Forwarded-Proto: http" in lines


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_other_clients_carry_on(
    proxy: ProxyThread, garbage: bytes
) -> None:
    conn = proxy.connection()
    assert get(conn) == (200, "v1")
    answer = raw_exchange(proxy.port, garbage, b"")  # read to EOF: the proxy closes it
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in answer
    assert get(conn) == (200, "v1")
    assert get(conn, "/health") == (200, "ok")
