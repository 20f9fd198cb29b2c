"""Test helpers: wait for a condition with a deadline instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, message: str = "", interval: float = 0.01
) -> T:
    """Poll `predicate` until it returns a truthy value; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, message: str = ""
) -> None:
    """Like `wait_until`, but yields to the running event loop between checks."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        await asyncio.sleep(0.01)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    wait_until(lambda: port_open(host, port), timeout)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants_of_session(sid: int) -> list[int]:
    """Pids whose session id is `sid` (children started in a new session by pitstop lead one)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def script_pids(script: str, cwd: Path) -> list[int]:
    """Pids of live processes whose argv names a file ending in `script` and whose working
    directory is `cwd` (one test's app instances, not another test's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd_of = (entry / "cwd").resolve()
        except OSError:
            continue
        if any(part.endswith(script.encode()) for part in cmdline) and cwd_of == cwd:
            pids.append(int(entry.name))
    return pids


def collect_lines(stream: IO[str]) -> list[str]:
    """Read a child's stream on a thread, so a test can wait for a line as it comes."""
    lines: list[str] = []

    def pump() -> None:
        for line in stream:
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def try_get(port: int, path: str = "/") -> str | None:
    """GET on a new connection: the body, stripped, or None if nothing answered."""
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        body = conn.getresponse().read().decode().strip()
        conn.close()
        return body
    except (OSError, http.client.HTTPException):
        return None
