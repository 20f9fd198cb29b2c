"""A tiny HTTP server for supervisor tests: takes its listening socket from fd 3.

    python fd_app.py VERSION_FILE [--exit-now] [--never-ready] [--crash-after-ready]

Answers every request with the text of VERSION_FILE as read at start-up, so a swap is
visible. The flags may also be written into VERSION_FILE (`v2 --exit-now`), so that a
test can "release" a broken version through the same build as a good one. Sends READY=1 to
$NOTIFY_SOCKET and prints `listening` when ready; prints `accepting` (ready or not) before
its first accept. On SIGTERM it stops accepting, finishes the connection in hand and exits 0.
A request for `/crash` kills the app with SIGKILL while it holds that one connection, so a
test can crash it at a known moment: every other connection is still in the listen queue.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys

stopping = False


def on_term(_signum: int, _frame: object) -> None:
    global stopping
    stopping = True


def notify(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), path)


def listener() -> socket.socket:
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1":
        sock = socket.socket(fileno=3)
    elif "PORT" in os.environ:
        # Without pitstop (the kill-then-restart comparison in benchmarks/swap.py).
        sock = socket.create_server(("127.0.0.1", int(os.environ["PORT"])), backlog=1024)
    else:
        sys.exit(f"fd_app: no socket passed (LISTEN_PID={os.environ.get('LISTEN_PID')})")
    sock.settimeout(0.05)  # so that a SIGTERM is noticed between accepts
    return sock


def handle(conn: socket.socket, body: bytes) -> None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    if data.startswith(b"GET /crash "):
        os.kill(os.getpid(), signal.SIGKILL)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    conn.sendall(head + body)


def main() -> None:
    signal.signal(signal.SIGTERM, on_term)
    version_file, *flags = sys.argv[1:]
    with open(version_file, "rb") as f:
        body = f.read().strip()
    flags += body.decode().split()[1:]
    if "--exit-now" in flags:
        sys.exit(3)
    sock = listener()
    if "--never-ready" not in flags:
        notify("READY=1\nSTATUS=serving " + body.decode())
        print("listening", flush=True)
    if "--crash-after-ready" in flags:
        sys.exit(4)
    print("accepting", flush=True)
    while not stopping:
        try:
            conn, _ = sock.accept()
        except (TimeoutError, BlockingIOError, InterruptedError):
            continue
        with conn, contextlib.suppress(OSError):
            handle(conn, body)


if __name__ == "__main__":
    main()
