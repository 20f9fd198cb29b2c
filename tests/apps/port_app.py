"""A `$PORT`-style app for the proxy tests: binds HOST:PORT itself, answers with VERSION.

GET  /             -> VERSION
GET  /health       -> ok
GET  /slow?s=N     -> prints "SLOW <VERSION>" to stdout when it starts, VERSION after N seconds
GET  /stream?hold=1 -> chunked; the first chunk at once, the rest after GET /release
GET  /release      -> lets the held /stream requests finish
GET  /reset        -> no response: the connection is reset (RST)
POST /echo         -> the request body (Content-Length or chunked), Expect: 100-continue ok
GET  /headers      -> the request headers it received, one per line
GET  /ws           -> WebSocket handshake, then echoes each text frame as "VERSION:<text>"
Prints "LISTENING <port>" once it accepts connections.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION = os.environ.get("VERSION", "v0")
RELEASE = threading.Event()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = {
            "/": lambda: self.reply(VERSION),
            "/health": lambda: self.reply("ok"),
            "/slow": lambda: self.slow(float(query.get("s", ["1"])[0])),
            "/stream": lambda: self.stream("hold" in query),
            "/release": self.release,
            "/headers": self.headers_echo,
            "/ws": self.websocket,
            "/reset": self.reset,
        }.get(url.path)
        if route is None:
            self.reply("not found", 404)
        else:
            route()

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(VERSION)))
        self.end_headers()

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(body.decode())

    def reply(self, text: str, status: int = 200) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def slow(self, seconds: float) -> None:
        print(f"SLOW {VERSION}", flush=True)
        time.sleep(seconds)
        self.reply(VERSION)

    def reset(self) -> None:
        # SO_LINGER 0: close() sends RST instead of FIN, and no response at all.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def release(self) -> None:
        RELEASE.set()
        self.reply("released")

    def headers_echo(self) -> None:
        self.reply("".join(f"{k}: {v}\n" for k, v in self.headers.items()))

    def stream(self, hold: bool) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.chunk(f"first {VERSION}\n".encode())
        if hold:
            RELEASE.wait(30)
        for i in range(3):
            self.chunk(f"part {i}\n".encode())
        self.chunk(b"")

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def read_chunked(self) -> bytes:
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        return body

    def websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while (frame := read_frame(self.rfile)) is not None:
            opcode, payload = frame
            if opcode == 8:  # close: answer it and end the connection
                self.wfile.write(b"\x88\x00")
                break
            self.wfile.write(encode_frame(f"{VERSION}:{payload.decode()}".encode()))
            self.wfile.flush()
        self.close_connection = True


def read_frame(rfile: object) -> tuple[int, bytes] | None:
    read = rfile.read  # type: ignore[attr-defined]
    head = read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", read(2))[0]
    mask = read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def encode_frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ["PORT"])
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
