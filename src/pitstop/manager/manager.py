"""The manager: one Supervisor per service on one event loop (`pitstop up`).

Construction takes the loaded project (task file, request, settings) and its ServiceGraph
(manager/graph.py); the foreground `pitstop up` (app/up.py) and the daemon both build one with
`Manager(project, graph, watch=..., jobs=...)` and drive it with the methods below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pitstop.engine.events import Event as EngineEvent
from pitstop.manager.graph import ServiceGraph
from pitstop.manager.status import ServiceStatus, StateChanged
from pitstop.request import UserRequest
from pitstop.settings import RunSettings
from pitstop.supervisor.events import SupervisorEvent
from pitstop.taskfile.model import Taskfile

# Everything a subscriber receives: the engine's events (build output, notices, errors), the
# supervisors' events (instance output, swaps...), each carrying a `source`, and state changes.
Event = EngineEvent | SupervisorEvent | StateChanged
Subscriber = Callable[[Event], None]


@dataclass
class Project:
    """The loaded task file and the settings the request resolved to."""

    taskfile: Taskfile
    request: UserRequest
    settings: RunSettings
    cwd: Path
    skip: re.Pattern[str] | None = None


class Manager:
    def __init__(
        self, project: Project, graph: ServiceGraph, *, watch: bool = True, jobs: int | None = None
    ) -> None:
        self.project = project
        self.graph = graph
        self.watch = watch
        self.jobs = jobs if jobs is not None else project.settings.jobs
        self._subscribers: list[Subscriber] = []

    async def start(self) -> bool:
        """Start every service in dependency order; a service starts once the services it
        depends on are ready. True if every service serves."""
        raise NotImplementedError

    def status(self) -> list[ServiceStatus]:
        """One row per service, in dependency order."""
        raise NotImplementedError

    async def restart(self, name: str) -> None:
        """Rebuild and swap `name`, zero downtime."""
        raise NotImplementedError

    async def stop_service(self, name: str) -> None:
        raise NotImplementedError

    async def start_service(self, name: str) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop every service, in reverse dependency order; nothing is left running."""
        raise NotImplementedError

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every event; returns the function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe
