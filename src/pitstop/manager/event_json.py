"""Events as JSON objects (`pitstop events --json`, GET /v1/events) and as one-line summaries
for the services' log files.

Every object has `type` (the event's class in snake_case), `time` (seconds since the epoch),
`service` and `instance` (from the event's source, null when pitstop itself speaks), then the
event's own fields. Values that are not JSON (an error, a path) become their text.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from pathlib import Path
from typing import Any

from pitstop.engine import events as eng
from pitstop.errors import PitstopError
from pitstop.manager.status import ServiceStatus, status_json
from pitstop.supervisor import events as ev

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def event_json(event: object, now: float) -> dict[str, Any]:
    source = getattr(event, "source", None)
    found: dict[str, Any] = {
        "type": _CAMEL.sub("_", type(event).__name__).lower(),
        "time": round(now, 6),
        "service": getattr(source, "name", None),
        "instance": getattr(source, "instance", None),
    }
    if dataclasses.is_dataclass(event):
        for f in dataclasses.fields(event):
            if f.name in ("service", "source"):
                continue
            found[f.name] = _plain(getattr(event, f.name), now)
    return found


def _plain(value: object, now: float = 0.0) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, ServiceStatus):
        return status_json(value, now)
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, PitstopError):
        where = f"{value.location}: " if value.location is not None else ""
        return where + value.message
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


def summary(event: object) -> str | None:
    """What a service's log file says about an event (its output lines are written as they
    are; the status line and the rest are left out)."""
    match event:
        case ev.BuildStarted(n):
            return f"building #{n}"
        case ev.BuildFailed(n):
            return f"build #{n} failed"
        case ev.BuildCancelled(n):
            return f"build #{n} cancelled by a newer change"
        case ev.InstanceStarting(n, pid):
            return f"starting #{n}" + (f" (pid {pid})" if pid else "")
        case ev.InstanceReady(n):
            return f"#{n} is ready"
        case ev.Swapped(old, new):
            return f"#{new} serves" + (f", #{old} stops" if old is not None else "")
        case ev.RolledBack(n, reason, serving):
            kept = f"; #{serving} keeps serving" if serving is not None else ""
            return f"#{n} rolled back: {reason}{kept}"
        case ev.InstanceExited(n, status):
            return f"#{n} exited with status {status}"
        case ev.InstanceStopped(n, status):
            return f"#{n} stopped" + (f" (status {status})" if status is not None else "")
        case ev.CrashRestart(n, delay):
            return f"restarting after a crash of #{n} in {delay:.1f}s"
        case ev.GaveUp(reason):
            return f"not restarting: {reason}"
        case eng.TaskStarted(name):
            return f"build step {name} started"
        case eng.TaskFinished(name, status, duration):
            return f"build step {name} ended with status {status} in {duration:.2f}s"
        case eng.ErrorReported(error):
            return f"error: {_plain(error)}"
        case eng.Notice(level, message):
            return f"{level}: {message}"
    return None
