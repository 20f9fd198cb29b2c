"""A minimal HTTP/1.1 message framing layer for the proxy.

Only what a forwarding proxy needs: parse a request or response head, decide how the
body is delimited, and relay that body chunk by chunk without buffering it whole. Bodies
are relayed in their wire form (a chunked body stays chunked) so the proxy never has to
re-encode anything; the parser only looks at chunk sizes to find where the body ends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
READ_SIZE = 64 * 1024

# A token as RFC 9110 defines it: methods and header names are made of these.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"HTTP/1\.[01]\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}\Z")

# Headers that describe one connection, not the message: never forwarded as they are.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
    }
)

Headers = list[tuple[bytes, bytes]]
Framing = Literal["none", "length", "chunked", "eof"]


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


@dataclass(slots=True)
class Message:
    """What requests and responses share: version, headers and body framing."""

    version: bytes
    headers: Headers

    def get(self, name: bytes) -> bytes | None:
        """The last value of header `name` (lower case), or None."""
        value = None
        for key, val in self.headers:
            if key.lower() == name:
                value = val
        return value

    def tokens(self, name: bytes) -> set[bytes]:
        """The comma-separated tokens of every `name` header, lower-cased."""
        found: set[bytes] = set()
        for key, val in self.headers:
            if key.lower() == name:
                found.update(t.strip().lower() for t in val.split(b",") if t.strip())
        return found

    def wants_close(self) -> bool:
        """Whether this message ends its connection (RFC 9112 section 9.3)."""
        conn = self.tokens(b"connection")
        if self.version == b"HTTP/1.0":
            return b"keep-alive" not in conn
        return b"close" in conn


@dataclass(slots=True)
class Request(Message):
    method: bytes
    target: bytes

    def body_framing(self) -> tuple[Framing, int]:
        """How the request body is delimited; a request never reads to EOF."""
        framing, length = _framing(self)
        return ("none", 0) if framing == "eof" else (framing, length)

    def is_upgrade(self) -> bool:
        return self.get(b"upgrade") is not None and b"upgrade" in self.tokens(b"connection")

    def expects_continue(self) -> bool:
        expect = self.get(b"expect")
        return expect is not None and expect.strip().lower() == b"100-continue"


@dataclass(slots=True)
class Response(Message):
    status: int
    reason: bytes

    def body_framing(self, request_method: bytes) -> tuple[Framing, int]:
        """How the response body is delimited (RFC 9112 section 6.3)."""
        if request_method == b"HEAD" or self.status < 200 or self.status in (204, 304):
            return "none", 0
        return _framing(self)


def _framing(msg: Message) -> tuple[Framing, int]:
    te = msg.tokens(b"transfer-encoding")
    if te:
        # Anything but a final "chunked" cannot be delimited; refusing it avoids smuggling.
        last = msg.get(b"transfer-encoding") or b""
        if last.split(b",")[-1].strip().lower() != b"chunked":
            raise HttpError("unsupported Transfer-Encoding")
        return "chunked", 0
    lengths = {v.strip() for k, v in msg.headers if k.lower() == b"content-length"}
    if not lengths:
        return "eof", 0
    if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
        raise HttpError("invalid Content-Length")
    length = int(lengths.pop())
    return ("length", length) if length else ("none", 0)


def _split_head(data: bytes) -> tuple[bytes, Headers]:
    lines = data.split(b"\r\n")
    headers: Headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            # Also rejects obsolete line folding (a line starting with whitespace).
            raise HttpError("malformed header line")
        headers.append((name, value.strip(b" \t")))
    return lines[0], headers


def parse_request(data: bytes) -> Request:
    """Parse a request head (everything up to and excluding the blank line)."""
    start, headers = _split_head(data)
    parts = start.split(b" ")
    if len(parts) != 3:
        raise HttpError("malformed request line")
    method, target, version = parts
    if not _TOKEN.match(method) or not target or not _VERSION.match(version):
        raise HttpError("malformed request line")
    return Request(version=version, headers=headers, method=method, target=target)


def parse_response(data: bytes) -> Response:
    """Parse a response head (everything up to and excluding the blank line)."""
    start, headers = _split_head(data)
    version, _, rest = start.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not _VERSION.match(version) or len(code) != 3 or not code.isdigit():
        raise HttpError("malformed status line", 502)
    return Response(version=version, headers=headers, status=int(code), reason=reason)


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """Read one message head; None on a clean EOF before its first byte."""
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError("message head too large", 431) from exc
    # Tolerate blank lines before a request (RFC 9112 section 2.2).
    return data.lstrip(b"\r\n")[:-4]


def serialize(start: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    parts = [start]
    parts.extend(k + b": " + v for k, v in headers)
    parts.append(b"\r\n")
    return b"\r\n".join(parts)


async def relay_length(src: asyncio.StreamReader, dst: Sink | None, length: int) -> None:
    """Copy exactly `length` bytes; dst None discards them."""
    while length:
        data = await src.read(min(length, READ_SIZE))
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(data)
        await _write(dst, data)


async def relay_chunked(src: asyncio.StreamReader, dst: Sink | None) -> None:
    """Copy a chunked body in wire form, trailers included, up to its final CRLF."""
    while True:
        line = await _read_line(src)
        size_text = line.split(b";", 1)[0].strip()
        if not _HEX.match(size_text):
            raise HttpError("malformed chunk size")
        size = int(size_text, 16)
        await _write(dst, line)
        if size == 0:
            break
        await relay_length(src, dst, size)
        if await _read_line(src) != b"\r\n":
            raise HttpError("missing CRLF after chunk")
        await _write(dst, b"\r\n")
    while True:  # trailer section, ended by an empty line
        line = await _read_line(src)
        await _write(dst, line)
        if line == b"\r\n":
            return


async def relay_until_eof(src: asyncio.StreamReader, dst: Sink) -> None:
    while data := await src.read(READ_SIZE):
        await _write(dst, data)


def is_hex(text: bytes) -> bool:
    """A chunk size: 1 to 15 hex digits."""
    return _HEX.match(text) is not None


async def _read_line(src: asyncio.StreamReader) -> bytes:
    try:
        line = await src.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError("line too long") from exc
    if len(line) > MAX_LINE or not line.endswith(b"\r\n"):
        raise HttpError("malformed chunk framing")
    return line


async def _write(dst: Sink | None, data: bytes) -> None:
    if dst is not None:
        dst.write(data)
        # Back-pressure: never let a slow reader make us buffer a fast writer's output.
        await dst.drain()


def simple_response(status: int, reason: str, text: str, *, close: bool) -> bytes:
    """A small text/plain response the proxy produces itself (400, 502, 503)."""
    body = (text.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8", "replace")
    headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"Connection", b"close"))
    return serialize(f"HTTP/1.1 {status} {reason}".encode(), headers) + body


# --- one-pass head scanning for the proxy's fast path --------------------------------------
#
# The fast path never builds a header list: it checks the whole header block with one
# regular expression, then finds the few headers that decide framing and persistence, and
# rewrites the head by cutting lines out of the bytes it received.

_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r\n)*\Z")
# Matched against the lower-cased head; the \r\n of each line stays outside the match, so
# two such headers in a row are both found.
_FIELD = re.compile(
    rb"\n(content-length|transfer-encoding|connection|upgrade|expect|keep-alive"
    rb"|proxy-connection|te|trailer|x-forwarded-for|x-forwarded-proto):[ \t]*([^\r\n]*?)[ \t]*\r"
)
# Connection options a head may carry and still be rewritten by cutting lines.
_PLAIN_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})

Field = tuple[bytes, bytes, int, int]  # lower-case name, value, start and end of its line


@dataclass(slots=True)
class Head:
    """A message head: `raw` is its start line and header lines, each ending in CRLF."""

    raw: bytes
    version: bytes
    fields: list[Field]
    framing: Framing
    length: int
    close: bool  # this message ends its connection
    options: set[bytes]  # the Connection header's tokens

    def has(self, name: bytes) -> bool:
        return any(field[0] == name for field in self.fields)

    def value(self, name: bytes) -> bytes | None:
        found = None
        for field in self.fields:
            if field[0] == name:
                found = field[1]
        return found

    def rewritable(self) -> bool:
        """True unless Connection names other headers (then rebuild it from a parse)."""
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
        return self.has(b"upgrade") and b"upgrade" in self.options

    def expects_continue(self) -> bool:
        expect = self.value(b"expect")
        return expect is not None and expect.lower() == b"100-continue"


@dataclass(slots=True)
class ResponseHead(Head):
    status: int


def _scan(raw: bytes) -> tuple[bytes, list[Field], Framing, int, set[bytes]]:
    """Start line, the fields that matter, body framing (eof if unsaid), Connection tokens."""
    eol = raw.find(b"\r\n")
    if not _HEADER_LINES.match(raw, eol + 2):
        # Also rejects obsolete line folding (a line starting with whitespace).
        raise HttpError("malformed header line")
    fields: list[Field] = []
    options: set[bytes] = set()
    if eol + 2 == len(raw):
        return raw[:eol], fields, "eof", 0, options
    encoding = length = None
    for m in _FIELD.finditer(raw.lower(), eol):
        name = m[1]
        begin, end = m.span(2)
        value = raw[begin:end]
        fields.append((name, value, m.start() + 1, m.end() + 1))
        if name == b"content-length":
            if length is not None and value != length:
                raise HttpError("invalid Content-Length")
            length = value
        elif name == b"transfer-encoding":
            if value.strip(b" \t,"):
                encoding = value
        elif name == b"connection":
            options.update(t.strip() for t in m[2].split(b","))
    options.discard(b"")
    if encoding is not None:
        # Anything but a final "chunked" cannot be delimited; refusing it avoids smuggling.
        if encoding.split(b",")[-1].strip().lower() != b"chunked":
            raise HttpError("unsupported Transfer-Encoding")
        return raw[:eol], fields, "chunked", 0, options
    if length is None:
        return raw[:eol], fields, "eof", 0, options
    if not length.isdigit():
        raise HttpError("invalid Content-Length")
    size = int(length)
    return raw[:eol], fields, ("length" if size else "none"), size, options


def scan_request(raw: bytes) -> RequestHead:
    """A request head up to and including the CRLF of its last header line."""
    start, fields, framing, length, options = _scan(raw)
    parts = start.split(b" ")
    if len(parts) != 3:
        raise HttpError("malformed request line")
    method, target, version = parts
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        raise HttpError("malformed request line")
    if not target or not _TOKEN.match(method):
        raise HttpError("malformed request line")
    if framing == "eof":
        framing = "none"
    close = (b"keep-alive" not in options) if version == b"HTTP/1.0" else (b"close" in options)
    return RequestHead(raw, version, fields, framing, length, close, options, method, target)


def scan_response(raw: bytes, request_method: bytes) -> ResponseHead:
    """A response head up to and including the CRLF of its last header line."""
    start, fields, framing, length, options = _scan(raw)
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
    return ResponseHead(raw, version, fields, framing, length, close, options, status)
