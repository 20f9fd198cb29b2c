"""`pitstop ps`'s table, from the rows the control socket gives (status_json's dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLUMNS = ("NAME", "STATE", "VERSION", "PID", "ADDRESS", "UPTIME", "RESTARTS", "LAST BUILD")


def duration(seconds: float | None) -> str:
    """A short uptime: 42s, 5m03s, 2h05m, 3d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def last_build(row: dict[str, Any]) -> str:
    ok, seconds = row.get("last_build_ok"), row.get("last_build_s")
    if ok is None:
        return "-"
    took = f" {seconds:.1f}s" if isinstance(seconds, int | float) else ""
    return ("ok" if ok else "failed") + took


def cells(row: dict[str, Any]) -> tuple[str, ...]:
    def text(value: object) -> str:
        return "-" if value is None or value == "" else str(value)

    version = row.get("version")
    return (
        text(row.get("name")),
        text(row.get("state")),
        f"#{version}" if version is not None else "-",
        text(row.get("pid")),
        text(row.get("address")),
        duration(row.get("uptime_s")),
        text(row.get("restarts")),
        last_build(row),
    )


def status_table(rows: Sequence[dict[str, Any]]) -> str:
    """The table, then one line per service that failed or is blocked, saying why."""
    lines = [COLUMNS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    text = "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in lines
    )
    for row in rows:
        if row.get("reason"):
            text += f"{row.get('name')}: {row.get('state')}: {row['reason']}\n"
    return text
