"""Real apps as subprocesses, and a Proxy running on its own event loop thread."""

from __future__ import annotations

import asyncio
import http.client
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pitstop.supervisor.proxy.server import Backend, Proxy, free_port
from pitstop.taskfile.service import ProxyMode
from tests.helpers import wait_for_port

T = TypeVar("T")
APPS = Path(__file__).resolve().parents[2] / "apps"
HOST = "127.0.0.1"
DEADLINE = 10.0


class App:
    """One instance of a $PORT app, started the way the supervisor will start it."""

    def __init__(self, version: str, kind: str = "python", **env_extra: str) -> None:
        self.version = version
        self.port = free_port(HOST)
        self.backend = Backend(HOST, self.port, f"#{version}")
        argv = {
            "python": [sys.executable, str(APPS / "port_app.py")],
            "node": ["node", str(APPS / "port_app.js")],
            "uvicorn": [sys.executable, str(APPS / "asgi_app.py")],
            "raw": [sys.executable, str(APPS / "raw_http_app.py")],
        }[kind]
        env = {**os.environ, "PORT": str(self.port), "HOST": HOST, "VERSION": version}
        env.update(env_extra)
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_lines, daemon=True).start()
        self.wait_line("LISTENING")
        wait_for_port(HOST, self.port, DEADLINE)

    def _read_lines(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_line(self, prefix: str, timeout: float = DEADLINE) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ProxyThread:
    """A Proxy on an event loop in a background thread; tests drive it synchronously."""

    def __init__(self, mode: ProxyMode = "http", loop: str = "asyncio", **kwargs: Any) -> None:
        self.loop = _new_loop(loop)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.proxy = self.call(self._make(mode, kwargs))

    async def _make(self, mode: ProxyMode, kwargs: dict[str, Any]) -> Proxy:
        proxy = Proxy(mode, **kwargs)
        await proxy.start([self.listener])
        return proxy

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, func: Any, *args: Any) -> Any:
        async def sync_call() -> Any:
            return func(*args)

        return self.call(sync_call())

    def set_backend(self, backend: Backend | None) -> Backend | None:
        result: Backend | None = self.run(self.proxy.set_backend, backend)
        return result

    def drain(self, backend: Backend, timeout: float = DEADLINE) -> bool:
        return self.call(self.proxy.drain(backend, timeout))

    def swap(self, new: App, old: App | None) -> bool:
        """What the supervisor does: route to the new instance, drain the old, stop it."""
        self.set_backend(new.backend)
        if old is None:
            return True
        drained = self.drain(old.backend)
        old.stop()
        return drained

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=DEADLINE)

    def close(self) -> None:
        self.call(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE)
        self.loop.close()
        self.listener.close()


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def get(conn: http.client.HTTPConnection, path: str = "/") -> tuple[int, str]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read().decode()


def raw_exchange(port: int, data: bytes, until: bytes, timeout: float = DEADLINE) -> bytes:
    """Send raw bytes, read until `until` has arrived (or EOF)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until(sock, until)


def read_until(sock: socket.socket, until: bytes) -> bytes:
    """Read until `until` has arrived; an empty `until` reads to EOF."""
    got = b""
    while not until or until not in got:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return got
