"""Use cases: list, print, run, watch and serve — wiring loader -> planner -> runner.

Writes only what a command is asked to print (listings to `out`, which the command line hands
in); the run's own progress goes through events to the printer.
"""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path

from pitstop.errors import PitstopError, UserError
from pitstop.request import Command, UserRequest
from pitstop.taskfile.loader import load_taskfile
from pitstop.taskfile.model import Taskfile, current_platform

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def dispatch(request: UserRequest, out: TextIO, err: TextIO) -> int:
    try:
        return _dispatch(request, out, err)
    finally:
        # What `_load_once` froze goes back to the collector: a caller in the same process
        # (the tests) keeps collecting as before.
        gc.unfreeze()


def _dispatch(request: UserRequest, out: TextIO, err: TextIO) -> int:
    cwd = _working_directory(request.file.cwd)
    if request.adhoc:
        from pitstop.app.adhoc import adhoc_taskfile
        from pitstop.app.run import run_command
        from pitstop.settings import skip_pattern

        command_file, name = adhoc_taskfile(request.adhoc, cwd)
        return run_command(command_file, name, request, cwd, skip_pattern(request.plan), out, err)
    if request.command is Command.CONTROL:
        taskfile = _taskfile_with_own_task(request, cwd)
        if taskfile is None:
            if request.control.usage_error is not None:
                raise UserError(request.control.usage_error)
            from pitstop.app.control_verbs import run_verb

            return run_verb(request, cwd, out, err)
        # cargo-make compatibility: `makers start` runs the file's task `start`.
        request = request._replace(command=Command.RUN)
    else:
        taskfile = _load_once(request.file.makefile, cwd)
    _print_warnings(taskfile, err)
    if request.command in (Command.TASK_NAMES, Command.SERVICE_NAMES):
        services = request.command is Command.SERVICE_NAMES
        names = sorted(
            name
            for name, task in taskfile.tasks.items()
            if not task.private and (task.service is not None or not services)
        )
        out.write("".join(f"{name}\n" for name in names))
        return 0
    if request.command is Command.UP and _is_a_task_runner_up(taskfile):
        # cargo-make compatibility: in a file with no service, `up` is the user's own task
        # (often `docker compose up`), run as `makers up` would run it.
        request = request._replace(command=Command.RUN, task="up", args=request.up.services)
    if request.command is Command.UP:
        from pitstop.app.up import run_up
        from pitstop.settings import skip_pattern

        return run_up(taskfile, request, cwd, skip_pattern(request.plan), out, err)
    target = request.task or taskfile.config.default_task_name or "default"
    if request.command is Command.LIST:
        from pitstop.taskfile.listing import list_all_steps

        if not taskfile.in_memory and not taskfile.path.is_file():
            from pitstop.taskfile.planner import no_task_file

            raise no_task_file(taskfile.directory, "--list")

        listing = list_all_steps(
            taskfile,
            category=request.listing.category,
            hide_uninteresting=request.listing.hide_uninteresting,
        )
        out.write(listing)
        return 0
    from pitstop.settings import skip_pattern

    skip = skip_pattern(request.plan)
    if request.command is Command.PRINT_STEPS:
        return _print_steps(taskfile, target, request, skip, out)
    from pitstop.app.run import run_command

    return run_command(taskfile, target, request, cwd, skip, out, err)


def _load_once(makefile: str | None, cwd: Path) -> Taskfile:
    """The task file, loaded with the cyclic collector paused, then frozen (left out of its
    passes from then on).

    A 10,000-task file is ~150,000 objects, none of them garbage: with the collector on,
    loading it (from the cache too) triggers hundreds of passes over the growing heap, and
    every full pass of the run walks it again (docs/benchmarks.md). Frozen here, before any
    event loop exists, are only the modules and this load; a reload (watch, serve) is not
    frozen, and objects frozen still go as soon as nothing refers to them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        taskfile = load_taskfile(makefile, cwd)
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()
    return taskfile


def _working_directory(cwd: str | None) -> Path:
    if cwd is None:
        return Path.cwd()
    path = Path(cwd).resolve()
    if not path.is_dir():
        raise UserError(f"--cwd {cwd}: no such directory", hint="pass an existing directory")
    os.chdir(path)
    return path


def _print_warnings(taskfile: Taskfile, err: TextIO) -> None:
    for warning in taskfile.warnings:
        # The message already starts with file:line:col.
        err.write(f"[pitstop] WARN - {warning.message}\n")


def _print_steps(
    taskfile: Taskfile,
    target: str,
    request: UserRequest,
    skip: re.Pattern[str] | None,
    out: TextIO,
) -> int:
    from pitstop.taskfile.listing import print_steps, print_steps_short
    from pitstop.taskfile.planner import build_plan

    # cargo-make builds this plan without --allow-private.
    plan = build_plan(
        taskfile,
        target,
        allow_private=False,
        skip_tasks=skip,
        skip_init_end=request.plan.skip_init_end,
        platform=current_platform(),
        cwd=Path.cwd(),
    )
    if request.listing.output_format == "short-description":
        out.write(print_steps_short(plan))
    else:
        out.write(print_steps(plan))
    return 0


def _is_a_task_runner_up(taskfile: Taskfile) -> bool:
    """A task named `up` and no service task: `pitstop up` means that task."""
    return _own_task(taskfile, "up")


def _own_task(taskfile: Taskfile, name: str) -> bool:
    """A task of this name in a file with no service task: a verb of the process manager
    (`up`, `start`, `logs`...) has nothing to manage there, so the name means the task."""
    return name in taskfile.tasks and not any(
        task.service is not None for task in taskfile.tasks.values()
    )


def _taskfile_with_own_task(request: UserRequest, cwd: Path) -> Taskfile | None:
    """The task file, if it defines a task named after the verb and no service; else None
    (also when there is no task file or it does not load: the verb talks to the daemon)."""
    assert request.task is not None
    try:
        taskfile = load_taskfile(request.file.makefile, cwd)
    except PitstopError:
        return None
    return taskfile if _own_task(taskfile, request.task) else None
