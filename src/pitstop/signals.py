"""One grammar for signal names, in flags (`--stop-signal`) and task files (`stop_signal`).
Pure: the task file phase checks names when the file loads, without loading the process
machinery. Callers turn the ValueError into an error with their own location."""

from __future__ import annotations

import signal


def signal_by_name(name: str | int) -> signal.Signals:
    """`SIGTERM`, `TERM`, `term` or `15` -> signal.SIGTERM; raises ValueError if unknown."""
    if isinstance(name, int):
        return signal.Signals(name)
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None
