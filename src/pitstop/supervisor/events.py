"""What a Supervisor reports. The supervisor never prints: the printer (engine/output.py)
turns these into lines (prefixed with the service name and instance) and a status line.

Each event's `source` is the service (the Supervisor fills in `service`) and, for events about
one instance, its number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pitstop.engine.events import Source, Stream


@dataclass(frozen=True)
class _ServiceEvent:
    service: str = field(default="", kw_only=True)

    @property
    def source(self) -> Source:
        return Source(self.service)


@dataclass(frozen=True)
class _InstanceEvent(_ServiceEvent):
    n: int

    @property
    def source(self) -> Source:
        return Source(self.service, self.n)


@dataclass(frozen=True)
class BuildStarted(_InstanceEvent):
    pass


@dataclass(frozen=True)
class BuildFailed(_InstanceEvent):
    pass


@dataclass(frozen=True)
class BuildCancelled(_InstanceEvent):
    """A newer change arrived during build `n`; its child processes are gone."""


@dataclass(frozen=True)
class InstanceStarting(_InstanceEvent):
    pid: int | None = None


@dataclass(frozen=True)
class InstanceReady(_InstanceEvent):
    pass


@dataclass(frozen=True)
class Swapped(_ServiceEvent):
    """Instance `new` serves; `old` (None when nothing served before) is being stopped.
    `duration_s`: from the start of `new` until it was ready and took over."""

    old: int | None
    new: int
    duration_s: float | None = None

    @property
    def source(self) -> Source:
        return Source(self.service, self.new)


@dataclass(frozen=True)
class Traffic:
    """Requests (proxy http), or connections (proxy tcp), counted by pitstop's proxy.

    `served` were answered in full by an instance; `failed` were refused, reset, or answered
    with a 5xx pitstop generated (502, 503, 504) or cut off mid-response.
    """

    served: int = 0
    failed: int = 0

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.served - other.served, self.failed - other.failed)


@dataclass(frozen=True)
class ListenerTally:
    """Socket mode, where connections go from the kernel straight to the instances: what the
    kernel counted at pitstop's listening TCP sockets. Served connections are not among it:
    Linux counts none per listener for an unprivileged process (see sockets.listen_drops).

    `dropped`: handshake packets discarded because a listener's accept queue was full (a
    client kept waiting for its retransmission; one client can count several times).
    `reset`: connections still in a listener's accept queue when pitstop closed it (the
    kernel resets them; the queue is drained first, so this stays 0 unless an instance
    stopped accepting). `failed` is their sum.
    """

    dropped: int = 0
    reset: int = 0

    @property
    def failed(self) -> int:
        return self.dropped + self.reset

    def __sub__(self, other: ListenerTally) -> ListenerTally:
        return ListenerTally(self.dropped - other.dropped, self.reset - other.reset)


@dataclass(frozen=True)
class SwapFinished(_ServiceEvent):
    """The swap from `old` to `new` is over: the old instance has drained and stopped.

    The swap's window runs from the start of the candidate `new` (right after its build
    succeeded) until `old` has drained and stopped, `ms` long. Proxy mode: in it
    `served_old` requests were answered by the old version and `served_new` by the new one
    (`served` is their sum), and `failed` failed. Socket mode: the served counts are None
    (the kernel hands connections to the instances and counts none), `dropped` and `reset`
    are what the listeners counted (`ListenerTally`) and `failed` is their sum. All None
    where nothing could be counted.
    """

    old: int
    new: int
    ms: int
    served: int | None = None
    served_old: int | None = None
    served_new: int | None = None
    failed: int | None = None
    dropped: int | None = None
    reset: int | None = None

    @property
    def source(self) -> Source:
        return Source(self.service, self.new)

    @property
    def summary(self) -> str:
        """`swap #7 → #8 in 212 ms · 1,204 served, 0 failed` (proxy mode), `swap #7 → #8 in
        212 ms · listeners: 0 dropped, 0 reset` (socket mode)."""
        text = f"swap #{self.old} → #{self.new} in {self.ms} ms"
        if self.served is not None and self.failed is not None:
            text += f" · {self.served:,} served, {self.failed:,} failed"
        elif self.dropped is not None and self.reset is not None:
            text += f" · listeners: {self.dropped:,} dropped, {self.reset:,} reset"
        return text


@dataclass(frozen=True)
class RolledBack(_InstanceEvent):
    """Instance `n` never became ready; it was killed and `serving` (if any) still serves."""

    reason: str
    serving: int | None = None


@dataclass(frozen=True)
class CheckFailed(_InstanceEvent):
    """A `check` command failed against candidate `n` (which is then rolled back): the
    command, why, and the last lines of its output."""

    command: str
    reason: str
    output: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChecksPassed(_InstanceEvent):
    """Every `check` command passed against candidate `n`; it takes traffic next."""

    count: int


@dataclass(frozen=True)
class InstanceExited(_InstanceEvent):
    """The serving instance ended on its own (a crash, or a clean exit nobody asked for)."""

    status: int


@dataclass(frozen=True)
class InstanceStopped(_InstanceEvent):
    """An instance pitstop asked to stop (replaced, or at shutdown) has ended."""

    status: int | None


@dataclass(frozen=True)
class CrashRestart(_InstanceEvent):
    delay: float


@dataclass(frozen=True)
class GaveUp(_ServiceEvent):
    reason: str


@dataclass(frozen=True)
class InstanceOutput(_InstanceEvent):
    stream: Stream
    line: str


@dataclass(frozen=True)
class InstanceStatus(_InstanceEvent):
    """A STATUS=... message the instance sent over NOTIFY_SOCKET."""

    text: str


@dataclass(frozen=True)
class Status(_ServiceEvent):
    """The one-line summary, e.g. `serving #4 · building #5…`."""

    text: str


@dataclass(frozen=True)
class LimitCrossed(_InstanceEvent):
    """Instance `n`'s process tree crossed a limit of `limits`: `limit` is "memory" (bytes)
    or "cpu" (percent of one CPU); `action` says what pitstop does about it."""

    limit: str
    value: float
    threshold: float
    action: str  # "alert", "swap", or why it does not swap


@dataclass(frozen=True)
class ResourceRegression(_InstanceEvent):
    """Settled version `n` uses more than `threshold` (a fraction) above version `previous`:
    mean RSS in bytes and CPU in percent, before and after."""

    previous: int
    rss_before: float
    rss_after: float
    cpu_before: float
    cpu_after: float
    threshold: float


SupervisorEvent = (
    BuildStarted
    | BuildFailed
    | BuildCancelled
    | InstanceStarting
    | InstanceReady
    | Swapped
    | SwapFinished
    | RolledBack
    | CheckFailed
    | ChecksPassed
    | InstanceExited
    | InstanceStopped
    | CrashRestart
    | GaveUp
    | InstanceOutput
    | InstanceStatus
    | Status
    | LimitCrossed
    | ResourceRegression
)
