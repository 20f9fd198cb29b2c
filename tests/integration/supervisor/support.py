"""A Supervisor over real processes: a shell "build" that copies a version file (or fails,
or hangs), tests/apps/fd_app.py as the service, and an event log the tests wait on with deadlines."""

from __future__ import annotations

import asyncio
import sys
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
from tests.load import http_get

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
    traffic: object = None  # a test's reading of Supervisor.traffic() before it stopped

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
