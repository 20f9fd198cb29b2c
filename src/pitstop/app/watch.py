"""The `--watch` use case: run the task's plan, then rerun it whenever watched files change.

Each run starts from a fresh environment and, if the task file changed, a freshly loaded
task file; a broken task file prints its error and waits for the next change instead of
exiting. The changed paths reach the tasks in PITSTOP_CHANGED_PATHS (never in a shell line).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pitstop.engine import reaper
from pitstop.engine.events import Notice
from pitstop.errors import PitstopError, UserError
from pitstop.escape import escape
from pitstop.steps.perform import Runner
from pitstop.taskfile.model import Task, Taskfile
from pitstop.watch import (
    DEFAULT_DEBOUNCE_MS,
    ChangesIgnored,
    OnBusy,
    PathFilter,
    RunCancelled,
    RunFinished,
    RunStarting,
    WatchEvent,
    WatchLoop,
    WatchOptions,
    changed_paths_env,
    terminal_keys,
    watch_changes,
)

if TYPE_CHECKING:
    from pitstop.app.run import Invocation

_CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H"


def watch_options(
    options: argparse.Namespace, task: Task | None, taskfile: Taskfile, default_on_busy: OnBusy
) -> WatchOptions:
    """Command line > task file `watch = {...}` > defaults."""
    spec = task.watch if task is not None else None
    paths: list[Path] = [Path(p) for p in options.watch_path]
    if not paths and spec is not None and spec.paths:
        paths = [taskfile.directory / p for p in spec.paths]
    if not paths:
        paths = [taskfile.directory]
    task_ignores = spec.ignore_pattern if spec is not None else ()
    no_git_ignore = options.no_git_ignore or (spec is not None and spec.no_git_ignore)
    exts = tuple(e.strip().lstrip(".") for e in (options.exts or "").split(",") if e.strip())
    return WatchOptions(
        paths=tuple(paths),
        poll=options.poll,
        git_ignore=not no_git_ignore,
        ignore_globs=(*options.ignore, *task_ignores),
        exts=exts,
        debounce_ms=options.debounce if options.debounce is not None else DEFAULT_DEBOUNCE_MS,
        on_busy=OnBusy(options.on_busy) if options.on_busy else default_on_busy,
        postpone=options.postpone or (spec is not None and spec.postpone),
    )


def watch_source(
    settings: WatchOptions,
    base: Path,
    stop_event: asyncio.Event | None = None,
    always: tuple[Path, ...] = (),
) -> AsyncIterator[frozenset[Path]]:
    """Batches of changes under the watched paths, and of the `always` files (the task file:
    an edit reloads it even when the watch paths, --exts or ignores leave it out).

    A watched *file* is watched through its folder: editors and `sed -i` replace a file by
    renaming a new one over it, which ends an inotify watch on the file itself.
    """
    roots = [p.absolute() for p in settings.paths]
    for root in roots:
        if not root.exists():
            raise UserError(
                f"watch path {root} does not exist", hint="create it or fix the watch paths"
            )
    files = {r.resolve() for r in roots if r.is_file()}
    folders = [r for r in roots if not r.is_file()]
    resolved_folders = [f.resolve() for f in folders]
    always_files = {f.resolve() for f in always if f.is_file()}
    outside = {f for f in always_files if not any(f.is_relative_to(d) for d in resolved_folders)}
    extra = sorted({f.parent for f in files | outside} - set(folders) - set(resolved_folders))
    watched = folders + extra
    path_filter = PathFilter(watched, settings.filter_options(), base=base)

    def keep(change: object, path: str) -> bool:
        if always_files and Path(path).resolve() in always_files:
            return True
        if extra:
            candidate = Path(path).resolve()
            in_folder = any(candidate.is_relative_to(f) for f in resolved_folders)
            if not (in_folder or candidate in files):
                return False
        return path_filter(change, path)

    return watch_changes(
        watched,
        watch_filter=keep,
        debounce_ms=settings.debounce_ms,
        poll=settings.poll,
        stop_event=stop_event,
    )


def describe_trigger(paths: frozenset[Path], cwd: Path, show_all: bool) -> str:
    """`src/app.py changed` or `src/app.py and 4 more changed` (every path with --why)."""
    names = sorted(escape(_relative(p, cwd)) for p in paths)
    if show_all or len(names) == 1:
        return ", ".join(names) + " changed"
    return f"{names[0]} and {len(names) - 1} more changed"


def _relative(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


async def watch(invocation: Invocation, task: Task | None, tmpdir: Path) -> int:
    options = invocation.options
    settings = watch_options(options, task, invocation.taskfile, OnBusy.QUEUE)
    show_all = options.why or bool(task is not None and task.watch is not None and task.watch.why)
    printer = invocation.printer

    async def run_once(paths: frozenset[Path]) -> bool:
        if options.clear:
            sys.stderr.write(_CLEAR_SCREEN)
        try:
            invocation.reload_if_changed(paths)
            plan, ctx = await invocation.fresh_run()
        except PitstopError as error:
            from pitstop.cli import render_error

            render_error(error, sys.stderr)
            return False
        if paths:
            ctx.extra_env = changed_paths_env(paths, tmpdir)
        try:
            result = await Runner(ctx).run_plan(plan, invocation.jobs, report=False)
        finally:
            ctx.cleanup()
        return result.ok

    def notify(event: WatchEvent) -> None:
        if isinstance(event, RunStarting) and event.trigger_paths:
            why = describe_trigger(event.trigger_paths, invocation.cwd, show_all)
            printer.notice(Notice("info", why))
        elif isinstance(event, RunFinished):
            state = "ok" if event.ok else "failed"
            level: Literal["info", "error"] = "info" if event.ok else "error"
            printer.notice(
                Notice(level, f"{state} in {event.duration_s:.2f}s · waiting for changes")
            )
        elif isinstance(event, RunCancelled):
            printer.notice(Notice("info", "run cancelled: files changed (--on-busy restart)"))
        elif isinstance(event, ChangesIgnored):
            why = describe_trigger(event.paths, invocation.cwd, show_all)
            printer.notice(Notice("info", f"ignored while busy: {why} (--on-busy ignore)"))

    changes = watch_source(settings, invocation.cwd, always=(invocation.taskfile.path,))
    loop = WatchLoop(
        run_once, changes, on_busy=settings.on_busy, postpone=settings.postpone, notify=notify
    )
    started = time.monotonic()
    with terminal_keys(loop.trigger_now, loop.stop):
        await loop.run()
    printer.notice(Notice("info", f"watch ended after {time.monotonic() - started:.1f}s"))
    return 0


def run_watch(invocation: Invocation, task: Task | None) -> int:
    from pitstop.app.run import serve_async

    with reaper.temporary_directory("pitstop-watch-") as tmpdir:
        return serve_async(watch(invocation, task, tmpdir), stop_is_success=True)
