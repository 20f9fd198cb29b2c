"""The API: a JSON server on Python's standard library, for pitstop's socket hand-off mode.

pitstop binds the public address once and passes it as fd 3 (systemd socket activation:
LISTEN_FDS, LISTEN_PID). When the server accepts, it sends READY=1 to $NOTIFY_SOCKET; pitstop
then sends new connections to it and stops the previous version. On SIGTERM it stops
accepting, finishes the requests in hand and exits. Run by hand, it binds 127.0.0.1:$PORT.

Change VERSION and save: the new version starts beside this one and takes over when ready.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "v1"


class Handler(BaseHTTPRequestHandler):
    # One request per connection: an idle keep-alive connection would hold a thread that
    # the graceful stop below waits for.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/health":
            self.reply(200, {"ok": True})
        elif self.path == "/hello":
            self.reply(200, {"message": "hello from the Python API", "version": VERSION})
        else:
            self.reply(404, {"error": f"no route {self.path}"})

    def reply(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # one line per request
        say(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else '?'}")


_SAY = threading.Lock()


def say(line: str) -> None:
    """One whole line: print() writes the text and its newline apart, so two request threads
    printing at once gave 'GET /hello -> 200GET /hello -> 200' and an empty line."""
    with _SAY:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() waits for the requests in hand


def server() -> Server:
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS"):
        httpd = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        httpd.socket.close()
        httpd.socket = socket.socket(fileno=3)  # already bound and listening
        return httpd
    return Server(("127.0.0.1", int(os.environ.get("PORT", "8001"))), Handler)


def notify_ready() -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):  # an abstract socket name (Linux)
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"READY=1\nSTATUS=serving {VERSION}".encode(), path)


def main() -> None:
    httpd = server()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}).start()
    say(f"api {VERSION} serving")
    notify_ready()
    stop.wait()
    # shutdown() stops accepting; server_close() closes the socket (never shutdown(2) it: the
    # next version listens on the same address) and waits for the requests in hand.
    httpd.shutdown()
    httpd.server_close()
    say(f"api {VERSION} stopped")


if __name__ == "__main__":
    main()
