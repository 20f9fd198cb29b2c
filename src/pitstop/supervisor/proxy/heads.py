"""Rewriting heads on their way through the proxy: the one place both paths do it.

Hop-by-hop headers (and any header a Connection header names) are cut out, X-Forwarded-*
added, the status line of a response made HTTP/1.1, and a Connection header written that
says what the proxy will do with the connection. Heads are rewritten by cutting lines out of
the bytes received, so what the app sent goes through byte for byte otherwise.
"""

from __future__ import annotations

from pitstop.supervisor.proxy.http11 import HOP_BY_HOP, Head, RequestHead, ResponseHead

_REQUEST_DROP = HOP_BY_HOP | {b"x-forwarded-for", b"x-forwarded-proto"}
_RESPONSE_DROP = HOP_BY_HOP
# A response framed by chunked and by Content-Length: chunked wins (RFC 9112 section 6.3)
# and the length, which the client might believe instead, is cut.
_RESPONSE_DROP_LENGTH = HOP_BY_HOP | {b"content-length"}


def _cut(head: Head, names: frozenset[bytes], start: bytes | None = None) -> bytes:
    """`head.raw` without the lines of `names` and of the headers its Connection names."""
    if not head.options or head.rewritable():
        return head.without(names, start)
    names = names | head.options
    lines = head.raw.split(b"\r\n")[:-1]
    kept = [lines[0] if start is None else start]
    kept += [line for line in lines[1:] if line.split(b":", 1)[0].lower() not in names]
    return b"\r\n".join(kept) + b"\r\n"


def upstream_request(req: RequestHead, client_ip: bytes) -> bytes:
    """The head sent to the app, blank line included."""
    forwarded_for = b""
    for name, value, _, _ in req.fields:
        if name == b"x-forwarded-for":
            forwarded_for += value + b", "
    tail = b"X-Forwarded-For: %s%s\r\nX-Forwarded-Proto: http\r\n" % (forwarded_for, client_ip)
    if req.is_upgrade():
        tail += b"Connection: Upgrade\r\nUpgrade: %s\r\n" % (req.value(b"upgrade") or b"")
    elif req.version == b"HTTP/1.0":
        # Sent as 1.0 so the backend never answers chunked, but kept alive for the pool.
        tail += b"Connection: keep-alive\r\n"
    return _cut(req, _REQUEST_DROP) + tail + b"\r\n"


def status_line(resp: ResponseHead) -> bytes:
    """The response's status line as HTTP/1.1, CRLF included (the proxy speaks 1.1)."""
    raw = resp.raw
    return b"HTTP/1.1" + raw[8 : raw.index(b"\r\n") + 2]


def client_response(resp: ResponseHead, version: bytes, keep_alive: bool) -> bytes:
    """The final response head sent to the client, blank line included."""
    drop = _RESPONSE_DROP_LENGTH if resp.both_lengths else _RESPONSE_DROP
    if resp.raw.startswith(b"HTTP/1.1 "):
        raw = _cut(resp, drop)
    else:
        raw = _cut(resp, drop, status_line(resp)[:-2])
    if not keep_alive:
        return raw + b"Connection: close\r\n\r\n"
    if version == b"HTTP/1.0":
        return raw + b"Connection: keep-alive\r\n\r\n"
    return raw + b"\r\n"


def interim_response(resp: ResponseHead) -> bytes:
    """A 1xx response other than 100 (e.g. 103 Early Hints), as forwarded."""
    return _cut(resp, _RESPONSE_DROP, status_line(resp)[:-2]) + b"\r\n"


def upgrade_response(resp: ResponseHead) -> bytes:
    """A 101 Switching Protocols answer to an Upgrade request."""
    upgrade = resp.value(b"upgrade") or b""
    raw = _cut(resp, _RESPONSE_DROP, status_line(resp)[:-2])
    return raw + b"Connection: Upgrade\r\nUpgrade: %s\r\n\r\n" % upgrade
