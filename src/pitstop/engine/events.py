"""What the engine reports. The executor emits these; only `output.py` turns them into text.

Every event names its `source` (a task, or a service and its instance), so that the events of
several tasks and services can share one stream and one printer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pitstop.errors import PitstopError

Stream = Literal["stdout", "stderr"]  # which of a child's output streams a line came from


@dataclass(frozen=True)
class Source:
    """Where an event comes from: a task or a service, and for a service the instance number."""

    name: str
    instance: int | None = None


@dataclass(frozen=True)
class _TaskEvent:
    name: str  # the task, as the plan names it
    # In `pitstop up`, the services whose build this task is (several for a shared build
    # step), so that its lines carry their prefix and go to their log files; () elsewhere.
    services: tuple[str, ...] = field(default=(), kw_only=True)

    @property
    def source(self) -> Source:
        return Source(self.name)


@dataclass(frozen=True)
class TaskStarted(_TaskEvent):
    command: str | None = None  # a short description of what runs, for verbose output


@dataclass(frozen=True)
class TaskSkipped(_TaskEvent):
    reason: str


@dataclass(frozen=True)
class TaskOutput(_TaskEvent):
    stream: Stream
    line: str


@dataclass(frozen=True)
class TaskFinished(_TaskEvent):
    status: int  # exit status; 0 is success
    duration: float
    ignored: bool = False  # the task failed but ignore_errors let the flow go on


@dataclass(frozen=True)
class Notice:
    """Something a person should know that is not a task's own output (deprecations, warnings)."""

    level: Literal["info", "warning", "error"]
    message: str
    source: Source | None = None  # None: pitstop itself


@dataclass(frozen=True)
class ErrorReported:
    """An error that does not end the command: a broken task file during watch or serve is
    shown, and pitstop waits for the next change."""

    error: PitstopError
    source: Source | None = None  # the task or service whose file or build broke


@dataclass(frozen=True)
class RunFinished:
    ok: bool
    duration: float
    failed: str | None = None
    status: int = 0
    not_run: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()  # were running when the failure came, and were terminated
    durations: tuple[tuple[str, float], ...] = ()
    source: Source | None = None  # the plan's target, where the runner knows it
    interrupted: bool = False  # cancelled (Ctrl-C, a signal): `stopped` were running then


Event = TaskStarted | TaskSkipped | TaskOutput | TaskFinished | Notice | ErrorReported | RunFinished
Emit = Callable[[Event], None]
