"""What the engine reports. The executor emits these; only `output.py` turns them into text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pitstop.errors import PitstopError


@dataclass(frozen=True)
class TaskStarted:
    name: str
    command: str | None = None  # a short description of what runs, for verbose output


@dataclass(frozen=True)
class TaskSkipped:
    name: str
    reason: str


@dataclass(frozen=True)
class TaskOutput:
    name: str
    stream: Literal["stdout", "stderr"]
    line: str


@dataclass(frozen=True)
class TaskFinished:
    name: str
    status: int  # exit status; 0 is success
    duration: float
    ignored: bool = False  # the task failed but ignore_errors let the flow go on


@dataclass(frozen=True)
class Notice:
    """Something a person should know that is not a task's own output (deprecations, warnings)."""

    level: Literal["info", "warning", "error"]
    message: str


@dataclass(frozen=True)
class ErrorReported:
    """An error that does not end the command: a broken task file during watch or serve is
    shown, and pitstop waits for the next change."""

    error: PitstopError


@dataclass(frozen=True)
class RunFinished:
    ok: bool
    duration: float
    failed: str | None = None
    status: int = 0
    not_run: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()  # were running when the failure came, and were terminated
    durations: tuple[tuple[str, float], ...] = ()


Event = TaskStarted | TaskSkipped | TaskOutput | TaskFinished | Notice | ErrorReported | RunFinished
Emit = Callable[[Event], None]
