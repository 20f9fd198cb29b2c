"""The `run` use case: environment, plan, and an asyncio run with signals handled in one loop.

Signal handlers only record the signal and cancel the main task; cancellation travels down
to every running step, which ends its process group (the same signal, a grace period, then
SIGKILL). A second Ctrl-C kills at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pitstop.engine.events import Notice, RunFinished
from pitstop.engine.output import OutputMode, Printer
from pitstop.errors import Interrupted, PitstopError, UserError
from pitstop.signals import signal_by_name
from pitstop.steps.envsetup import initial_env
from pitstop.steps.perform import RunContext, Runner
from pitstop.taskfile.model import Task, Taskfile, current_platform
from pitstop.taskfile.planner import Plan, build_plan

T = TypeVar("T")

_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Invocation:
    """One `pitstop TASK` command: its settings, and the task file, which watching and serving
    reload when it changes. Every (re)run starts from a fresh plan and context built here."""

    taskfile: Taskfile
    target: str
    options: argparse.Namespace
    cwd: Path
    skip: re.Pattern[str] | None
    printer: Printer
    jobs: int
    load_failed: bool = False

    def plan(self) -> Plan:
        return build_plan(
            self.taskfile,
            self.target,
            allow_private=self.options.allow_private,
            skip_tasks=self.skip,
            skip_init_end=self.options.skip_init_end_tasks,
            platform=current_platform(),
            cwd=self.cwd,
        )

    async def fresh_run(self) -> tuple[Plan, RunContext]:
        """A new plan and a new context (environment) from the current task file."""
        context = await make_context(
            self.taskfile,
            self.target,
            self.options,
            self.cwd,
            self.skip,
            self.printer,
            self.jobs > 1,
        )
        return self.plan(), context

    def reload_if_changed(self, paths: frozenset[Path]) -> None:
        """Reload the task file if it is among `paths` (or failed to load last time).

        Raises the loader's error for a broken file; the caller shows it and waits.
        """
        changed = {p.resolve() for p in paths}
        if not self.load_failed and self.taskfile.path.resolve() not in changed:
            return
        from pitstop.taskfile.loader import load_taskfile

        try:
            self.taskfile = load_taskfile(str(self.taskfile.path), self.cwd)
        except PitstopError:
            self.load_failed = True
            raise
        self.load_failed = False
        self.printer.notice(Notice("info", f"reloaded {self.taskfile.path.name}"))


def run_command(
    taskfile: Taskfile,
    target: str,
    options: argparse.Namespace,
    cwd: Path,
    skip: re.Pattern[str] | None,
) -> int:
    jobs = resolve_jobs(options.jobs, taskfile)
    invocation = Invocation(taskfile, target, options, cwd, skip, make_printer(options, jobs), jobs)
    plan = invocation.plan()
    invocation.printer.prepare([step.name for step in plan.steps])
    root = _root_task(plan)
    if root is not None and root.service is not None:
        from pitstop.app.serve import run_service

        return run_service(invocation, root, root.service)
    _refuse_service_dependencies(plan)
    if options.watch or (root is not None and _watch_attribute(root.watch)):
        from pitstop.app.watch import run_watch

        return run_watch(invocation, root)
    return serve_async(run_fresh(invocation, plan))


def _refuse_service_dependencies(plan: Plan) -> None:
    """A service runs until stopped: as a step of another task's plan it would never end."""
    for step in plan.steps:
        if step.task.service is not None and step.name != plan.target:
            raise UserError(
                f"task {plan.target} depends on {step.name}, which is a service;"
                " a service runs until it is stopped, so nothing after it would run",
                step.task.where("service"),
                f"serve it on its own with `pitstop {step.name}`, or depend on its build task",
            )


def _root_task(plan: Plan) -> Task | None:
    """The normalised definition of the task that was asked for."""
    for step in reversed(plan.steps):
        if step.name == plan.target and step.proxy is None:
            return step.task
    return None


def _watch_attribute(watch: object) -> bool:
    if os.environ.get("CARGO_MAKE_DISABLE_WATCH", "").lower() in ("1", "true", "yes"):
        return False
    return bool(watch is not None and getattr(watch, "enabled", False))


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


def parse_duration(text: str, what: str) -> float:
    """A flag's duration, in the task file's grammar (`pitstop.durations`)."""
    from pitstop.durations import parse_duration as parse

    try:
        return parse(text)
    except ValueError as error:
        raise UserError(f"{what} {text!r}: {error}", hint="write e.g. 500ms, 5s, 1m30s") from None


def make_printer(options: argparse.Namespace, jobs: int) -> Printer:
    if jobs > 1:
        mode = OutputMode.GROUP if options.output == "group" else OutputMode.PREFIX
    else:
        mode = OutputMode.INHERIT
    return Printer(mode=mode, quiet=options.quiet, time_summary=options.time_summary)


async def make_context(
    taskfile: Taskfile,
    target: str,
    options: argparse.Namespace,
    cwd: Path,
    skip: re.Pattern[str] | None,
    printer: Printer,
    capture: bool,
) -> RunContext:
    profile = options.profile or os.environ.get("CARGO_MAKE_PROFILE_DEFAULT") or "development"
    profile = profile.strip().lower()
    try:
        stop_signal = signal_by_name(options.stop_signal)
    except ValueError:
        raise UserError(
            f"--stop-signal {options.stop_signal!r} is not a signal",
            hint="use e.g. SIGTERM or SIGINT",
        ) from None
    env = await initial_env(
        taskfile,
        task=target,
        task_args=list(options.args),
        profile=profile,
        cwd=cwd,
        cli_env=list(options.env),
        env_file=options.env_file,
    )
    return RunContext(
        taskfile=taskfile,
        env=env,
        emit=printer,
        profile=profile,
        additional_profiles=taskfile.config.additional_profiles,
        task_args=tuple(options.args),
        cwd=cwd,
        skip_tasks=skip,
        capture_output=capture,
        verbose_scripts=options.verbose,
        stop_signal=stop_signal,
        stop_timeout=parse_duration(options.stop_timeout, "--stop-timeout"),
        platform=current_platform(),
    )


async def run_fresh(invocation: Invocation, plan: Plan) -> int:
    """Set up the environment (env scripts may run), then run the plan once."""
    _, ctx = await invocation.fresh_run()
    return await run_once(plan, ctx, invocation.jobs, invocation.options)


async def run_once(plan: Plan, ctx: RunContext, jobs: int, options: argparse.Namespace) -> int:
    """One run of the plan; on failure, the on_error_task; the exit status."""
    runner = Runner(ctx)
    try:
        result = await runner.run_plan(plan, jobs)
        if not result.ok:
            await _on_error(ctx, options)
        return result.status
    finally:
        ctx.cleanup()


async def _on_error(ctx: RunContext, options: argparse.Namespace) -> RunFinished | None:
    name = ctx.taskfile.config.on_error_task
    if not name or options.no_on_error:
        return None
    plan = build_plan(
        ctx.taskfile,
        name,
        allow_private=True,
        skip_tasks=ctx.skip_tasks,
        platform=ctx.platform,
        cwd=ctx.cwd,
    )
    return await Runner(ctx).run_plan(plan, report=False)


def serve_async(
    coro: Coroutine[Any, Any, int], *, stop_is_success: bool = False, fast_loop: bool = False
) -> int:
    """Run `coro` in a fresh loop with SIGINT/SIGTERM/SIGHUP turned into a clean cancellation.

    A one-off run that is interrupted fails (128 + N). Watching and serving run until they
    are told to stop, so with `stop_is_success` a signal ends them with status 0.
    `fast_loop` uses uvloop where it is installed (the proxy forwards every request).
    """
    loop_factory = _uvloop_factory() if fast_loop else None
    if loop_factory is None:
        _install_child_watcher()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_with_signals(coro))
    except Interrupted:
        if stop_is_success:
            return 0
        raise


async def _with_signals(coro: Coroutine[Any, Any, int]) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.ensure_future(coro)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        main.cancel()

    for signum in _HANDLED_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await main
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for signum in _HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _install_child_watcher() -> None:
    """On Python 3.11, wait for children with pidfds instead of a thread per child."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            fd = os.pidfd_open(os.getpid())
        except OSError:
            return
        os.close(fd)
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
