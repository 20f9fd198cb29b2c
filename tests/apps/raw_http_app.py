"""A deliberately naive HTTP/1.1 app on raw sockets, for the proxy's smuggling tests.

It trusts Content-Length over Transfer-Encoding, ignores Connection, and answers every
request it finds in the byte stream, as a backend that is easy to smuggle requests into
would. Every byte it receives is appended to $RAW_LOG, so a test can tell exactly what the
proxy forwarded. Binds HOST:PORT, prints "LISTENING <port>".

Each answer is "<METHOD> <target> <body>".
"""

from __future__ import annotations

import os
import socket
import sys
import threading

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ["PORT"])
LOG = open(os.environ["RAW_LOG"], "ab", buffering=0)  # noqa: SIM115
LOCK = threading.Lock()


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        if data:
            with LOCK:
                LOG.write(data)
        self.buf += data
        return bool(data)

    def until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            if not self.fill():
                raise EOFError
        part, self.buf = self.buf.split(sep, 1)
        return part

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError
        part, self.buf = self.buf[:n], self.buf[n:]
        return part


def serve(sock: socket.socket) -> None:
    conn = Conn(sock)
    try:
        while True:
            head = conn.until(b"\r\n\r\n").decode("latin-1")
            lines = head.split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = conn.exactly(int(headers["content-length"]))
            elif "chunked" in headers.get("transfer-encoding", ""):
                body = b""
                while size := int(conn.until(b"\r\n").split(b";")[0], 16):
                    body += conn.exactly(size)
                    conn.until(b"\r\n")
                conn.until(b"\r\n")
            else:
                body = b""
            answer = f"{method} {target} ".encode() + body
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
    except (EOFError, OSError, ValueError):
        pass
    finally:
        sock.close()


def main() -> None:
    server = socket.create_server((HOST, PORT), backlog=128)
    print(f"LISTENING {PORT}", flush=True)
    while True:
        sock, _ = server.accept()
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
