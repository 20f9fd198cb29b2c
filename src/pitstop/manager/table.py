"""`pitstop ps`'s table: the control socket's rows (status_json's dicts) back into
ServiceStatus values, printed by the same table as the foreground `up`'s live status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pitstop.manager.status import ServiceState, ServiceStatus


def status_from_json(row: dict[str, Any], now: float) -> ServiceStatus:
    """The inverse of status_json (uptime_s becomes started_at relative to `now`)."""
    uptime = row.get("uptime_s")
    try:
        state = ServiceState(row.get("state"))
    except ValueError:
        state = ServiceState.STOPPED
    return ServiceStatus(
        name=str(row.get("name", "?")),
        state=state,
        version=_int(row.get("version")),
        pid=_int(row.get("pid")),
        address=str(row.get("address") or "-"),
        restarts=_int(row.get("restarts")) or 0,
        swaps=_int(row.get("swaps")) or 0,
        started_at=now - float(uptime) if isinstance(uptime, int | float) else None,
        last_build_ok=row.get("last_build_ok")
        if isinstance(row.get("last_build_ok"), bool)
        else None,
        last_build_s=_float(row.get("last_build_s")),
        reason=str(row["reason"]) if row.get("reason") else None,
        cpu_percent=_float(row.get("cpu_percent")),
        rss_bytes=_int(row.get("rss_bytes")),
        served=_int(row.get("served")),
        failed=_int(row.get("failed")),
        dropped=_int(row.get("dropped")),
        reset=_int(row.get("reset")),
    )


def status_table(rows: Sequence[dict[str, Any]], now: float) -> str:
    from pitstop.engine.output import format_status_table

    table = format_status_table([status_from_json(row, now) for row in rows], now)
    return "".join(line + "\n" for line in table)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
