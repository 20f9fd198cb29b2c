"""HTTP/1.1 message framing for the proxy, strict as RFC 9112 asks of an intermediary.

One scanner for request and response heads (`scan_request`, `scan_response`) and one chunked
body state machine (`ChunkedBody`), used by both the callback fast path (fast.py) and the
stream path (http.py). Bodies are relayed in their wire form (a chunked body stays chunked),
so the proxy never re-encodes anything; it only tracks where each body ends.

Anything a backend could read differently from us is refused with 400 rather than
"repaired": both Content-Length and Transfer-Encoding, a Transfer-Encoding that does not end
in chunked, a Content-Length that is not one number, bare LF line ends, control bytes in
the target or a header value, a Connection header naming a framing header, a malformed
chunk line. Each of those is a known request smuggling vector.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
READ_SIZE = 64 * 1024

_T = TypeVar("_T")

# A token as RFC 9110 defines it: methods, header names and transfer codings.
_TOKEN_CHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = re.compile(_TOKEN_CHARS + rb"+\Z")
# Header lines: a token, a colon, then a value of visible bytes, spaces and tabs only (no
# NUL or other control bytes, no bare CR or LF); each line ends in CRLF.
_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"
_HEADER_LINES = re.compile(rb"(?:" + _TOKEN_CHARS + rb"+:" + _VALUE + rb"\r\n)*\Z")
_TRAILER_LINE = re.compile(_TOKEN_CHARS + rb"+:" + _VALUE + rb"\r\n\Z")
# A request target: visible ASCII only (browsers percent-encode everything else).
_TARGET = re.compile(rb"[\x21-\x7e]+\Z")
# A chunk size line: hex digits right before CRLF or before optional extensions
# (RFC 9112 section 7.1.1 allows whitespace before ";", nothing after the size otherwise).
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;" + _VALUE + rb")?\r\n\Z")
_DIGITS = re.compile(rb"[0-9]{1,18}\Z")
# Matched against the lower-cased head; the \r\n of each line stays outside the match, so
# two such headers in a row are both found.
_FIELD = re.compile(
    rb"\n(content-length|transfer-encoding|connection|upgrade|expect|keep-alive"
    rb"|proxy-connection|te|trailer|x-forwarded-for|x-forwarded-proto):[ \t]*([^\r\n]*?)[ \t]*\r"
)

# Headers that describe one connection, not the message: never forwarded as they are.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)
# Connection options a head may carry and still be rewritten by cutting known lines.
_PLAIN_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})
# A Connection header naming these would make a hop-by-hop rewrite drop the body's framing.
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})

Framing = Literal["none", "length", "chunked", "eof"]
Field = tuple[bytes, bytes, int, int]  # lower-case name, value, start and end of its line


class Sink(Protocol):
    """Where a body is relayed to: an asyncio.StreamWriter, or a wrapper of one."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class HttpError(Exception):
    """A message that is not valid HTTP/1.x; the proxy answers it with `status`."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- heads ------------------------------------------------------------------------------


@dataclass(slots=True)
class Head:
    """A message head: `raw` is its start line and header lines, each ending in CRLF."""

    raw: bytes
    version: bytes
    fields: list[Field]
    framing: Framing
    length: int
    close: bool  # this message ends its connection
    options: set[bytes]  # the Connection header's tokens, lower case
    both_lengths: bool  # Content-Length beside Transfer-Encoding (a response; cut it)

    def has(self, name: bytes) -> bool:
        return any(field[0] == name for field in self.fields)

    def value(self, name: bytes) -> bytes | None:
        found = None
        for field in self.fields:
            if field[0] == name:
                found = field[1]
        return found

    def rewritable(self) -> bool:
        """True unless Connection names other headers (then heads.py cuts those too)."""
        return self.options <= _PLAIN_OPTIONS

    def without(self, names: frozenset[bytes], start: bytes | None = None) -> bytes:
        """`raw` minus the lines of headers in `names`, optionally with a new start line."""
        raw, pieces, pos = self.raw, [], 0
        if start is not None:
            pieces.append(start)
            pos = raw.index(b"\r\n")
        for name, _, begin, end in self.fields:
            if name in names:
                pieces.append(raw[pos:begin])
                pos = end
        if not pieces:
            return raw
        pieces.append(raw[pos:])
        return b"".join(pieces)


@dataclass(slots=True)
class RequestHead(Head):
    method: bytes
    target: bytes

    def is_upgrade(self) -> bool:
        # The set test first: it is almost always false, and costs less than has().
        return b"upgrade" in self.options and self.has(b"upgrade")

    def expects_continue(self) -> bool:
        expect = self.value(b"expect")
        return expect is not None and expect.lower() == b"100-continue"


@dataclass(slots=True)
class ResponseHead(Head):
    status: int


def find_head_end(buf: bytes) -> int:
    """Where the blank line that ends a head starts (-1: not yet); 400 on bare LF."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        # A head ended by bare LF would never be complete: refuse it now, not at a timeout.
        if b"\n" in buf and buf.count(b"\n") != buf.count(b"\r\n"):
            raise HttpError("bare LF in the message head")
        if len(buf) > MAX_HEAD:
            raise HttpError("message head too large", 431)
    elif end > MAX_HEAD:
        raise HttpError("message head too large", 431)
    return end


def _scan(raw: bytes, request: bool) -> tuple[bytes, list[Field], Framing, int, set[bytes], bool]:
    """Start line, the fields that matter, body framing (eof if unsaid), Connection tokens."""
    eol = raw.find(b"\r\n")
    if not _HEADER_LINES.match(raw, eol + 2):
        # Also rejects obsolete line folding (a line starting with whitespace), control
        # bytes and bare CR or LF anywhere in the header lines.
        raise HttpError("malformed header line")
    fields: list[Field] = []
    options: set[bytes] = set()
    if eol + 2 == len(raw):
        return raw[:eol], fields, "eof", 0, options, False
    codings: list[bytes] = []
    length = None
    for m in _FIELD.finditer(raw.lower(), eol):
        name = m[1]
        begin, end = m.span(2)
        value = raw[begin:end]
        fields.append((name, value, m.start() + 1, m.end() + 1))
        if name == b"content-length":
            if not _DIGITS.match(value) or (length is not None and value != length):
                raise HttpError("invalid Content-Length")
            length = value
        elif name == b"transfer-encoding":
            codings.extend(t.strip(b" \t") for t in m[2].split(b","))
        elif name == b"connection":
            options.update(t.strip(b" \t") for t in m[2].split(b","))
    options.discard(b"")
    if options & _FRAMING:
        raise HttpError("Connection names a framing header")
    if codings:
        codings = [c for c in codings if c]
        if length is not None and request:
            raise HttpError("both Content-Length and Transfer-Encoding")
        # Anything but one final "chunked" cannot be delimited; refusing it avoids smuggling.
        if (
            not codings
            or codings[-1] != b"chunked"
            or b"chunked" in codings[:-1]
            or not all(_TOKEN.match(c) for c in codings)
        ):
            raise HttpError("unsupported Transfer-Encoding")
        return raw[:eol], fields, "chunked", 0, options, length is not None
    if length is None:
        return raw[:eol], fields, "eof", 0, options, False
    size = int(length)
    return raw[:eol], fields, ("length" if size else "none"), size, options, False


def scan_request(raw: bytes) -> RequestHead:
    """A request head up to and including the CRLF of its last header line."""
    start, fields, framing, length, options, both = _scan(raw, request=True)
    parts = start.split(b" ")
    if len(parts) != 3:
        raise HttpError("malformed request line")
    method, target, version = parts
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        raise HttpError("malformed request line")
    if not _TARGET.match(target) or not _TOKEN.match(method):
        raise HttpError("malformed request line")
    if framing == "chunked" and version == b"HTTP/1.0":
        raise HttpError("Transfer-Encoding in an HTTP/1.0 request")
    if framing == "eof":
        framing = "none"  # a request never reads to EOF
    close = (b"keep-alive" not in options) if version == b"HTTP/1.0" else (b"close" in options)
    return RequestHead(raw, version, fields, framing, length, close, options, both, method, target)


def scan_response(raw: bytes, request_method: bytes) -> ResponseHead:
    """A response head up to and including the CRLF of its last header line."""
    try:
        start, fields, framing, length, options, both = _scan(raw, request=False)
    except HttpError as exc:
        raise HttpError(exc.reason, 502) from None
    version = start[:8]
    code = start[9:12]
    if (
        (version != b"HTTP/1.1" and version != b"HTTP/1.0")
        or start[8:9] != b" "
        or not code.isdigit()
        or len(code) != 3
        or start[12:13] not in (b" ", b"")
    ):
        raise HttpError("malformed status line", 502)
    status = int(code)
    if request_method == b"HEAD" or status < 200 or status == 204 or status == 304:
        framing, length = "none", 0
    close = (b"keep-alive" not in options) if version == b"HTTP/1.0" else (b"close" in options)
    return ResponseHead(raw, version, fields, framing, length, close, options, both, status)


# --- chunked bodies ---------------------------------------------------------------------

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedBody:
    """Where a chunked body stands (RFC 9112 section 7.1): the one implementation of it.

    A driver either hands it whole lines (`line`) and counts data bytes (`data`), as the
    stream path does, or lets it walk a buffer (`advance`), as the fast path does.
    """

    __slots__ = ("_state", "left")

    def __init__(self) -> None:
        self._state = _SIZE
        self.left = 0  # data bytes still due in the current chunk

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def wants_data(self) -> bool:
        return self._state == _DATA

    def line(self, line: bytes) -> None:
        """One line, with its CRLF: a size line, the CRLF after data, or a trailer line."""
        state = self._state
        if state == _SIZE:
            m = _CHUNK_LINE.match(line)
            if m is None:
                raise HttpError("malformed chunk size")
            self.left = int(m[1], 16)
            self._state = _DATA if self.left else _TRAILER
        elif state == _DATA_END:
            if line != b"\r\n":
                raise HttpError("missing CRLF after chunk")
            self._state = _SIZE
        elif state == _TRAILER:
            if line == b"\r\n":
                self._state = _DONE
            elif not _TRAILER_LINE.match(line):
                raise HttpError("malformed trailer line")
        else:
            raise HttpError("chunk framing out of step")

    def data(self, count: int) -> None:
        self.left -= count
        if not self.left:
            self._state = _DATA_END

    def advance(self, buf: bytes, pos: int = 0) -> int:
        """Walk `buf` from `pos` as far as it goes (never past the body); the new position."""
        size = len(buf)
        while pos < size and self._state != _DONE:
            if self._state == _DATA:
                take = min(self.left, size - pos)
                pos += take
                self.data(take)
                continue
            eol = buf.find(b"\n", pos, pos + MAX_LINE)
            if eol < 0:
                if size - pos >= MAX_LINE:
                    raise HttpError("chunk line too long")
                break
            self.line(buf[pos : eol + 1])
            pos = eol + 1
        return pos


# --- the stream path's readers ----------------------------------------------------------


async def within(aw: Awaitable[_T], seconds: float | None) -> _T:
    """`aw`, or TimeoutError after `seconds` (None: no limit)."""
    if seconds is None:
        return await aw
    async with asyncio.timeout(seconds):
        return await aw


async def read_head(
    reader: asyncio.StreamReader, idle: float | None = None, head: float | None = None
) -> bytes | None:
    """Read one message head, up to and including the CRLF of its last header line.

    None on a clean EOF (or `idle` seconds) before its first byte; from the first byte on,
    the whole head must arrive within `head` seconds (TimeoutError otherwise).
    """
    try:
        first = await within(reader.readuntil(b"\n"), idle)
    except TimeoutError:
        return None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError("message head too large", 431) from exc
    return await within(_rest_of_head(reader, first), head)


async def _rest_of_head(reader: asyncio.StreamReader, first: bytes) -> bytes:
    lines = []
    line = first
    while line in (b"\r\n", b"\n"):  # blank lines before a request (RFC 9112 section 2.2)
        line = await _read_head_line(reader)
    size = 0
    while line != b"\r\n":
        if not line.endswith(b"\r\n"):
            raise HttpError("bare LF in the message head")
        size += len(line)
        if size > MAX_HEAD:
            raise HttpError("message head too large", 431)
        lines.append(line)
        line = await _read_head_line(reader)
    return b"".join(lines)


async def _read_head_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise HttpError("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError("message head too large", 431) from exc


async def relay_length(
    src: asyncio.StreamReader, dst: Sink | None, length: int, idle: float | None = None
) -> None:
    """Copy exactly `length` bytes, each read within `idle` seconds; dst None discards them."""
    while length:
        data = await within(src.read(min(length, READ_SIZE)), idle)
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(data)
        await _write(dst, data)


async def relay_chunked(
    src: asyncio.StreamReader, dst: Sink | None, idle: float | None = None
) -> None:
    """Copy a chunked body in wire form, trailers included, up to its final CRLF."""
    body = ChunkedBody()
    while not body.done:
        if body.wants_data:
            data = await within(src.read(min(body.left, READ_SIZE)), idle)
            if not data:
                raise asyncio.IncompleteReadError(b"", body.left)
            body.data(len(data))
        else:
            data = await within(_read_line(src), idle)
            body.line(data)
        await _write(dst, data)


async def relay_until_eof(src: asyncio.StreamReader, dst: Sink) -> None:
    while data := await src.read(READ_SIZE):
        await _write(dst, data)


async def _read_line(src: asyncio.StreamReader) -> bytes:
    try:
        line = await src.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError("line too long") from exc
    if len(line) > MAX_LINE:
        raise HttpError("line too long")
    return line


async def _write(dst: Sink | None, data: bytes) -> None:
    if dst is not None:
        dst.write(data)
        # Back-pressure: never let a slow reader make us buffer a fast writer's output.
        await dst.drain()


def simple_response(status: int, reason: str, text: str, *, close: bool) -> bytes:
    """A small text/plain response the proxy produces itself (400, 408, 502, 503, 504)."""
    body = (text.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8", "replace")
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        % (
            status,
            reason.encode(),
            len(body),
        )
    )
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


_PHRASES = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_response(status: int, reason: str, *, close: bool) -> bytes:
    """The proxy's own answer when it cannot forward: `reason` goes in the body."""
    return simple_response(status, _PHRASES.get(status, "Error"), f"pitstop: {reason}", close=close)
