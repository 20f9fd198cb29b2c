"""Runs the steps of a plan the way cargo-make runs them (SEMANTICS §5), one step at a time.

For each step: the task's CARGO_MAKE_CURRENT_TASK_* variables, its condition (a failing
condition skips only the task itself), its env files and env (they persist for later steps),
then its action: a sub-flow (`run_task`), a script, or a command. The run's environment is
a dict owned here and passed to children with `env=`; `os.environ` is never touched.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from pitstop.engine import process, reaper
from pitstop.engine.events import (
    Emit,
    Event,
    Notice,
    RunFinished,
    Source,
    TaskFinished,
    TaskOutput,
    TaskSkipped,
    TaskStarted,
)
from pitstop.engine.executor import ScheduledStep, run_parallel, run_sequential
from pitstop.errors import Location, UserError
from pitstop.steps.builtin_vars import task_env
from pitstop.steps.conditions import check_criteria_off_loop, condition_result, needs_script
from pitstop.steps.env import apply_env
from pitstop.steps.envfile import load_env_files
from pitstop.steps.expand import expand, expand_args
from pitstop.steps.functions import run_functions
from pitstop.steps.scripts import script_invocation, script_text
from pitstop.taskfile.model import Platform, RunTaskSpec, Script, Task, Taskfile
from pitstop.taskfile.normalize import not_found
from pitstop.taskfile.planner import Plan, Step, build_plan

# Exit status of a command that could not be started, as a shell reports it.
COMMAND_NOT_FOUND = 127
# The Rust channel a `channels` condition is checked against (cargo-make sets it at start).
_CHANNEL = "CARGO_MAKE_RUST_CHANNEL"


@dataclass
class RunContext:
    """Everything a run shares between its steps."""

    taskfile: Taskfile
    env: dict[str, str]
    emit: Emit
    profile: str = "development"
    additional_profiles: tuple[str, ...] = ()
    task_args: tuple[str, ...] = ()
    cwd: Path = field(default_factory=Path.cwd)
    skip_tasks: re.Pattern[str] | None = None
    capture_output: bool = False
    verbose_scripts: bool = False
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 5.0
    platform: Platform = "linux"
    extra_env: dict[str, str] = field(default_factory=dict)
    _tmpdir: Path | None = None

    def tmpdir(self) -> Path:
        """A private temporary folder for script files, removed by `cleanup()`."""
        if self._tmpdir is None:
            self._tmpdir = reaper.mkdtemp("pitstop-")
        return self._tmpdir

    def keep_scripts_in(self, folder: Path) -> None:
        """Write script files into `folder` (which the caller removes) instead of a private one.

        A service's instance runs long after the run that prepared it has been cleaned up.
        """
        self.cleanup()
        self._tmpdir = folder

    def cleanup(self) -> None:
        if self._tmpdir is not None:
            reaper.remove_tempdir(self._tmpdir)
            self._tmpdir = None


class Runner:
    """Runs plans and their steps in a RunContext."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ flows

    async def run_plan(self, plan: Plan, jobs: int = 1, *, report: bool = True) -> RunFinished:
        """Run every step; with jobs > 1, as a graph. `report=False` keeps sub-flows quiet."""
        steps = plan.steps
        emit = _from_plan(self.ctx.emit, plan) if report else _ignore_run_finished(self.ctx.emit)

        async def run_index(index: int) -> int:
            return await self.run_step(steps[index])

        with process.keep_watching():
            if jobs <= 1:
                return await run_sequential([s.name for s in steps], run_index, emit)
            return await run_parallel(schedule(plan), run_index, emit, jobs)

    # ------------------------------------------------------------------ one step

    async def run_step(self, step: Step) -> int:
        if step.proxy is not None:
            return await self._run_proxy(step)
        task = step.task
        env = self.ctx.env
        env.update(task_env(step.name, task.location))
        cwd = self.task_cwd(task)
        if not await self._condition_passes(task, cwd):
            message = task.condition.fail_message if task.condition else None
            self.ctx.emit(TaskSkipped(step.name, message or ""))
            return 0
        if not _has_work(task):
            return 0
        self.ctx.emit(TaskStarted(step.name))
        if task.deprecated:
            note = "" if task.deprecated is True else f" - {task.deprecated}"
            self.ctx.emit(
                Notice("warning", f"Task: {step.name} is deprecated{note}", Source(step.name))
            )
        if task.force and not task.ignore_errors:
            self.ctx.emit(
                Notice(
                    "warning",
                    f"Task: {step.name} uses deprecated 'force', use 'ignore_errors'",
                    Source(step.name),
                )
            )
        await self.apply_task_env(task)
        started = time.monotonic()
        status = await self._action(step, task, cwd)
        ignored = status != 0 and bool(task.ignore_errors or task.force)
        self.ctx.emit(TaskFinished(step.name, status, time.monotonic() - started, ignored=ignored))
        return 0 if ignored else status

    async def _action(self, step: Step, task: Task, cwd: Path) -> int:
        if task.run_task is not None:
            return await self._run_sub_tasks(step, task)
        argv = self.argv(task, cwd)
        missing = await self._missing_tool(task)
        if missing is not None:
            self.ctx.emit(Notice("error", f'task "{step.name}" cannot run: {missing}'))
            return COMMAND_NOT_FOUND
        if argv is None:
            return 0
        return await self.spawn(step.name, argv, cwd, task.location)

    def argv(self, task: Task, cwd: Path) -> list[str] | None:
        if task.script is not None:
            return self._script_argv(task.script, task, cwd, self.ctx.task_args)
        if task.command is not None:
            command = self.command_line(task)
            toolchain = expand(task.toolchain, self.ctx.env) if task.toolchain else ""
            # cargo-make's wrap_command: a toolchain runs the command through rustup.
            return ["rustup", "run", toolchain, *command] if toolchain else command
        return None

    def command_line(self, task: Task) -> list[str]:
        assert task.command is not None
        env = self.ctx.env
        args = run_functions(task.args or (), env, task.where("args"))
        return [expand(task.command, env), *expand_args(args, env, self.ctx.task_args)]

    async def _missing_tool(self, task: Task) -> str | None:
        """cargo-make's install_crate check (steps/tools.py), in a thread: it starts processes."""
        if task.install_crate is None and task.command != "cargo":
            return None
        from pitstop.steps.tools import missing_tool

        command = self.command_line(task) if task.command is not None else None
        return await asyncio.to_thread(missing_tool, task, command)

    def _script_argv(
        self,
        script: Script,
        task: Task,
        cwd: Path,
        task_args: tuple[str, ...],
        runner_args: tuple[str, ...] | None = None,
    ) -> list[str]:
        env = {**self.ctx.env, **self._workdir_env(cwd)}
        text = script_text(script, cwd, env, task.where("script"))
        runner = expand(task.script_runner, env) if task.script_runner else None
        raw_args = runner_args if runner_args is not None else (task.script_runner_args or ())
        return script_invocation(
            text,
            runner=runner,
            runner_args=[expand(a, env) for a in raw_args],
            extension=task.script_extension,
            cwd=cwd,
            task_args=list(task_args),
            tmpdir=self.ctx.tmpdir(),
            print_commands=self.ctx.verbose_scripts,
            location=task.where("script"),
        )

    # ------------------------------------------------------------------ processes

    async def spawn(self, name: str, argv: list[str], cwd: Path, where: Location) -> int:
        """Run one child to completion; on cancellation end its whole process group."""
        on_line = None
        if self.ctx.capture_output:

            def on_line(stream: process.Stream, line: str) -> None:
                self.ctx.emit(TaskOutput(name, stream, line))

        env = self.ctx.env
        workdir = self._workdir_env(cwd)
        if self.ctx.extra_env or workdir:
            env = {**env, **self.ctx.extra_env, **workdir}
        try:
            # spawn reads `env` at once and keeps nothing: the run's env needs no copy.
            child = await process.spawn(argv, cwd=cwd, env=env, on_line=on_line)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
            self.ctx.emit(
                Notice(
                    "error",
                    f'cannot run {argv[0]!r} for task "{name}" ({where}): {error.strerror}',
                    Source(name),
                )
            )
            return COMMAND_NOT_FOUND
        try:
            return await child.wait()
        except asyncio.CancelledError:
            await child.terminate(self.ctx.stop_signal, self.ctx.stop_timeout)
            raise
        finally:
            if child.returncode is None:
                child.kill_now()

    # ------------------------------------------------------------------ pieces

    def task_cwd(self, task: Task) -> Path:
        if not task.cwd:
            return self.ctx.cwd
        text = expand(task.cwd, self.ctx.env)
        if not text:
            return self.ctx.cwd
        path = (self.ctx.cwd / text).resolve()
        if not path.is_dir():
            raise UserError(
                f'task "{task.name}": cwd {text!r} is not a directory ({path})',
                task.where("cwd"),
                "create the directory or fix the task's cwd",
            )
        return path

    def _workdir_env(self, cwd: Path) -> dict[str, str]:
        """Inside a task's `cwd`, CARGO_MAKE_WORKING_DIRECTORY names it (cargo-make's
        `do_in_task_working_directory` runs `setup_cwd`, and restores it afterwards)."""
        if cwd is self.ctx.cwd or cwd == self.ctx.cwd:
            return {}
        return {"CARGO_MAKE_WORKING_DIRECTORY": str(cwd)}

    async def _condition_passes(self, task: Task, cwd: Path) -> bool:
        cond = task.condition
        if cond is None and task.condition_script is None:
            return True
        env = {**self.ctx.env, **self._workdir_env(cwd)}
        if cond is not None and cond.channels is not None and _CHANNEL not in env:
            from pitstop.steps.tools import rust_channel

            channel = await asyncio.to_thread(rust_channel)
            if channel is not None:
                env[_CHANNEL] = channel
        passed = await check_criteria_off_loop(
            cond, env, profile=self.ctx.profile, platform=self.ctx.platform, cwd=cwd
        )
        if task.condition_script is None:
            return passed
        cond_type = cond.condition_type if cond is not None else "And"
        if not needs_script(cond_type, passed, cond is not None):
            return passed
        argv = self._script_argv(
            task.condition_script, task, cwd, (), task.condition_script_runner_args or ()
        )
        status = await self.spawn(task.name, argv, cwd, task.where("condition_script"))
        return condition_result(cond, passed, status == 0)

    async def apply_task_env(self, task: Task) -> None:
        ctx = self.ctx
        if task.env_files:
            # Read in a worker thread, into a copy: with --jobs, other steps change the
            # run's env on the loop meanwhile. Env files only set variables.
            before = dict(ctx.env)
            loaded = dict(before)
            await asyncio.to_thread(
                load_env_files,
                task.env_files,
                loaded,
                profile=ctx.profile,
                working_dir=Path(before.get("CARGO_MAKE_WORKING_DIRECTORY", str(ctx.cwd))),
            )
            ctx.env.update({k: v for k, v in loaded.items() if before.get(k) != v})
        if task.env:
            # cargo-make applies a task's env with the current profile only.
            await apply_env(task.env, ctx.env, profile=ctx.profile, cwd=ctx.cwd)
        # Task env may not change the profile (cargo-make re-asserts it after task env).
        ctx.env["CARGO_MAKE_PROFILE"] = ctx.profile

    async def _run_sub_tasks(self, step: Step, task: Task) -> int:
        spec = await self._pick_route(task)
        if spec is None:
            return 0
        if spec.cleanup_task and not spec.fork:
            raise UserError(
                f"Invalid task {step.name}, cannot use cleanup_task without fork.",
                spec.location,
                "add fork = true to the run_task table, or remove cleanup_task",
            )
        if spec.fork:
            status = await self._run_forked(step, spec)
        elif spec.parallel:
            statuses = await asyncio.gather(*(self._sub_flow(name) for name in spec.names))
            status = next((s for s in statuses if s != 0), 0)
        else:
            status = 0
            for name in spec.names:
                status = await self._sub_flow(name)
                if status != 0:
                    break
        return status

    async def _pick_route(self, task: Task) -> RunTaskSpec | None:
        """The routing form: the first entry whose condition (and condition_script) holds."""
        assert task.run_task is not None
        for spec in task.run_task:
            if spec.condition is None and spec.condition_script is None:
                return spec
            probe = task.replace(condition=spec.condition, condition_script=spec.condition_script)
            if await self._condition_passes(probe, self.ctx.cwd):
                return spec
        return None

    async def _sub_flow(self, name: str) -> int:
        plan = build_plan(
            self.ctx.taskfile,
            name,
            allow_private=True,
            skip_tasks=self.ctx.skip_tasks,
            sub_flow=True,
            platform=self.ctx.platform,
            cwd=self.ctx.cwd,
        )
        result = await self.run_plan(plan, report=False)
        return result.status

    async def _run_forked(self, step: Step, spec: RunTaskSpec) -> int:
        status = 0
        for name in spec.names:
            status = await self.spawn(step.name, self._fork_argv(name), self.ctx.cwd, spec.location)
            if status != 0:
                break
        if spec.cleanup_task:
            cleanup = await self._run_cleanup(spec.cleanup_task, spec.location)
            status = status or cleanup
        return status

    async def _run_cleanup(self, name: str, where: Location) -> int:
        """cargo-make's `run_cleanup_task`: the task's raw definition, run here as one step.

        No alias resolution, no extend, no platform override and no dependencies (§9).
        """
        task = self.ctx.taskfile.tasks.get(name)
        if task is None:
            raise not_found(self.ctx.taskfile.tasks, name, None, where)
        return await self.run_step(Step(name, task))

    def _fork_argv(self, name: str, makefile: Path | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pitstop",
            "--makefile",
            str(makefile or self.ctx.taskfile.path),
            "--profile",
            self.ctx.profile,
            "--allow-private",
            "--skip-init-end-tasks",
            "--no-on-error",
            name,
            *self.ctx.task_args,
        ]

    async def _run_proxy(self, step: Step) -> int:
        """A `{ name, path }` dependency: pitstop runs that file's task in its own process."""
        assert step.proxy is not None
        target = step.proxy
        argv = [
            sys.executable,
            "-m",
            "pitstop",
            "--makefile",
            target.makefile,
            "--profile",
            self.ctx.profile,
            "--allow-private",
            "--no-on-error",
            target.task,
        ]
        self.ctx.emit(TaskStarted(step.name))
        started = time.monotonic()
        status = await self.spawn(step.name, argv, target.directory, target.location)
        self.ctx.emit(TaskFinished(step.name, status, time.monotonic() - started))
        return status


def schedule(plan: Plan) -> list[ScheduledStep]:
    """The plan as a graph: each step waits for the steps its dependencies planned."""
    return [ScheduledStep(step.name, step.dep_steps) for step in plan.steps]


def _has_work(task: Task) -> bool:
    return (
        task.command is not None
        or task.script is not None
        or task.run_task is not None
        or task.env is not None
        or task.env_files is not None
        or task.install_crate is not None
    )


def _from_plan(emit: Emit, plan: Plan) -> Emit:
    """The run's result names the plan's target as its source."""

    def forward(event: Event) -> None:
        if isinstance(event, RunFinished):
            event = replace(event, source=Source(plan.target))
        emit(event)

    return forward


def _ignore_run_finished(emit: Emit) -> Emit:
    def forward(event: Event) -> None:
        if not isinstance(event, RunFinished):
            emit(event)

    return forward
