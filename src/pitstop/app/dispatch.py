"""Use cases: list, print, run, watch and serve — wiring loader -> planner -> runner.

Prints only what a command is asked to print (listings to stdout); the run's own progress
goes through events to the printer.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pitstop.errors import UserError
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Taskfile, current_platform

DEFAULT_PROFILE = "development"


@dataclass(frozen=True)
class Settings:
    """Run settings, resolved once: command line > environment variable > task file > default."""

    jobs: int
    stop_signal: int
    stop_timeout: float


def dispatch(options: argparse.Namespace) -> int:
    if options.loglevel in ("error", "off"):
        options.quiet = True
    if options.completions:
        from pitstop.completion import completion_script

        sys.stdout.write(completion_script(options.completions))
        return 0
    cwd = _working_directory(options.cwd)
    taskfile = load_taskfile(options.makefile, cwd)
    _print_warnings(taskfile, options.quiet)
    if options.task_names:
        names = sorted(name for name, task in taskfile.tasks.items() if not task.private)
        sys.stdout.write("".join(f"{name}\n" for name in names))
        return 0
    target = options.task_flag or options.task or taskfile.config.default_task_name or "default"
    if options.list_steps or options.list_category_steps:
        from pitstop.taskfile.listing import list_all_steps

        listing = list_all_steps(
            taskfile,
            category=options.list_category_steps,
            hide_uninteresting=options.hide_uninteresting,
        )
        sys.stdout.write(listing)
        return 0
    skip = _skip_pattern(options.skip_tasks)
    if options.print_steps:
        return _print_steps(taskfile, target, options, skip)
    from pitstop.app.run import run_command

    return run_command(taskfile, target, options, cwd, skip)


def _working_directory(cwd: str | None) -> Path:
    if cwd is None:
        return Path.cwd()
    path = Path(cwd).resolve()
    if not path.is_dir():
        raise UserError(f"--cwd {cwd}: no such directory", hint="pass an existing directory")
    os.chdir(path)
    return path


def _print_warnings(taskfile: Taskfile, quiet: bool) -> None:
    for warning in taskfile.warnings:
        # The message already starts with file:line:col.
        sys.stderr.write(f"[pitstop] WARN - {warning.message}\n")


def _skip_pattern(text: str | None) -> re.Pattern[str] | None:
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        raise UserError(
            f"--skip-tasks {text!r} is not a valid regular expression: {error}",
            hint="quote the pattern for your shell, e.g. --skip-tasks 'lint|fmt'",
        ) from None


def _print_steps(
    taskfile: Taskfile, target: str, options: argparse.Namespace, skip: re.Pattern[str] | None
) -> int:
    from pitstop.taskfile.listing import print_steps, print_steps_short
    from pitstop.taskfile.planner import build_plan

    # cargo-make builds this plan without --allow-private.
    plan = build_plan(
        taskfile,
        target,
        allow_private=False,
        skip_tasks=skip,
        skip_init_end=options.skip_init_end_tasks,
        platform=current_platform(),
        cwd=Path.cwd(),
    )
    if options.output_format == "short-description":
        sys.stdout.write(print_steps_short(plan))
    else:
        sys.stdout.write(print_steps(plan))
    return 0
