"""A Supervisor over real processes: a shell "build" that copies a version file (or fails,
or hangs), tests/apps/fd_app.py as the service, a load client on its own thread, and an
event log the tests wait on with deadlines."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pitstop.engine import process
from pitstop.errors import Location
from pitstop.supervisor.events import SupervisorEvent
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.supervisor import Supervisor
from pitstop.taskfile.service import ServiceSpec, parse_service
from tests.helpers import async_wait_until

APPS = Path(__file__).resolve().parents[2] / "apps"
FD_APP = APPS / "fd_app.py"
DEADLINE = 20.0
E = TypeVar("E")

# The build: `src` is the "source", `version` the "artifact" the service reads at start-up.
# `slow` in the source makes a build that only ends when cancelled (it records its pid),
# `broken` one that fails like a compiler error.
BUILD_SCRIPT = """
if grep -q slow src; then echo $$ > build.pid; exec sleep 600; fi
if grep -q broken src; then echo "error: src is broken" >&2; exit 1; fi
cp src version
"""


def run(coro: Coroutine[Any, Any, E], timeout: float = 60.0) -> E:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@dataclass
class Harness:
    root: Path
    spec: ServiceSpec
    command: InstanceCommand | None = None
    events: list[SupervisorEvent] = field(default_factory=list)
    build_output: list[str] = field(default_factory=list)
    supervisor: Supervisor | None = None

    @classmethod
    def fd_app(cls, root: Path, version: str, **service: Any) -> Harness:
        (root / "src").write_text(version)
        raw: dict[str, Any] = {"listen": "127.0.0.1:0", "ready": {"notify": True}}
        raw.update(service)
        command = InstanceCommand((sys.executable, str(FD_APP), str(root / "version")), root)
        return cls(root, parse_service(raw, Location(root / "pitstop.toml")), command)

    async def build(self, _changes: frozenset[Path]) -> InstanceCommand | None:
        """The build script; the same command for every instance (the app reads `src`)."""
        child = await process.spawn(
            ["/bin/sh", "-c", BUILD_SCRIPT],
            cwd=self.root,
            on_line=lambda _s, line: self.build_output.append(line),
            stdin_devnull=True,
        )
        try:
            ok = await child.wait() == 0
        except asyncio.CancelledError:
            await child.terminate(timeout=2.0)
            raise
        return self.command if ok else None

    def make(self, with_build: bool = True) -> Supervisor:
        assert self.command is not None
        self.supervisor = Supervisor(
            self.spec, self.command, self.build if with_build else None, self.events.append
        )
        return self.supervisor

    @property
    def sup(self) -> Supervisor:
        assert self.supervisor is not None
        return self.supervisor

    @property
    def address(self) -> tuple[str, int]:
        a = self.sup.addresses[0]
        return a.host, a.port

    def release(self, version: str) -> None:
        """Write a new "source" and tell the supervisor, as the watcher would."""
        (self.root / "src").write_text(version)
        self.sup.changed([self.root / "src"])

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_event(self, kind: type[E], where: Callable[[E], bool] = lambda _e: True) -> E:
        def found() -> E | None:
            return next((e for e in self.of_type(kind) if where(e)), None)

        await async_wait_until(lambda: found() is not None, DEADLINE, f"event {kind.__name__}")
        event = found()
        assert event is not None
        return event

    async def get(self) -> str:
        return await asyncio.to_thread(http_get, self.address)


def http_get(address: tuple[str, int], timeout: float = 5.0, path: str = "/") -> str:
    """One request on a new connection; the body, or an exception."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"bad response: {data[:80]!r}")
    return body.decode().strip()


class LoadClient:
    """New connection per request, back to back, on `threads` threads, until stopped or
    `max_s` has passed: bounded by time, never by a count that a fast machine reaches early.
    `bodies` and `failures` are appended to from every thread (list.append is atomic)."""

    def __init__(self, address: tuple[str, int], max_s: float = 60, threads: int = 1):
        self.address = address
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self._max_s = max_s
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> LoadClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # In async tests the event loop may be serving the requests (the proxy runs in it), so
    # joining the client thread must not block the loop.
    async def __aenter__(self) -> LoadClient:
        return self.__enter__()

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    async def wait_for_more(self, count: int) -> None:
        """Wait until `count` more requests have been answered (or failed) than now."""
        target = len(self.bodies) + len(self.failures) + count

        def progressed() -> bool:
            if not any(thread.is_alive() for thread in self._threads):
                raise AssertionError(f"load stopped (time bound {self._max_s}s reached)")
            return len(self.bodies) + len(self.failures) >= target

        await async_wait_until(progressed, DEADLINE, "load progress")

    def saw(self, text: str) -> bool:
        return any(text in body for body in self.bodies[-50:])

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.bodies.append(http_get(self.address))
            except (OSError, ConnectionError) as exc:
                self.failures.append(repr(exc))
