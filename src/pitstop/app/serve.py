"""The `serve` use case: a task with `service = {...}` runs as a supervised service.

Its dependencies are its build. `pitstop serve` builds, then starts the service on sockets
pitstop holds; `pitstop --watch serve` rebuilds on every change while the current instance
keeps serving, and swaps only to a new instance that built and became ready.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.engine import reaper
from pitstop.engine.events import ErrorReported, Notice, Source
from pitstop.errors import PitstopError, UserError
from pitstop.steps.perform import RunContext, Runner
from pitstop.supervisor.instance import InstanceCommand
from pitstop.taskfile.model import Task
from pitstop.taskfile.planner import Plan
from pitstop.taskfile.service import ServiceSpec

if TYPE_CHECKING:
    from pitstop.app.run import Invocation
    from pitstop.supervisor.supervisor import Supervisor


async def prepare(invocation: Invocation) -> tuple[Plan, Plan, RunContext]:
    """(whole plan, build plan, context) from the current task file."""
    plan, ctx = await invocation.fresh_run()
    return plan, build_part(plan), ctx


def build_part(plan: Plan) -> Plan:
    """The steps before the service itself: init and the service's dependencies.

    The step indices stay valid because only steps after the service (end) are dropped.
    """
    index = max(i for i, step in enumerate(plan.steps) if step.name == plan.target)
    for step in plan.steps[:index]:
        if step.task.service is not None:
            raise UserError(
                f'service task "{plan.target}" depends on "{step.name}", which is a service too;'
                " pitstop runs one service at a time",
                step.task.where("service"),
                f'serve "{step.name}" and "{plan.target}" with two pitstop commands',
            )
    return Plan(plan.target, plan.steps[:index])


def service_task(plan: Plan) -> Task:
    return next(s.task for s in reversed(plan.steps) if s.name == plan.target)


async def instance_command(task: Task, ctx: RunContext, tmpdir: Path) -> InstanceCommand:
    """The service's action as an argv, in its cwd, with its env applied to the run's env."""
    runner = Runner(ctx)
    if task.run_task is not None:
        raise UserError(
            f'service task "{task.name}" uses run_task; a service needs a command or a script',
            task.where("run_task"),
            'write command = "./target/debug/app" (or a script) in the service task',
        )
    await runner.apply_task_env(task)
    cwd = runner.task_cwd(task)
    ctx.keep_scripts_in(tmpdir)
    argv = runner.argv(task, cwd)
    if argv is None:
        raise UserError(
            f'service task "{task.name}" has nothing to run',
            task.location,
            'add command = "..." (and args) or script = "..." to the service task',
        )
    return InstanceCommand(tuple(argv), cwd, {**ctx.env, **ctx.extra_env})


async def versioned_command(
    task: Task, ctx: RunContext, tmpdir: Path, spec: ServiceSpec, folder: Path | None
) -> InstanceCommand:
    """`instance_command`, and with `artifacts` the build's outputs kept in `folder` (the
    version's own), which $PITSTOP_ARTIFACTS names to the command and the instance. Raises
    UserError (at the entry's line) for an entry that matched nothing."""
    if folder is None or not spec.artifacts:
        return await instance_command(task, ctx, tmpdir)
    from pitstop.supervisor import artifacts

    # Before the command is made: `${PITSTOP_ARTIFACTS}/app` in it is expanded then.
    ctx.env[artifacts.ENV_VAR] = str(folder)
    command = await instance_command(task, ctx, tmpdir)
    source = Path(command.cwd) if command.cwd is not None else Path.cwd()
    await artifacts.keep(spec.artifacts, source, folder)
    return command


def builds_dir(taskfile: Path, service: str, spec: ServiceSpec) -> Path | None:
    """Where `service` keeps its builds, if it keeps any."""
    if not spec.artifacts:
        return None
    from pitstop.manager.state import STATE_FOLDER
    from pitstop.supervisor.artifacts import builds_folder

    return builds_folder(taskfile.resolve().parent / STATE_FOLDER, service)


def run_service(invocation: Invocation, root: Task, spec: ServiceSpec) -> int:
    from pitstop.app.event_loop import serve_async

    with reaper.temporary_directory("pitstop-serve-") as tmpdir:
        return serve_async(
            serve(invocation, spec, root, tmpdir),
            stop_is_success=True,
            fast_loop=spec.uses_proxy,
        )


async def serve(invocation: Invocation, spec: ServiceSpec, root: Task, tmpdir: Path) -> int:
    """Build and serve until stopped; with --watch, rebuild and swap on every change."""
    from pitstop.supervisor.supervisor import Supervisor
    from pitstop.taskfile.planner import acts

    last_build_status = 0

    async def build(paths: frozenset[Path]) -> InstanceCommand | None:
        """Reload the task file if it changed, run the build plan; the new instance's command."""
        nonlocal last_build_status
        try:
            invocation.reload_if_changed(paths)
            plan, build_plan, ctx = await prepare(invocation)
        except PitstopError as error:
            invocation.printer(ErrorReported(error, Source(invocation.target)))
            return None
        try:
            result = await Runner(ctx).run_plan(build_plan, invocation.jobs, report=False)
        finally:
            ctx.cleanup()
        last_build_status = result.status
        if not result.ok:
            return None
        # The instance runs with the env the build left, as the next cargo-make step would.
        try:
            folder = kept / str(supervisor.generation) if kept is not None else None
            return await versioned_command(service_task(plan), ctx, tmpdir, spec, folder)
        except PitstopError as error:
            invocation.printer(ErrorReported(error, Source(invocation.target)))
            return None

    _, first_build, first_ctx = await prepare(invocation)
    kept = builds_dir(invocation.taskfile.path, invocation.target, spec)
    supervisor = Supervisor(
        spec,
        await instance_command(root, first_ctx, tmpdir),
        build,
        invocation.printer,
        name=invocation.target,
        builds_dir=kept,
        builds=any(acts(step) for step in first_build.steps),
    )
    from pitstop.settings import desktop_notifications
    from pitstop.supervisor.health import HealthMonitor

    notify = desktop_notifications(invocation.settings, spec.health)
    health = HealthMonitor(supervisor, invocation.printer, notify=notify)
    health.start()
    # For a service, `watch = {...}` says what to watch; swapping on changes needs --watch,
    # so that `pitstop serve` alone just builds and serves.
    watching = invocation.request.watch.enabled
    # Watch from the start: a save during the first build must not be missed.
    follower = (
        asyncio.create_task(_follow_changes(invocation, root, supervisor)) if watching else None
    )
    try:
        try:
            serving = await supervisor.start()
        except OSError as exc:
            raise UserError(
                f"service {root.name} cannot listen on {spec.public_addresses}: "
                f"{exc.strerror or exc}",
                root.where("service"),
                "stop whatever uses the address, or change it in the service's settings",
            ) from None
        if follower is None:
            if not serving:
                return last_build_status or 1
            # Without --watch no change can come: once nothing serves for good, end.
            return await supervisor.down()
        await follower
        return 0
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await health.stop()
        await supervisor.stop()


async def _follow_changes(invocation: Invocation, root: Task, supervisor: Supervisor) -> None:
    """Each batch of changes starts a rebuild; Enter/r rebuilds now, q quits."""
    from pitstop.app.watch import describe_trigger, watch_source
    from pitstop.settings import resolve_watch
    from pitstop.watch.keys import terminal_keys
    from pitstop.watch.loop import OnBusy

    flags = invocation.request.watch
    settings = resolve_watch(flags, root, invocation.taskfile, OnBusy.RESTART)
    quit_event = asyncio.Event()
    with terminal_keys(supervisor.changed, quit_event.set) as keys:
        if keys:
            invocation.printer.notice(Notice("info", "keys: Enter or r rebuilds now, q quits"))
        source = watch_source(
            settings, invocation.cwd, stop_event=quit_event, always=(invocation.taskfile.path,)
        )
        async for batch in source:
            why = describe_trigger(batch, invocation.cwd, flags.why)
            invocation.printer.notice(Notice("info", why, Source(invocation.target)))
            supervisor.changed(batch)
