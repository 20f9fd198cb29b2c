"""The printer: events -> lines for people. The only code that formats the run for a terminal.

pitstop's own lines go to stderr, so that stdout carries exactly what the tasks printed
(pipes and the cargo-make comparison cases rely on that).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TextIO

from pitstop.engine.events import (
    ErrorReported,
    Event,
    Notice,
    RunFinished,
    TaskFinished,
    TaskOutput,
    TaskSkipped,
    TaskStarted,
)
from pitstop.engine.spool import Spool
from pitstop.errors import PitstopError
from pitstop.escape import escape

# Not typing's; mypy honours the name. The service modules are imported where a service's
# event, state or table is printed: a plain run never needs them (~15 ms of imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pitstop.manager.status import ServiceStatus, StateChanged
    from pitstop.supervisor import events as ev

# Distinct, readable foreground colours for task prefixes (cyan, yellow, green, magenta, blue...).
_CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H"
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


def error_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def format_error(error: PitstopError, *, colour: bool) -> str:
    """`error: message`, then the file:line, the source line with a caret, and a hint.

    Every piece may quote a file's name or content, so each is escaped (see escape.py).
    """
    label = "\x1b[1;31merror\x1b[0m" if colour else "error"
    lines = [f"{label}: {escape(error.message)}"]
    location = error.location
    if location is not None:
        lines.append(
            f"  --> {escape(_display_path(location.path))}"
            f"{_line_suffix(location.line, location.col)}"
        )
        source = location.source_line()
        if source is not None:
            gutter = str(location.line)
            lines.append(f"{' ' * len(gutter)} |")
            lines.append(f"{gutter} | {escape(source)}")
            if location.col > 0:
                lines.append(f"{' ' * len(gutter)} | {_caret_padding(source[: location.col - 1])}^")
    if error.hint:
        lines.append(f"hint: {escape(error.hint)}")
    return "\n".join(lines) + "\n"


def quoted(names: tuple[str, ...]) -> str:
    """Task names in a message: `"build", "test"` (a name is always quoted)."""
    return ", ".join(f'"{name}"' for name in names)


def _caret_padding(before: str) -> str:
    """Blanks as wide as the escaped text before the caret; tabs kept, so they line up."""
    return "".join(c if c == "\t" else " " for c in escape(before))


def _line_suffix(line: int, col: int) -> str:
    if line <= 0:
        return ""
    return f":{line}:{col}" if col > 0 else f":{line}"


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class Printer:
    """The one printer. The command line hands it the streams: `out` gets the tasks' own
    output, `err` everything pitstop says."""

    out: TextIO
    err: TextIO
    mode: OutputMode = OutputMode.INHERIT
    quiet: bool = False
    time_summary: bool = False
    colour: bool | None = None
    # `pitstop up`: several services on one stream. A service's state changes are its event
    # lines (the supervisors' own one-line summaries would say the same thing again).
    services: bool = False
    # `pitstop up` on a terminal: a status table kept at the bottom, erased before and drawn
    # again after every line (and by the caller each second, for the uptimes).
    footer: Callable[[], list[ServiceStatus]] | None = None
    _footer_lines: int = 0
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

    def __call__(self, event: Event | ev.SupervisorEvent | StateChanged) -> None:
        # The run's own events first; a service's (no subclass of these) after them.
        if isinstance(event, TaskOutput):
            self._output(event)
        elif isinstance(event, TaskStarted):
            self._log(f"Running Task: {event.name}", event.services)
        elif isinstance(event, TaskSkipped):
            self._log(f"Skipping Task: {event.name} {event.reason}".rstrip(), event.services)
        elif isinstance(event, TaskFinished):
            self._finished(event)
        elif isinstance(event, Notice):
            self.notice(event)
        elif isinstance(event, ErrorReported):
            text = format_error(event.error, colour=error_colour(self.err))
            if self.services and event.source is not None:  # whose build or file broke
                head = self._prefix(event.source.name)
                text = "".join(head + line for line in text.splitlines(keepends=True))
            self._write_text(self.err, text)
        elif isinstance(event, RunFinished):
            self._run_finished(event)
        else:
            self._service_call(event)

    def _service_call(self, event: ev.SupervisorEvent | StateChanged) -> None:
        from pitstop.manager.status import StateChanged
        from pitstop.supervisor import events as ev

        if isinstance(event, ev.InstanceOutput):
            # A service's output, always prefixed with the service and its instance.
            self.task_line(f"{event.service}#{event.n}", event.stream, event.line, event.service)
        elif isinstance(event, StateChanged):
            self._state_line(event.status)
        elif isinstance(event, ev.LimitCrossed | ev.ResourceRegression):
            self._health_line(event)
        elif isinstance(event, ev.SwapFinished):  # with one service or many
            warn = bool(event.failed)
            self.notice(Notice("warning" if warn else "info", event.summary, event.source))
        elif isinstance(event, ev.SupervisorEvent) and not self.services:
            self._service_event(event)

    def clear_screen(self) -> None:
        """--clear: before each run of a watch."""
        self.err.write(_CLEAR_SCREEN)
        self.err.flush()

    # ------------------------------------------------------------------ pieces

    def notice(self, event: Notice) -> None:
        if event.level == "info" and self.quiet:
            return
        label = {"info": "INFO", "warning": "WARN", "error": "ERROR"}[event.level]
        colour = {"info": "", "warning": "33", "error": "31"}[event.level]
        head = self._paint("[pitstop]", "1")
        if self.services and event.source is not None:
            head = self._prefix(event.source.name) + head
        self._write(self.err, f"{head} {self._paint(label, colour)} - {event.message}")

    def task_line(self, name: str, stream: str, line: str, colour_of: str | None = None) -> None:
        """One line of a long-running process's output, always prefixed (services)."""
        target = self.out if stream == "stdout" else self.err
        self._write(target, self._prefix(name, colour_of) + line)

    def _state_line(self, status: ServiceStatus) -> None:
        from pitstop.manager.status import ServiceState

        if self.quiet and status.state not in (ServiceState.FAILED, ServiceState.BLOCKED):
            return
        self._write(self.err, self._prefix(status.name) + describe_state(status))

    def _health_line(self, event: ev.LimitCrossed | ev.ResourceRegression) -> None:
        """A crossed limit or a regression: a warning that stands out (bold, reverse video)."""
        from pitstop.supervisor import events as ev
        from pitstop.supervisor.health_text import limit_text, regression_text

        limit = isinstance(event, ev.LimitCrossed)
        text = limit_text(event) if limit else regression_text(event)  # type: ignore[arg-type]
        head = self._paint("[pitstop]", "1")
        if self.services:
            head = self._prefix(event.service) + head
        self._write(
            self.err, f"{head} {self._paint('ALERT', '1;7;33')} - {self._paint(text, '1;33')}"
        )

    def _service_event(self, event: ev.SupervisorEvent) -> None:
        from pitstop.supervisor import events as ev

        text = _describe_service_event(event)
        if text is not None:
            failed = isinstance(event, ev.BuildFailed | ev.RolledBack | ev.GaveUp | ev.CheckFailed)
            self.notice(Notice("error" if failed else "info", text, event.source))

    def _log(self, message: str, services: tuple[str, ...] = ()) -> None:
        if not self.quiet:
            head = self._paint("[pitstop]", "1")
            if self.services and services:  # a service's build step: the service's prefix
                head = self._prefix(",".join(services)) + head
            self._write(self.err, f"{head} INFO - {message}")

    def _output(self, event: TaskOutput) -> None:
        if self.mode is OutputMode.GROUP:
            spool = self._blocks.get(event.name) or self._blocks.setdefault(event.name, Spool())
            spool.append(event.stream, event.line)
            return
        stream = self.out if event.stream == "stdout" else self.err
        # In `up`, a build's lines carry the prefix of the service(s) it builds, like their
        # instances' lines; elsewhere the task's own name.
        name = ",".join(event.services) if self.services and event.services else event.name
        self._write(stream, self._prefix(name) + event.line)

    def _prefix(self, name: str, colour_of: str | None = None) -> str:
        # Sub-flow tasks (run_task) are not in the plan: widen as they appear.
        self._width = max(self._width, len(name))
        text = f"{name:<{self._width}} | "
        # A shared build's "api,web" is painted in its first service's colour.
        colour = self._colours.get(colour_of or name.split(",")[0], _PALETTE[0])
        return self._paint(text, colour)

    def _finished(self, event: TaskFinished) -> None:
        block = self._blocks.pop(event.name, None)
        if block is not None:
            with block:
                for stream_name, line in block.replay():
                    stream = self.out if stream_name == "stdout" else self.err
                    self._write(stream, self._prefix(event.name) + line)
        if event.status != 0 and event.ignored:
            self._log(f'task "{event.name}" failed with exit code {event.status} (errors ignored)')

    def _run_finished(self, event: RunFinished) -> None:
        if self.time_summary and event.durations:
            self._time_summary(event)
        if event.ok:
            self._log(f"Build Done in {event.duration:.2f} seconds.")
            return
        if event.interrupted:
            lines = ["interrupted"]
        else:
            lines = [f'task "{event.failed}" failed with exit code {event.status}']
        if event.stopped:
            lines.append("stopped: " + quoted(event.stopped))
        if event.not_run:
            lines.append("not run: " + quoted(event.not_run))
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

    def _write(self, stream: TextIO, line: str) -> None:
        self._write_text(stream, line + "\n")

    def _write_text(self, stream: TextIO, text: str) -> None:
        live = self._footer_live() and _is_terminal(stream)
        if live:
            self._erase_footer()
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            # `pitstop ci | head`: the reader went away. The run goes on and what it prints is
            # dropped, instead of a traceback for every line that follows.
            _discard(stream)
            return
        if live:
            self._draw_footer()

    # ------------------------------------------------------------------ the status footer

    def redraw_footer(self) -> None:
        if self._footer_live():
            self._erase_footer()
            self._draw_footer()

    def close_footer(self) -> None:
        """Erase the table for good (pitstop is about to exit)."""
        if self._footer_live():
            self._erase_footer()
            self.err.flush()
        self.footer = None

    def _footer_live(self) -> bool:
        return self.footer is not None and _is_terminal(self.err)

    def _erase_footer(self) -> None:
        if self._footer_lines:
            # To the start of the table's first line, then clear to the end of the screen.
            self.err.write(f"\x1b[{self._footer_lines}F\x1b[J")
            self._footer_lines = 0

    def _draw_footer(self) -> None:
        assert self.footer is not None
        rows = format_status_table(self.footer(), time.time(), _columns(self.err))
        self.err.write(
            "".join(f"{self._paint(row, '7') if i == 0 else row}\n" for i, row in enumerate(rows))
        )
        self.err.flush()
        self._footer_lines = len(rows)


def _discard(stream: TextIO) -> None:
    """Point a stream whose reader went away at /dev/null, so that later writes, and the
    flush at exit of what is still buffered, succeed and go nowhere."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


_TABLE_HEADER = (
    "SERVICE",
    "STATE",
    "VERSION",
    "PID",
    "CPU",
    "MEM",
    "ADDRESS",
    "UPTIME",
    "SWAPS",
    "RESTARTS",
    "BUILD",
)


def format_status_table(rows: list[ServiceStatus], now: float, width: int = 0) -> list[str]:
    """The services as a table: a header, one line per service, the reason last; each line
    cut to `width` characters (0: no limit) so that a terminal never wraps it."""
    from pitstop.supervisor.health_text import format_bytes

    cells = [_TABLE_HEADER]
    reasons = [""]
    for row in rows:
        uptime = row.uptime(now)
        if row.last_build_ok is None or row.last_build_s is None:
            build = "-"
        else:
            build = f"{'ok' if row.last_build_ok else 'failed'} {row.last_build_s:.2f}s"
        cells.append(
            (
                row.name,
                row.state.value,
                f"#{row.version}" if row.version is not None else "-",
                str(row.pid) if row.pid is not None else "-",
                f"{row.cpu_percent:.0f}%" if row.cpu_percent is not None else "-",
                format_bytes(row.rss_bytes) if row.rss_bytes is not None else "-",
                row.address,
                _uptime_text(uptime) if uptime is not None else "-",
                str(row.swaps),
                str(row.restarts),
                build,
            )
        )
        reasons.append(escape(row.reason) if row.reason else "")
    widths = [max(len(line[i]) for line in cells) for i in range(len(_TABLE_HEADER))]
    lines = []
    for line, reason in zip(cells, reasons, strict=True):
        text = "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        text = f"{text}  {reason}".rstrip()
        lines.append(text[: width - 1] if width > 1 else text)
    return lines


def _uptime_text(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def describe_state(status: ServiceStatus) -> str:
    """A service's state as its event line: `serving #2 (pid 4711) on 127.0.0.1:8080`."""
    from pitstop.manager.status import ServiceState

    state = status.state
    serving = f"#{status.version}" if status.version is not None else None
    build = ""
    if status.last_build_s is not None:
        result = "ok" if status.last_build_ok else "failed"
        build = f" · last build {result} in {status.last_build_s:.2f}s"
    if state is ServiceState.SERVING:
        text = f"serving {serving} (pid {status.pid}) on {status.address}"
        if status.swaps:
            text += f" · {status.swaps} swap{'s' if status.swaps != 1 else ''}"
        if status.restarts:
            text += f" · {status.restarts} crash restart{'s' if status.restarts != 1 else ''}"
        if status.reason:
            text += f" · {status.reason}"
        return text + build
    if state is ServiceState.BUILDING:
        return "building" + (f" ({serving} keeps serving)" if serving else "")
    if state is ServiceState.SWAPPING:
        return f"starting a new instance beside {serving}"
    if state in (ServiceState.FAILED, ServiceState.BLOCKED):
        return f"{state.value}: {status.reason or 'no reason given'}"
    if state is ServiceState.STARTING and status.reason:
        return f"starting ({status.reason})"
    return str(state.value)


def _describe_service_event(event: ev.SupervisorEvent) -> str | None:
    """The supervisor's events worth a line; the rest show in the status line or not at all."""
    from pitstop.supervisor import events as ev

    match event:
        case ev.Status(text):
            return text
        case ev.RolledBack(n, reason, None):
            return f"instance #{n} failed to start: {reason}"
        case ev.RolledBack(n, reason, serving):
            return f"instance #{n} rolled back: {reason}; #{serving} keeps serving"
        case ev.CheckFailed(n, command, reason, output):
            shown = "".join(f"\n    {line}" for line in output) or " (no output)"
            return f"check of #{n} `{command}` {reason}:{shown}"
        case ev.ChecksPassed(n, count):
            return f"#{n} passed {count} check{'s' if count != 1 else ''}"
        case ev.InstanceExited(n, status):
            return f"instance #{n} exited with status {status}"
        case ev.CrashRestart(n, delay):
            return f"restarting after a crash of #{n} in {delay:.1f}s"
        case ev.GaveUp(reason):
            return f"not restarting: {reason}; waiting for a change"
        case ev.InstanceStatus(n, text):
            return f"#{n}: {text}"
    return None
