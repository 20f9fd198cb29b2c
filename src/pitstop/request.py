"""The typed request: what the command line asked for, as values, before any file is read.

`cli` builds a `UserRequest` from argv; everything below `cli` takes it (or a part of it) and
never sees argparse. A field is `None` where the flag was not given, so that `settings` can
resolve it once: flag > environment variable > task file > default.

Imports nothing heavy: `pitstop --list` builds one of these too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

OnBusyChoice = Literal["queue", "restart", "ignore"]
OutputChoice = Literal["prefix", "group"]
Shell = Literal["bash", "zsh", "fish"]


class Command(Enum):
    """What pitstop does with the task file. Whether a run watches or serves is decided by
    the task file too (`watch = true`, `service = {...}`), so those are settings of RUN."""

    RUN = "run"  # run the task: once, watching (--watch, `watch`), or as a service
    LIST = "list"  # --list, --list-category-steps
    PRINT_STEPS = "print-steps"  # --print-steps
    TASK_NAMES = "task-names"  # --task-names (for shell completion)
    COMPLETION = "completion"  # --completions SHELL: needs no task file


@dataclass(frozen=True)
class FileFlags:
    """Which task file, where, and the environment it starts from."""

    makefile: str | None = None  # -f
    cwd: str | None = None  # --cwd
    profile: str | None = None  # -p
    env: tuple[str, ...] = ()  # -e K=V (repeatable)
    env_file: str | None = None  # --env-file


@dataclass(frozen=True)
class PlanFlags:
    allow_private: bool = False
    skip_tasks: str | None = None  # a regular expression, compiled by `settings`
    skip_init_end: bool = False
    no_on_error: bool = False


@dataclass(frozen=True)
class ListFlags:
    category: str | None = None  # --list-category-steps
    hide_uninteresting: bool = False
    output_format: str = "default"  # --print-steps: default or short-description


@dataclass(frozen=True)
class RunFlags:
    jobs: int | None = None
    output: OutputChoice | None = None
    time_summary: bool = False
    quiet: bool = False  # -q, or --loglevel error/off
    verbose: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout: float = 5.0  # seconds (`pitstop.durations`)


@dataclass(frozen=True)
class WatchFlags:
    enabled: bool = False  # --watch
    paths: tuple[str, ...] = ()
    poll: bool = False
    no_git_ignore: bool = False
    ignore: tuple[str, ...] = ()
    exts: tuple[str, ...] = ()
    debounce_ms: int | None = None
    on_busy: OnBusyChoice | None = None
    why: bool = False
    clear: bool = False
    postpone: bool = False


@dataclass(frozen=True)
class UserRequest:
    command: Command
    task: str | None = None  # -t, else the positional TASK; None: the file's default task
    args: tuple[str, ...] = ()  # everything after TASK
    file: FileFlags = field(default_factory=FileFlags)
    plan: PlanFlags = field(default_factory=PlanFlags)
    listing: ListFlags = field(default_factory=ListFlags)
    run: RunFlags = field(default_factory=RunFlags)
    watch: WatchFlags = field(default_factory=WatchFlags)
    shell: Shell | None = None  # for COMPLETION
