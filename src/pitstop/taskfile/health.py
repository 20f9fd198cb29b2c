"""The service table's health keys: resource sampling, limits and what crossing one does,
regression warnings. Pure parsing, no I/O; `service.py` calls `read_health` with its `fail`,
so each mistake is reported at its own key like every other service key.

    limits = { memory = "512MiB", cpu = "90%", cpu_for = "30s" }
    on_limit = "swap"                 # or "alert" (the default): only tell
    alert_command = ["./page-me"]     # argv (a string is split like a shell line, never run by one)
    sample_interval = "2s"            # how often the instance's process tree is sampled
    settle = "30s"                    # after a new version's swap, when it is compared to the last
    regression = "50%"                # how much more RSS (or CPU) than the last version warns
    desktop_notifications = false     # no notify-send/osascript for its alerts (PITSTOP_NOTIFY=0: none)
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pitstop.durations import parse_duration
from pitstop.taskfile.messages import type_name

if TYPE_CHECKING:
    from pitstop.taskfile.service import Fail

OnLimit = Literal["alert", "swap"]

HEALTH_KEYS = (
    "limits",
    "on_limit",
    "alert_command",
    "sample_interval",
    "settle",
    "regression",
    "desktop_notifications",
)
LIMIT_KEYS = ("memory", "cpu", "cpu_for")

# Binary (KiB, 1024) and decimal (KB, 1000) units, as written: `512MiB`, `1.5GB`.
MEMORY_UNITS = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*")
_PERCENT = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*%\s*")


@dataclass(frozen=True)
class ResourceLimits:
    memory: int | None = None  # bytes of RSS, the whole process tree
    cpu: float | None = None  # percent of one CPU (200 = two CPUs), the whole process tree
    cpu_for: float = 30.0  # CPU above `cpu` this long crosses the limit (short peaks do not)


@dataclass(frozen=True)
class HealthSpec:
    limits: ResourceLimits = ResourceLimits()
    on_limit: OnLimit = "alert"
    alert_command: tuple[str, ...] = ()
    sample_interval: float = 2.0
    settle: float = 30.0
    regression: float = 0.5  # +50 %: a new version using more than 1.5x warns
    # An alert also shows a desktop notification (notify-send, osascript) where one exists;
    # PITSTOP_NOTIFY overrides this (settings.desktop_notifications).
    desktop_notifications: bool = True


def read_health(raw: Mapping[str, Any], fail: Fail) -> HealthSpec:
    """The health keys of a service table (the others are service.py's)."""
    return HealthSpec(
        limits=_limits(raw, fail),
        on_limit=_on_limit(raw, fail),
        alert_command=_alert_command(raw, fail),
        sample_interval=_positive_duration(raw, "sample_interval", 2.0, fail),
        settle=_positive_duration(raw, "settle", 30.0, fail),
        regression=_percent(raw["regression"], ("regression",), fail) / 100.0
        if "regression" in raw
        else 0.5,
        desktop_notifications=_bool(raw, "desktop_notifications", True, fail),
    )


def _bool(raw: Mapping[str, Any], key: str, default: bool, fail: Fail) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise fail((key,), f"must be true or false (found {_found(value)})", f"write {key} = false")
    return value


def _found(value: object) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return repr(value)
    return type_name(value)


def _limits(raw: Mapping[str, Any], fail: Fail) -> ResourceLimits:
    value = raw.get("limits")
    if value is None:
        return ResourceLimits()
    hint = 'write limits = { memory = "512MiB", cpu = "90%", cpu_for = "30s" }'
    if not isinstance(value, dict):
        raise fail(("limits",), f"must be a table (found {type_name(value)})", hint)
    for key in value:
        if key not in LIMIT_KEYS:
            raise fail(("limits", key), "is not a limit", f"the limits are {', '.join(LIMIT_KEYS)}")
    if not value:
        raise fail(("limits",), "names no limit", hint)
    memory = _memory(value["memory"], ("limits", "memory"), fail) if "memory" in value else None
    cpu = _percent(value["cpu"], ("limits", "cpu"), fail) if "cpu" in value else None
    cpu_for = _positive_duration(value, "cpu_for", 30.0, fail, ("limits", "cpu_for"))
    if "cpu_for" in value and cpu is None:
        raise fail(("limits", "cpu_for"), "only applies with a cpu limit", 'add cpu = "90%"')
    return ResourceLimits(memory=memory, cpu=cpu, cpu_for=cpu_for)


def _memory(value: object, key_path: tuple[str, ...], fail: Fail) -> int:
    units = ", ".join(MEMORY_UNITS)
    hint = f'write memory = "512MiB" (units: {units})'
    if isinstance(value, int) and not isinstance(value, bool):
        amount, unit = float(value), "B"  # a plain number is bytes
    elif isinstance(value, str) and (match := _AMOUNT.fullmatch(value)):
        amount, unit = float(match.group(1)), match.group(2)
        if unit not in MEMORY_UNITS:
            what = f"unknown unit {unit!r}" if unit else "no unit"
            raise fail(key_path, f"has {what} (found {value!r})", hint)
    else:
        raise fail(key_path, f'must be an amount such as "512MiB" (found {_found(value)})', hint)
    size = int(amount * MEMORY_UNITS[unit])
    if size <= 0:
        raise fail(key_path, f"must be more than zero (found {_found(value)})", hint)
    return size


def _percent(value: object, key_path: tuple[str, ...], fail: Fail) -> float:
    name = key_path[-1]
    hint = f'write {name} = "90%" (more than 100% for several CPUs, e.g. "200%")'
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise fail(key_path, f'must be a percentage such as "90%" (found {_found(value)})', hint)
    percent = float(match.group(1))
    if not math.isfinite(percent) or percent <= 0:
        raise fail(key_path, f"must be more than 0% (found {value!r})", hint)
    return percent


def _positive_duration(
    raw: Mapping[str, Any],
    key: str,
    default: float,
    fail: Fail,
    key_path: tuple[str, ...] | None = None,
) -> float:
    if key not in raw:
        return default
    path = key_path or (key,)
    value = raw[key]
    hint = f'write {key} = "{default:g}s"'
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise fail(
            path,
            f'must be a duration of more than zero such as "500ms" or "30s" (found {_found(value)})',
            hint,
        )
    return seconds


def _on_limit(raw: Mapping[str, Any], fail: Fail) -> OnLimit:
    value = raw.get("on_limit", "alert")
    if value == "alert":
        return "alert"
    if value == "swap":
        return "swap"
    raise fail(
        ("on_limit",),
        f'must be "swap" or "alert" (found {_found(value)})',
        'on_limit = "swap" replaces the instance with a fresh one (zero downtime); '
        '"alert" only tells',
    )


def _alert_command(raw: Mapping[str, Any], fail: Fail) -> tuple[str, ...]:
    value = raw.get("alert_command")
    if value is None:
        return ()
    hint = (
        'write alert_command = ["./notify", "--urgent"] (it gets PITSTOP_SERVICE, ... in its env)'
    )
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise fail(("alert_command",), f"cannot be split into words: {exc}", hint) from None
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise fail(
                    ("alert_command", i), f"must be a string (found {type_name(item)})", hint
                )
        argv = list(value)
    else:
        raise fail(
            ("alert_command",), f"must be a list of strings (found {type_name(value)})", hint
        )
    if not argv or not argv[0]:
        raise fail(("alert_command",), "is empty", hint)
    return tuple(argv)
