"""Request smuggling and strict framing, against real apps behind the proxy (issue 9).

Each attack is sent on its own connection; two unrelated clients follow (a plain GET and a
chunked POST) and must get their own answers, and the app must never have received the
smuggled request. The raw app trusts Content-Length over Transfer-Encoding and answers
every request it finds in its byte stream, so anything the proxy let through would show.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import HOST, App, ProxyThread, read_until

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

ATTACKS = {
    "CL.TE": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(SMUGGLED)) + SMUGGLED,
    "TE.CL": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    + b"%x\r\n" % len(SMUGGLED)
    + SMUGGLED
    + b"\r\n0\r\n\r\n",
    "TE with vertical tab": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n"
    b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "TE with a space before the colon": b"POST /a HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "Connection: Content-Length": b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\n"
    b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "Connection: Transfer-Encoding": b"POST /a HTTP/1.1\r\nHost: x\r\n"
    b"Connection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % len(SMUGGLED)
    + SMUGGLED
    + b"\r\n0\r\n\r\n",
}

REJECTED = {
    "TE not ending in chunked": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n"
    b"\r\n0\r\n\r\n",
    "conflicting CL": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
    b"\r\nab",
    "CL list": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nab",
    "invalid CL": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x2\r\n\r\nab",
    "bare LF": b"GET /a HTTP/1.1\nHost: x\n\n",
    "bare LF at the end": b"GET /a HTTP/1.1\r\nHost: x\r\n\n",
    "NUL in the target": b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "control byte in a value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "NUL in a value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
}


@pytest.fixture(params=["raw", "uvicorn"])
def app(request, apps: Callable[..., App], tmp_path: Path) -> Iterator[tuple[App, Path]]:
    log = tmp_path / "raw.log"
    log.touch()
    yield apps("v1", request.param, RAW_LOG=str(log)), log


@pytest.fixture(params=["asyncio", "uvloop"])
def proxy(request, app: tuple[App, Path], proxies) -> ProxyThread:
    proxy: ProxyThread = proxies("http", request.param)
    proxy.swap(app[0], None)
    return proxy


def answer_to(port: int, data: bytes) -> bytes:
    """Send `data`, read to EOF (or 10 s): everything the proxy answered."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(data)
        return read_until(sock, b"")


def check_bystanders(proxy: ProxyThread) -> None:
    """Two unrelated clients get their own answers, on fresh connections."""
    conn = proxy.connection()
    conn.request("GET", "/plain")
    assert conn.getresponse().read() == b"GET /plain "
    conn = proxy.connection()
    conn.request("POST", "/chunked", body=iter([b"hel", b"lo"]), encode_chunked=True)
    assert conn.getresponse().read() == b"POST /chunked hello"


def check_nothing_smuggled(proxy: ProxyThread, app: tuple[App, Path]) -> None:
    received = app[1].read_bytes()
    assert b"/smuggled" not in received
    conn = proxy.connection()
    conn.request("GET", "/seen")
    seen = conn.getresponse().read()
    assert b"/smuggled" not in seen


@pytest.mark.parametrize("attack", ATTACKS)
def test_smuggling_is_refused_and_bystanders_get_their_own_answers(
    proxy: ProxyThread, app: tuple[App, Path], attack: str
) -> None:
    answer = answer_to(proxy.port, ATTACKS[attack])
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # nothing after the 400, then EOF
    check_bystanders(proxy)
    check_nothing_smuggled(proxy, app)


@pytest.mark.parametrize("case", REJECTED)
def test_ambiguous_framing_gets_400_then_close(
    proxy: ProxyThread, app: tuple[App, Path], case: str
) -> None:
    answer = answer_to(proxy.port, REJECTED[case])
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    check_bystanders(proxy)
    assert b"/a" not in app[1].read_bytes()  # the raw app never saw any of it


def test_chunk_size_with_trailing_space_gets_400_then_close(
    proxy: ProxyThread, app: tuple[App, Path]
) -> None:
    attack = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x \r\n" % len(SMUGGLED)
        + SMUGGLED
        + b"\r\n0\r\n\r\n"
    )
    answer = answer_to(proxy.port, attack)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    check_bystanders(proxy)
    check_nothing_smuggled(proxy, app)
