"""Services with zero-downtime swaps: build while the old version serves, then hand over.

The CLI drives a `Supervisor`:

    spec = task.service        # a ServiceSpec, checked when the task file loaded
    sup = Supervisor(spec, InstanceCommand(argv, cwd, env), build, on_event)
    await sup.start()          # build, first instance
    sup.changed(paths)         # from the watcher: rebuild and swap
    await sup.stop()           # everything stopped, addresses free
"""

from pitstop.durations import parse_duration
from pitstop.supervisor.events import (
    BuildCancelled,
    BuildFailed,
    BuildStarted,
    CrashRestart,
    GaveUp,
    InstanceExited,
    InstanceOutput,
    InstanceReady,
    InstanceStarting,
    InstanceStatus,
    InstanceStopped,
    RolledBack,
    Status,
    SupervisorEvent,
    Swapped,
)
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.swap import Supervisor
from pitstop.taskfile.addresses import ListenAddress, parse_listen
from pitstop.taskfile.service import ServiceSpec, parse_service

__all__ = [
    "BuildCancelled",
    "BuildFailed",
    "BuildStarted",
    "CrashRestart",
    "GaveUp",
    "InstanceCommand",
    "InstanceExited",
    "InstanceOutput",
    "InstanceReady",
    "InstanceStarting",
    "InstanceStatus",
    "InstanceStopped",
    "ListenAddress",
    "RolledBack",
    "ServiceSpec",
    "Status",
    "Supervisor",
    "SupervisorEvent",
    "Swapped",
    "parse_duration",
    "parse_listen",
    "parse_service",
]
