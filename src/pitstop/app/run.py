"""The `run` use case: environment, plan, and one run of it in an asyncio loop
(`app.event_loop`: a signal cancels the run, which ends every process group it started).

A task with `service = {...}` is served (`app.serve`); with --watch or `watch = true` it is
watched (`app.watch`). A second Ctrl-C kills at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pitstop.app.event_loop import serve_async
from pitstop.engine.events import Emit, Notice, RunFinished
from pitstop.engine.output import Printer
from pitstop.errors import PitstopError, UserError
from pitstop.request import PlanFlags, UserRequest
from pitstop.settings import RunSettings, resolve_run, watch_enabled
from pitstop.steps.envsetup import initial_env
from pitstop.steps.perform import RunContext, Runner
from pitstop.taskfile.model import Task, Taskfile, current_platform
from pitstop.taskfile.planner import Plan, acts, build_plan


@dataclass
class Invocation:
    """One `pitstop TASK` command: its settings, and the task file, which watching and serving
    reload when it changes. Every (re)run starts from a fresh plan and context built here."""

    taskfile: Taskfile
    target: str
    request: UserRequest
    settings: RunSettings
    cwd: Path
    skip: re.Pattern[str] | None
    printer: Printer
    load_failed: bool = False

    @property
    def jobs(self) -> int:
        return self.settings.jobs

    def plan(self) -> Plan:
        return build_plan(
            self.taskfile,
            self.target,
            allow_private=self.request.plan.allow_private,
            skip_tasks=self.skip,
            skip_init_end=self.request.plan.skip_init_end,
            platform=current_platform(),
            cwd=self.cwd,
        )

    async def fresh_run(self) -> tuple[Plan, RunContext]:
        """A new plan and a new context (environment) from the current task file."""
        context = await self.fresh_context()
        return self.plan(), context

    async def fresh_context(self) -> RunContext:
        """A new context (environment) from the current task file."""
        return await make_context(
            self.taskfile,
            self.target,
            self.request,
            self.settings,
            self.cwd,
            self.skip,
            self.printer,
        )

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
        # As at start: a key misspelt in this save is said now, not at the next start.
        for warning in self.taskfile.warnings:
            self.printer.notice(Notice("warning", warning.message))


def run_command(
    taskfile: Taskfile,
    target: str,
    request: UserRequest,
    cwd: Path,
    skip: re.Pattern[str] | None,
    out: TextIO,
    err: TextIO,
) -> int:
    settings = resolve_run(request, taskfile)
    printer = make_printer(settings, out, err)
    invocation = Invocation(taskfile, target, request, settings, cwd, skip, printer)
    plan = invocation.plan()
    # With the tasks the plan's steps start through run_task, so that `prepare |` before a
    # sub-flow lines up with `package-source |` in it (deeper sub-flows widen as they come).
    sub_flows = [
        name for step in plan.steps for spec in step.task.run_task or () for name in spec.names
    ]
    invocation.printer.prepare([*(step.name for step in plan.steps), *sub_flows])
    root = _root_task(plan)
    if root is not None and root.service is not None:
        from pitstop.app.serve import run_service

        return run_service(invocation, root, root.service)
    _refuse_service_dependencies(plan)
    if watch_enabled(request.watch, root):
        from pitstop.app.watch import run_watch

        return run_watch(invocation, root)
    if not any(acts(step) for step in plan.steps):
        # Nothing would start: say so rather than print "Build Done" after an empty run.
        invocation.printer.notice(Notice("info", _nothing_to_run(plan)))
        return 0
    # The task file and the plan live until the process ends: frozen, the collector's full
    # passes during the run skip them (at 10,000 tasks they walked ~150,000 objects each time;
    # docs/benchmarks.md). Only here, in a one-shot run: a watch or a service reloads the
    # file, and a frozen old one would not be freed while it runs.
    import gc

    gc.freeze()
    try:
        return serve_async(run_fresh(invocation, plan))
    finally:
        gc.unfreeze()  # a caller in the same process (tests) gets its collector back as it was


def _nothing_to_run(plan: Plan) -> str:
    count = len(plan.steps)
    steps = f"{count} step" if count == 1 else f"{count} steps"
    return (
        f'nothing to run: the plan for "{plan.target}" ({steps}) has no command, script or run_task'
    )


def _refuse_service_dependencies(plan: Plan) -> None:
    """A service runs until stopped: as a step of another task's plan it would never end."""
    for step in plan.steps:
        if step.task.service is not None and step.name != plan.target:
            raise UserError(
                f'task "{plan.target}" depends on "{step.name}", which is a service;'
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


def make_printer(settings: RunSettings, out: TextIO, err: TextIO) -> Printer:
    return Printer(
        out,
        err,
        mode=settings.output,
        quiet=settings.quiet,
        time_summary=settings.time_summary,
    )


async def make_context(
    taskfile: Taskfile,
    target: str,
    request: UserRequest,
    settings: RunSettings,
    cwd: Path,
    skip: re.Pattern[str] | None,
    printer: Emit,
) -> RunContext:
    profile = settings.profile
    env = await initial_env(
        taskfile,
        task=target,
        task_args=list(request.args),
        profile=profile,
        cwd=cwd,
        cli_env=list(request.file.env),
        env_file=request.file.env_file,
    )
    return RunContext(
        taskfile=taskfile,
        env=env,
        emit=printer,
        profile=profile,
        additional_profiles=taskfile.config.additional_profiles,
        task_args=request.args,
        cwd=cwd,
        skip_tasks=skip,
        capture_output=settings.jobs > 1,
        verbose_scripts=settings.verbose,
        stop_signal=settings.stop_signal,
        stop_timeout=settings.stop_timeout,
        platform=current_platform(),
    )


async def run_fresh(invocation: Invocation, plan: Plan) -> int:
    """Set up the environment (env scripts may run), then run the plan once.

    `plan` is the one `run_command` made from the same task file: planning again would cost
    as much (0.1-0.2 s at 10,000 tasks) and give the same plan.
    """
    ctx = await invocation.fresh_context()
    return await run_once(plan, ctx, invocation.jobs, invocation.request.plan)


async def run_once(plan: Plan, ctx: RunContext, jobs: int, flags: PlanFlags) -> int:
    """One run of the plan; on failure, the on_error_task; the exit status."""
    runner = Runner(ctx)
    try:
        result = await runner.run_plan(plan, jobs)
        if not result.ok:
            await _on_error(ctx, flags)
        return result.status
    finally:
        ctx.cleanup()


async def _on_error(ctx: RunContext, flags: PlanFlags) -> RunFinished | None:
    name = ctx.taskfile.config.on_error_task
    if not name or flags.no_on_error:
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
