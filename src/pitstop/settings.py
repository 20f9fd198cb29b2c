"""Settings, resolved in one place: flag > environment variable > task file > default.

The request says what the command line gave (None where a flag was absent); the task file
says what the project wants; this module picks, validates, and hands the app plain values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pitstop.engine.output import OutputMode
from pitstop.errors import UserError
from pitstop.request import PlanFlags, RunFlags, UserRequest, WatchFlags
from pitstop.taskfile.model import Task, Taskfile
from pitstop.watch.choices import DEFAULT_DEBOUNCE_MS, OnBusy

# Not typing's (~2 ms at start-up); mypy honours the name. Watch and health code is imported
# where it is used, not by every plain run (tests/test_architecture.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pitstop.taskfile.health import HealthSpec
    from pitstop.watch.filters import FilterOptions

DEFAULT_PROFILE = "development"


@dataclass(frozen=True)
class RunSettings:
    """How a run runs."""

    jobs: int
    output: OutputMode
    quiet: bool
    time_summary: bool
    verbose: bool
    profile: str
    stop_signal: int
    stop_timeout: float
    # PITSTOP_NOTIFY: desktop notifications on (True) or off (False) for every service;
    # None: each service's `desktop_notifications` key decides.
    notify: bool | None = None


@dataclass(frozen=True)
class WatchSettings:
    """What is watched and how a change is handled."""

    paths: tuple[Path, ...] = (Path("."),)
    poll: bool = False
    git_ignore: bool = True
    ignore_globs: tuple[str, ...] = ()
    exts: tuple[str, ...] = ()
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    on_busy: OnBusy = OnBusy.RESTART
    postpone: bool = False
    why: bool = False  # name every changed path, not the first and a count

    def filter_options(self) -> FilterOptions:
        from pitstop.watch.filters import FilterOptions

        return FilterOptions(
            git_ignore=self.git_ignore, ignore_globs=self.ignore_globs, exts=self.exts
        )


def resolve_run(request: UserRequest, taskfile: Taskfile) -> RunSettings:
    flags = request.run
    jobs = resolve_jobs(flags.jobs, taskfile)
    return RunSettings(
        jobs=jobs,
        output=_output_mode(flags, jobs),
        quiet=flags.quiet,
        time_summary=flags.time_summary or taskfile.config.time_summary is True,
        verbose=flags.verbose,
        profile=resolve_profile(request.file.profile),
        stop_signal=_stop_signal(flags.stop_signal),
        stop_timeout=flags.stop_timeout,
        notify=resolve_notify(),
    )


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


def resolve_notify() -> bool | None:
    """PITSTOP_NOTIFY=0 (false, no, off) turns desktop notifications off, 1 (true, yes, on)
    on, for every service; unset or empty, the task file decides."""
    text = os.environ.get("PITSTOP_NOTIFY", "").strip().lower()
    if not text:
        return None
    if text in _YES or text in _NO:
        return text in _YES
    raise UserError(
        f"PITSTOP_NOTIFY={os.environ['PITSTOP_NOTIFY']!r} is neither on nor off",
        hint="use PITSTOP_NOTIFY=0 to turn desktop notifications off, 1 to turn them on",
    )


def desktop_notifications(settings: RunSettings, health: HealthSpec) -> bool:
    """PITSTOP_NOTIFY > the service's `desktop_notifications` > on."""
    return settings.notify if settings.notify is not None else health.desktop_notifications


def resolve_jobs(flag: int | None, taskfile: Taskfile) -> int:
    """--jobs > PITSTOP_JOBS > [config] jobs > 1."""
    if flag is not None:
        value = flag
    elif os.environ.get("PITSTOP_JOBS"):
        try:
            value = int(os.environ["PITSTOP_JOBS"])
        except ValueError:
            raise UserError(
                f"PITSTOP_JOBS={os.environ['PITSTOP_JOBS']!r} is not a number"
            ) from None
    else:
        value = taskfile.config.jobs or 1
    if value < 1:
        raise UserError(
            f"--jobs must be at least 1, not {value}", hint="use -j 1 for one task at a time"
        )
    return value


def resolve_profile(flag: str | None) -> str:
    """--profile > CARGO_MAKE_PROFILE_DEFAULT > development."""
    profile = flag or os.environ.get("CARGO_MAKE_PROFILE_DEFAULT") or DEFAULT_PROFILE
    return profile.strip().lower()


def skip_pattern(flags: PlanFlags) -> re.Pattern[str] | None:
    text = flags.skip_tasks
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        raise UserError(
            f"--skip-tasks {text!r} is not a valid regular expression: {error}",
            hint="quote the pattern for your shell, e.g. --skip-tasks 'lint|fmt'",
        ) from None


def watch_enabled(flags: WatchFlags, task: Task | None) -> bool:
    """--watch, else the task's `watch` attribute unless CARGO_MAKE_DISABLE_WATCH is set."""
    if flags.enabled:
        return True
    if os.environ.get("CARGO_MAKE_DISABLE_WATCH", "").lower() in ("1", "true", "yes"):
        return False
    return bool(task is not None and task.watch is not None and task.watch.enabled)


def resolve_watch(
    flags: WatchFlags, task: Task | None, taskfile: Taskfile, default_on_busy: OnBusy
) -> WatchSettings:
    """Command line > task file `watch = {...}` > defaults."""
    spec = task.watch if task is not None else None
    paths: list[Path] = [Path(p) for p in flags.paths]
    if not paths and spec is not None and spec.paths:
        paths = [taskfile.directory / p for p in spec.paths]
    if not paths:
        paths = [taskfile.directory]
    task_ignores = spec.ignore_pattern if spec is not None else ()
    no_git_ignore = flags.no_git_ignore or (spec is not None and spec.no_git_ignore)
    return WatchSettings(
        paths=tuple(paths),
        poll=flags.poll,
        git_ignore=not no_git_ignore,
        ignore_globs=(*flags.ignore, *task_ignores),
        exts=flags.exts,
        debounce_ms=flags.debounce_ms if flags.debounce_ms is not None else DEFAULT_DEBOUNCE_MS,
        on_busy=OnBusy(flags.on_busy) if flags.on_busy else default_on_busy,
        postpone=flags.postpone or (spec is not None and spec.postpone),
        why=flags.why or (spec is not None and spec.why),
    )


def _output_mode(flags: RunFlags, jobs: int) -> OutputMode:
    if jobs <= 1:
        return OutputMode.INHERIT
    return OutputMode.GROUP if flags.output == "group" else OutputMode.PREFIX


def _stop_signal(name: str) -> int:
    from pitstop.signals import signal_by_name

    try:
        return signal_by_name(name)
    except ValueError:
        raise UserError(
            f"--stop-signal {name!r} is not a signal", hint="use e.g. SIGTERM or SIGINT"
        ) from None
