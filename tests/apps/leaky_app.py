"""A `$PORT` app that leaks memory: each request keeps LEAK_KB more kibibytes (written, so
they count in its RSS) and is answered with the app's pid. GET /health answers ok and keeps
nothing. BALLAST_MB mebibytes are kept from the start (a version that needs more memory).
Prints "LISTENING <port>" once it accepts connections."""

from __future__ import annotations

import contextlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LEAK = int(os.environ.get("LEAK_KB", "256")) * 1024
KEPT: list[bytes] = [b"x" * (int(os.environ.get("BALLAST_MB", "0")) * 1024 * 1024)]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/health":
            with LOCK:
                KEPT.append(b"x" * LEAK)
        body = b"ok" if self.path == "/health" else str(os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
