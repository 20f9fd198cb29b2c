"""What a service is doing, as values: the rows of `pitstop ps` and of the foreground status.

States:
- building: a build runs (an instance may keep serving meanwhile: `version` says which)
- starting: the first instance (or one after a crash) was started and is not ready yet
- swapping: a new instance was started beside the serving one and is not ready yet
- ready: the new instance passed its readiness check and is being promoted
- serving: an instance serves and nothing is in progress
- failed: nothing serves (the build failed, the instance never became ready, or it kept crashing)
- blocked: not started because a service it depends on failed (`reason` names it)
- stopped: stopped by request, or not started yet
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pitstop.engine.events import Source


class ServiceState(Enum):
    BUILDING = "building"
    STARTING = "starting"
    READY = "ready"
    SERVING = "serving"
    SWAPPING = "swapping"
    FAILED = "failed"
    BLOCKED = "blocked"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: ServiceState
    version: int | None  # the number of the serving instance
    pid: int | None  # its pid
    address: str  # where clients connect, e.g. "127.0.0.1:8080" (several joined by ", ")
    restarts: int  # crash restarts: instances pitstop started again after they exited
    started_at: float | None  # time.time() when the serving instance started serving
    last_build_ok: bool | None  # None: no build ran yet (or the service has nothing to build)
    last_build_s: float | None
    reason: str | None  # why it failed or is blocked; the last failure while serving
    # The serving instance's whole process tree at the last sample (None: not sampled yet).
    cpu_percent: float | None = None  # percent of one CPU (200 = two CPUs)
    rss_bytes: int | None = None
    # Requests (proxy http) or connections (proxy tcp) served and failed since the service
    # started. Socket mode: served is None (the kernel counts no accepted connection), and
    # failed = dropped + reset, what the listening sockets counted (events.ListenerTally).
    served: int | None = None
    failed: int | None = None
    dropped: int | None = None
    reset: int | None = None
    # Swaps from one serving instance to another: new builds, `on_limit = "swap"`, rollbacks.
    swaps: int = 0

    def uptime(self, now: float) -> float | None:
        return None if self.started_at is None else max(0.0, now - self.started_at)


def status_json(s: ServiceStatus, now: float) -> dict[str, Any]:
    """A row as JSON-ready values (`pitstop ps --json`, the control socket)."""
    uptime = s.uptime(now)
    return {
        "name": s.name,
        "state": s.state.value,
        "version": s.version,
        "pid": s.pid,
        "address": s.address,
        "restarts": s.restarts,
        "swaps": s.swaps,
        "uptime_s": None if uptime is None else round(uptime, 3),
        "last_build_ok": s.last_build_ok,
        "last_build_s": None if s.last_build_s is None else round(s.last_build_s, 3),
        "reason": s.reason,
        "cpu_percent": None if s.cpu_percent is None else round(s.cpu_percent, 1),
        "rss_bytes": s.rss_bytes,
        "served": s.served,
        "failed": s.failed,
        "dropped": s.dropped,
        "reset": s.reset,
    }


@dataclass(frozen=True)
class StateChanged:
    """A service moved to another state (or its row changed: version, pid, reason)."""

    status: ServiceStatus

    @property
    def source(self) -> Source:
        return Source(self.status.name, self.status.version)
