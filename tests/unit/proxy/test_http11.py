"""The HTTP/1.1 head parser and body framing: pure, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from pitstop.supervisor.proxy import http11
from pitstop.supervisor.proxy.http11 import HttpError, scan_request, scan_response


def req(head: bytes) -> http11.RequestHead:
    return scan_request(head + b"\r\n")


def test_parse_request_head() -> None:
    r = req(b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \r\nX-A: 1")
    assert (r.method, r.target, r.version) == (b"POST", b"/a?b=1", b"HTTP/1.1")
    assert (r.framing, r.length, r.close) == ("length", 5, False)


@pytest.mark.parametrize(
    ("head", "close"),
    [
        (b"GET / HTTP/1.1\r\nConnection: close", True),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive", False),
        (b"GET / HTTP/1.0", True),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive", False),
    ],
)
def test_connection_persistence(head: bytes, close: bool) -> None:
    assert req(head).close is close


@pytest.mark.parametrize(
    "head",
    [
        b"GET /",
        b"GET  / HTTP/1.1",
        b"GET / HTTP/2.0",
        b"G(T / HTTP/1.1",
        b"GET / HTTP/1.1\r\nNo colon here",
        b"GET / HTTP/1.1\r\n folded: header",
        b"GET / HTTP/1.1\r\nBad Name: x",
    ],
)
def test_malformed_requests_are_rejected(head: bytes) -> None:
    with pytest.raises(HttpError):
        req(head)


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 1\r\nContent-Length: 2",
        b"Content-Length: -1",
        b"Content-Length: 1x",
        b"Content-Length: 1, 1",
        b"Content-Length: +1",
        b"Transfer-Encoding: gzip",
        b"Transfer-Encoding: chunked, gzip",
        b"Transfer-Encoding: chunked, chunked",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
        b"Transfer-Encoding: \x0bchunked",
        b"Transfer-Encoding:\x0bchunked",
        b"Transfer-Encoding: chunked\r\nContent-Length: 3",
        b"Content-Length: 3\r\nTransfer-Encoding: chunked",
        b"Connection: Content-Length\r\nContent-Length: 3",
        b"Connection: close, Transfer-Encoding\r\nTransfer-Encoding: chunked",
        b"X-Nul: a\x00b",
        b"X-Esc: \x1b[31m",
        b"X-Cr: a\rb",
        b"X-Lf: a\nX-B: b",
    ],
)
def test_ambiguous_or_smuggling_heads_are_rejected(headers: bytes) -> None:
    with pytest.raises(HttpError) as caught:
        req(b"POST / HTTP/1.1\r\n" + headers)
    assert caught.value.status == 400


@pytest.mark.parametrize("target", [b"/a\x00b", b"/a\x7fb", b"/\x01", b"/\xff"])
def test_control_bytes_in_the_target_are_rejected(target: bytes) -> None:
    with pytest.raises(HttpError):
        req(b"GET " + target + b" HTTP/1.1\r\nHost: x")


@pytest.mark.parametrize(
    "buf",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\n",
    ],
)
def test_bare_lf_is_refused_before_the_head_is_complete(buf: bytes) -> None:
    with pytest.raises(HttpError):
        http11.find_head_end(buf)


def test_chunked_wins_and_requests_never_read_to_eof() -> None:
    assert req(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked").framing == "chunked"
    assert req(b"GET / HTTP/1.1").framing == "none"
    with pytest.raises(HttpError):
        req(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked")


def test_a_response_with_both_lengths_is_chunked_and_says_so() -> None:
    resp = scan_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"GET"
    )
    assert (resp.framing, resp.both_lengths) == ("chunked", True)


@pytest.mark.parametrize(
    ("status", "method", "headers", "framing"),
    [
        (200, b"GET", b"Content-Length: 3\r\n", ("length", 3)),
        (200, b"HEAD", b"Content-Length: 3\r\n", ("none", 0)),
        (204, b"GET", b"", ("none", 0)),
        (304, b"GET", b"Content-Length: 3\r\n", ("none", 0)),
        (200, b"GET", b"", ("eof", 0)),
        (200, b"GET", b"Transfer-Encoding: chunked\r\n", ("chunked", 0)),
    ],
)
def test_response_body_framing(status: int, method: bytes, headers: bytes, framing: tuple) -> None:
    resp = scan_response(b"HTTP/1.1 %d X\r\n%s" % (status, headers), method)
    assert (resp.framing, resp.length) == framing


def test_malformed_status_line_is_a_bad_gateway() -> None:
    with pytest.raises(HttpError) as caught:
        scan_response(b"HTTP/1.1 OK\r\n", b"GET")
    assert caught.value.status == 502


class Collect:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


def relay_chunked(wire: bytes) -> bytes:
    async def run() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(wire)
        reader.feed_eof()
        sink = Collect()
        await http11.relay_chunked(reader, sink)
        assert await reader.read() == b"NEXT"
        return sink.data

    return asyncio.run(run())


def test_chunked_body_is_relayed_in_wire_form_up_to_its_end() -> None:
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
    assert relay_chunked(body + b"NEXT") == body


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nab\r\n0\r\n\r\n",
        b"0x2\r\nab\r\n0\r\n\r\n",
        b"2\r\nabc\r\n",
        b"2 \r\nab\r\n0\r\n\r\n",
        b" 2\r\nab\r\n0\r\n\r\n",
        b"2\nab\r\n0\r\n\r\n",
        b"2\r\nab\r\n0\r\nBad Trailer\r\n\r\n",
    ],
)
def test_malformed_chunks_are_rejected(body: bytes) -> None:
    with pytest.raises(HttpError):
        relay_chunked(body + b"NEXT")


def test_simple_response_is_one_line_with_length() -> None:
    data = http11.simple_response(503, "Service Unavailable", "build\nfailed", close=True)
    head, body = data.split(b"\r\n\r\n")
    assert body == b"build failed\n"
    assert b"Content-Length: 13" in head and b"Connection: close" in head


def test_scan_request_finds_what_routing_needs() -> None:
    req = http11.scan_request(
        b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: 1.2.3.4\r\n"
        b"Content-Length:  5 \r\n"
    )
    assert (req.method, req.target, req.framing, req.length, req.close) == (
        b"POST",
        b"/a",
        "length",
        5,
        True,
    )
    assert req.value(b"x-forwarded-for") == b"1.2.3.4"
    assert req.without(frozenset({b"connection", b"x-forwarded-for"})) == (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \r\n"
    )
    upgrade = http11.scan_request(
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    )
    assert upgrade.is_upgrade() and upgrade.rewritable()
    assert not http11.scan_request(
        b"GET / HTTP/1.1\r\nConnection: close, X-Secret\r\n"
    ).rewritable()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /\r\n",
        b"GET / HTTP/2.0\r\n",
        b"G(T / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n",
        b"GET / HTTP/1.1\r\n folded: header\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n",
    ],
)
def test_scan_request_rejects_what_parse_request_rejects(head: bytes) -> None:
    with pytest.raises(HttpError):
        http11.scan_request(head)


def test_scan_response_framing_and_status_line_rewrite() -> None:
    resp = http11.scan_response(
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n", b"GET"
    )
    assert (resp.status, resp.framing, resp.length, resp.close) == (200, "length", 2, True)
    assert resp.without(http11.HOP_BY_HOP, b"HTTP/1.1 200 OK") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    )
    assert http11.scan_response(b"HTTP/1.1 204 No Content\r\n", b"GET").framing == "none"
    chunked = http11.scan_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", b"GET")
    assert chunked.framing == "chunked"
    with pytest.raises(HttpError) as bad:
        http11.scan_response(b"HTTP/1.1 2000 OK\r\n", b"GET")
    assert bad.value.status == 502


def test_chunk_walk_stops_at_the_end_of_the_body() -> None:
    body = b"4;ext=1\r\nWiki\r\n5 ; x\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
    chunks = http11.ChunkedBody()
    pos = 0
    for i in range(len(body)):  # byte by byte: every state boundary is crossed mid-buffer
        pos = chunks.advance(body[: i + 1] + b"NEXT"[:0], pos)
    assert chunks.done and pos == len(body)
    again = http11.ChunkedBody()
    assert again.advance(body + b"GET / HTTP/1.1\r\n") == len(body) and again.done
