"""The run's environment before the first task (cargo-make's `setup_env`, SEMANTICS §6.1).

A copy of `os.environ`, then `--env-file`, the built-in variables, the global `env_files`,
`[env]` with the command line's `--env` first, and last the `env_scripts`.

Watching and serving build a fresh environment for every rebuild while the loop serves a
proxy and watches files, so nothing here blocks it: file reads (env files, `.git`) run in
a worker thread, and scripts run as the engine's children, awaited (and ended with their
process group if the run is cancelled).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pitstop.engine import process, reaper
from pitstop.errors import Location, UserError
from pitstop.steps.builtin_vars import builtin_env
from pitstop.steps.env import apply_cli_env, apply_env, order_global_env
from pitstop.steps.envfile import load_env_file, load_env_files
from pitstop.steps.gitinfo import git_env
from pitstop.steps.scripts import script_invocation
from pitstop.taskfile.model import Taskfile


async def initial_env(
    taskfile: Taskfile,
    *,
    task: str,
    task_args: list[str],
    profile: str,
    cwd: Path,
    cli_env: list[str],
    env_file: str | None,
) -> dict[str, str]:
    """The run's environment before the first task (cargo-make's setup_env, SEMANTICS §6.1)."""
    env = dict(os.environ)
    if env_file:
        path = Path(env_file).resolve()
        await asyncio.to_thread(load_env_file, path, env, defaults_only=False, location=None)
    additional = taskfile.config.additional_profiles
    env.update(
        builtin_env(
            task=task,
            task_args=task_args,
            cwd=cwd,
            makefile=taskfile.path,
            profile=profile,
            additional_profiles=additional,
            base_env=env,
        )
    )
    env.update(await asyncio.to_thread(git_env, cwd.resolve(), dict(env)))
    if taskfile.env_files:
        await asyncio.to_thread(
            load_env_files,
            taskfile.env_files,
            env,
            profile=profile,
            additional_profiles=additional,
            working_dir=cwd,
            scope="global",
        )
    entries = order_global_env(apply_cli_env(taskfile.env, cli_env), env)
    await apply_env(entries, env, profile=profile, additional_profiles=additional, cwd=cwd)
    await run_env_scripts(taskfile, env, cwd, task_args)
    return env


async def run_env_scripts(
    taskfile: Taskfile, env: dict[str, str], cwd: Path, task_args: list[str]
) -> None:
    """`env_scripts`: run like task scripts, output shown; a failure stops before any task."""
    if not taskfile.env_scripts:
        return
    with reaper.temporary_directory("pitstop-env-") as tmp:
        for text in taskfile.env_scripts:
            argv = script_invocation(
                text,
                runner=None,
                runner_args=None,
                extension=None,
                cwd=cwd,
                task_args=task_args,
                tmpdir=tmp,
                location=Location(taskfile.path),
            )
            # Output is shown as it comes (the child writes to pitstop's own stdout/stderr).
            child = await process.spawn(argv, cwd=cwd, env=env)
            status = await process.run_to_end(child)
            if status != 0:
                raise UserError(
                    f"an env_scripts entry failed with exit code {status}",
                    Location(taskfile.path),
                    "fix the script or remove it from env_scripts",
                )
