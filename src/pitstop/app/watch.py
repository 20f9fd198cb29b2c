"""The `--watch` use case: run the task's plan, then rerun it whenever watched files change.

Each run starts from a fresh environment and, if the task file changed, a freshly loaded
task file; a broken task file prints its error and waits for the next change instead of
exiting. The changed paths reach the tasks in PITSTOP_CHANGED_PATHS (never in a shell line).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pitstop.engine import reaper
from pitstop.engine.events import ErrorReported, Notice, Source
from pitstop.errors import PitstopError, TaskFileError, UserError
from pitstop.escape import escape
from pitstop.settings import WatchSettings, resolve_watch
from pitstop.steps.perform import Runner
from pitstop.taskfile.model import Task
from pitstop.watch.changes import changed_paths_env, watch_changes
from pitstop.watch.filters import PathFilter
from pitstop.watch.keys import terminal_keys
from pitstop.watch.loop import (
    ChangesIgnored,
    OnBusy,
    RunCancelled,
    RunEnded,
    RunStarting,
    WatchEvent,
    WatchLoop,
)

if TYPE_CHECKING:
    from pitstop.app.run import Invocation


def watch_source(
    settings: WatchSettings,
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
    flags = invocation.request.watch
    settings = resolve_watch(flags, task, invocation.taskfile, OnBusy.QUEUE)
    show_all = settings.why
    printer = invocation.printer
    failures: list[str] = []  # the last run's failure, for its status line

    async def run_once(paths: frozenset[Path]) -> bool:
        failures.clear()
        if flags.clear:
            printer.clear_screen()
        try:
            invocation.reload_if_changed(paths)
            plan, ctx = await invocation.fresh_run()
        except PitstopError as error:
            printer(ErrorReported(error, Source(invocation.target)))
            if isinstance(error, TaskFileError):  # the file is broken, not the task
                failures.append(f"{invocation.taskfile.path.name} does not load")
            else:
                failures.append(f'task "{invocation.target}" could not start')
            return False
        if paths:
            ctx.extra_env = changed_paths_env(paths, tmpdir)
        try:
            result = await Runner(ctx).run_plan(plan, invocation.jobs, report=False)
        finally:
            ctx.cleanup()
        if not result.ok and result.failed is not None:
            failures.append(f'task "{result.failed}" failed with exit code {result.status}')
        return result.ok

    def notify(event: WatchEvent) -> None:
        if isinstance(event, RunStarting) and event.trigger_paths:
            why = describe_trigger(event.trigger_paths, invocation.cwd, show_all)
            printer.notice(Notice("info", why, event.source))
        elif isinstance(event, RunEnded):
            state = "ok" if event.ok else "failed"
            level: Literal["info", "error"] = "info" if event.ok else "error"
            why = "" if event.ok or not failures else f": {failures[-1]}"
            printer.notice(
                Notice(
                    level,
                    f"{time.strftime('%H:%M:%S')} {state} in {event.duration_s:.2f}s{why}"
                    " · waiting for changes",
                    event.source,
                )
            )
        elif isinstance(event, RunCancelled):
            why = "files changed (--on-busy restart)" if event.restart else "watch stopping"
            printer.notice(Notice("info", f"run cancelled: {why}", event.source))
        elif isinstance(event, ChangesIgnored):
            why = describe_trigger(event.paths, invocation.cwd, show_all)
            printer.notice(
                Notice("info", f"ignored while busy: {why} (--on-busy ignore)", event.source)
            )

    changes = watch_source(settings, invocation.cwd, always=(invocation.taskfile.path,))
    loop = WatchLoop(
        run_once,
        changes,
        on_busy=settings.on_busy,
        postpone=settings.postpone,
        notify=notify,
        source=Source(invocation.target),
    )
    started = time.monotonic()
    with terminal_keys(loop.trigger_now, loop.stop) as keys:
        if keys:
            printer.notice(Notice("info", "keys: Enter or r reruns now, q quits"))
        await loop.run()
    printer.notice(Notice("info", f"watch ended after {time.monotonic() - started:.1f}s"))
    return 0


def run_watch(invocation: Invocation, task: Task | None) -> int:
    from pitstop.app.event_loop import serve_async

    with reaper.temporary_directory("pitstop-watch-") as tmpdir:
        return serve_async(watch(invocation, task, tmpdir), stop_is_success=True)
