"""Health events as text, for the printer and the log files (small: the printer imports it)."""

from __future__ import annotations

from pitstop.supervisor import events as ev


def format_bytes(size: float) -> str:
    """`512.0MiB`: binary units, one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError


def limit_text(event: ev.LimitCrossed) -> str:
    """`#3 crossed its memory limit: 530.2MiB > 512.0MiB · swap`."""
    if event.limit == "memory":
        value, threshold = format_bytes(event.value), format_bytes(event.threshold)
    else:
        value, threshold = f"{event.value:.0f}%", f"{event.threshold:g}%"
    return f"#{event.n} crossed its {event.limit} limit: {value} > {threshold} · {event.action}"


def regression_text(event: ev.ResourceRegression) -> str:
    """`#5 uses more than #4: RSS 40.1MiB → 80.3MiB (+100%), CPU 2% → 3% (threshold +50%)`."""
    change = (
        f"{(event.rss_after / event.rss_before - 1) * 100:+.0f}%" if event.rss_before else "new"
    )
    return (
        f"#{event.n} uses more than #{event.previous}: RSS {format_bytes(event.rss_before)} → "
        f"{format_bytes(event.rss_after)} ({change}), CPU {event.cpu_before:.0f}% → "
        f"{event.cpu_after:.0f}% (threshold +{event.threshold * 100:g}%)"
    )
