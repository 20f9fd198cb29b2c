"""The printer: events -> lines for people. The only code that formats the run for a terminal.

pitstop's own lines go to stderr, so that stdout carries exactly what the tasks printed
(pipes and the cargo-make comparison cases rely on that).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import TextIO

from pitstop.engine.events import (
    Event,
    Notice,
    RunFinished,
    TaskFinished,
    TaskOutput,
    TaskSkipped,
    TaskStarted,
)
from pitstop.engine.spool import Spool

# Distinct, readable foreground colours for task prefixes (cyan, yellow, green, magenta, blue...).
_PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


class OutputMode(Enum):
    """How the output of parallel tasks is shown."""

    INHERIT = "inherit"  # children write to the terminal directly (sequential runs)
    PREFIX = "prefix"  # each line prefixed with the task name as it comes
    GROUP = "group"  # each task's output printed as one block when it ends


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("CARGO_MAKE_DISABLE_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


@dataclass
class Printer:
    mode: OutputMode = OutputMode.INHERIT
    quiet: bool = False
    time_summary: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    colour: bool | None = None
    _colours: dict[str, str] = field(default_factory=dict)
    _width: int = 0
    _blocks: dict[str, Spool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.colour is None:
            self.colour = use_colour(self.err)

    def prepare(self, names: list[str]) -> None:
        """Know the task names in advance, so prefixes line up."""
        self._width = max((len(n) for n in names), default=0)
        for i, name in enumerate(sorted(set(names))):
            self._colours[name] = _PALETTE[i % len(_PALETTE)]

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskOutput):
            self._output(event)
        elif isinstance(event, TaskStarted):
            self._log(f"Running Task: {event.name}")
        elif isinstance(event, TaskSkipped):
            self._log(f"Skipping Task: {event.name} {event.reason}".rstrip())
        elif isinstance(event, TaskFinished):
            self._finished(event)
        elif isinstance(event, Notice):
            self.notice(event)
        elif isinstance(event, RunFinished):
            self._run_finished(event)

    # ------------------------------------------------------------------ pieces

    def notice(self, event: Notice) -> None:
        if event.level == "info" and self.quiet:
            return
        label = {"info": "INFO", "warning": "WARN", "error": "ERROR"}[event.level]
        colour = {"info": "", "warning": "33", "error": "31"}[event.level]
        self._write(
            self.err,
            f"{self._paint('[pitstop]', '1')} {self._paint(label, colour)} - {event.message}",
        )

    def task_line(self, name: str, stream: str, line: str) -> None:
        """One line of a long-running process's output, always prefixed (services)."""
        target = self.out if stream == "stdout" else self.err
        self._write(target, self._prefix(name) + line)

    def _log(self, message: str) -> None:
        if not self.quiet:
            self._write(self.err, f"{self._paint('[pitstop]', '1')} INFO - {message}")

    def _output(self, event: TaskOutput) -> None:
        if self.mode is OutputMode.GROUP:
            spool = self._blocks.get(event.name) or self._blocks.setdefault(event.name, Spool())
            spool.append(event.stream, event.line)
            return
        stream = self.out if event.stream == "stdout" else self.err
        self._write(stream, self._prefix(event.name) + event.line)

    def _prefix(self, name: str) -> str:
        # Sub-flow tasks (run_task) are not in the plan: widen as they appear.
        self._width = max(self._width, len(name))
        text = f"{name:<{self._width}} | "
        return self._paint(text, self._colours.get(name, _PALETTE[0]))

    def _finished(self, event: TaskFinished) -> None:
        with self._blocks.pop(event.name, None) or Spool() as block:
            for stream_name, line in block.replay():
                stream = self.out if stream_name == "stdout" else self.err
                self._write(stream, self._prefix(event.name) + line)
        if event.status != 0 and event.ignored:
            self._log(f"Task {event.name} failed with exit code {event.status} (errors ignored)")

    def _run_finished(self, event: RunFinished) -> None:
        if self.time_summary and event.durations:
            self._time_summary(event)
        if event.ok:
            self._log(f"Build Done in {event.duration:.2f} seconds.")
            return
        lines = [f"task '{event.failed}' failed with exit code {event.status}"]
        if event.stopped:
            lines.append("stopped: " + ", ".join(event.stopped))
        if event.not_run:
            lines.append("not run: " + ", ".join(event.not_run))
        self.notice(Notice("error", "; ".join(lines)))

    def _time_summary(self, event: RunFinished) -> None:
        total = sum(d for _, d in event.durations) or 1.0
        self._write(self.err, f"{self._paint('[pitstop]', '1')} INFO - ==== Time Summary ====")
        width = max(len(name) for name, _ in event.durations)
        for name, seconds in sorted(event.durations, key=lambda item: -item[1]):
            share = 100.0 * seconds / total
            self._write(
                self.err, f"[pitstop] INFO - {name:<{width}}: {seconds:8.3f}s {share:5.1f}%"
            )

    def _paint(self, text: str, code: str) -> str:
        if not self.colour or not code:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    @staticmethod
    def _write(stream: TextIO, line: str) -> None:
        stream.write(line + "\n")
        stream.flush()
