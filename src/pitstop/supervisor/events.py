"""What a Supervisor reports. The supervisor never prints: the CLI's printer turns these
into lines (prefixed with the service name) and a status line."""

from __future__ import annotations

from dataclasses import dataclass

from pitstop.engine.process import Stream


@dataclass(frozen=True)
class BuildStarted:
    n: int


@dataclass(frozen=True)
class BuildFailed:
    n: int


@dataclass(frozen=True)
class BuildCancelled:
    """A newer change arrived during build `n`; its child processes are gone."""

    n: int


@dataclass(frozen=True)
class InstanceStarting:
    n: int
    pid: int | None = None


@dataclass(frozen=True)
class InstanceReady:
    n: int


@dataclass(frozen=True)
class Swapped:
    """Instance `new` serves; `old` (None when nothing served before) is being stopped."""

    old: int | None
    new: int


@dataclass(frozen=True)
class RolledBack:
    """Instance `n` never became ready; it was killed and `serving` (if any) still serves."""

    n: int
    reason: str
    serving: int | None = None


@dataclass(frozen=True)
class InstanceExited:
    """The serving instance ended on its own (a crash, or a clean exit nobody asked for)."""

    n: int
    status: int


@dataclass(frozen=True)
class InstanceStopped:
    """An instance pitstop asked to stop (replaced, or at shutdown) has ended."""

    n: int
    status: int | None


@dataclass(frozen=True)
class CrashRestart:
    n: int
    delay: float


@dataclass(frozen=True)
class GaveUp:
    reason: str


@dataclass(frozen=True)
class InstanceOutput:
    n: int
    stream: Stream
    line: str


@dataclass(frozen=True)
class InstanceStatus:
    """A STATUS=... message the instance sent over NOTIFY_SOCKET."""

    n: int
    text: str


@dataclass(frozen=True)
class Status:
    """The one-line summary, e.g. `serving #4 · building #5…`."""

    text: str


SupervisorEvent = (
    BuildStarted
    | BuildFailed
    | BuildCancelled
    | InstanceStarting
    | InstanceReady
    | Swapped
    | RolledBack
    | InstanceExited
    | InstanceStopped
    | CrashRestart
    | GaveUp
    | InstanceOutput
    | InstanceStatus
    | Status
)
