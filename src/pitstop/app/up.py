"""The `up` use case in the foreground: every service task of the file (or the named ones and
the services they depend on), each supervised, rebuilt and swapped on its own, on one stream.

Ctrl-C or SIGTERM stops every service in reverse dependency order before pitstop exits.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from pitstop.app.detach import forget_daemon_mark, is_daemon
from pitstop.engine.output import OutputMode, Printer
from pitstop.errors import UserError
from pitstop.manager.graph import ServiceGraph, load_graph
from pitstop.manager.manager import Manager, Project
from pitstop.manager.state import ProjectState
from pitstop.request import UserRequest
from pitstop.settings import resolve_run
from pitstop.taskfile.model import Taskfile


def prepare_up(
    taskfile: Taskfile, request: UserRequest, cwd: Path, skip: re.Pattern[str] | None
) -> tuple[Project, ServiceGraph]:
    """The project and the selected services; raises UserError for bad input, before anything
    starts (the daemon calls this too)."""
    settings = resolve_run(request, taskfile)
    graph = load_graph(
        taskfile, cwd=cwd, skip=skip, skip_init_end=request.plan.skip_init_end
    ).select(request.up.services)
    if not graph.nodes:
        if not taskfile.in_memory and not taskfile.path.is_file():
            # Neither file exists: "no service task in Makefile.toml" would name a file that
            # is not there.
            from pitstop.taskfile.planner import no_task_file

            raise no_task_file(taskfile.directory, "`pitstop up`")
        raise UserError(
            f"no service task in {taskfile.path.name}",
            hint='`pitstop up` runs tasks with a service table: service = { listen = "127.0.0.1:8080" }',
        )
    return Project(taskfile, request, settings, cwd, skip), graph


def run_up(
    taskfile: Taskfile,
    request: UserRequest,
    cwd: Path,
    skip: re.Pattern[str] | None,
    out: TextIO,
    err: TextIO,
) -> int:
    from pitstop.app.event_loop import serve_async

    project, graph = prepare_up(taskfile, request, cwd, skip)
    daemon = is_daemon()
    if request.up.detach and not daemon:
        from pitstop.app.detach import run_detached

        return run_detached(taskfile.path, sys.argv[1:], out, err)
    forget_daemon_mark()
    printer = Printer(
        out,
        err,
        mode=OutputMode.PREFIX,
        quiet=project.settings.quiet,
        colour=False if request.up.no_colour else None,
        services=True,
    )
    # Prefixes line up for services, their (shared) builds and instances up to #999.
    printer.prepare([*graph.build_labels(), *(f"{n}#000" for n in graph.names)])
    manager = Manager(project, graph, watch=request.up.watch)
    uses_proxy = any(n.spec.uses_proxy for n in graph.nodes)
    state = ProjectState.for_taskfile(taskfile.path)
    # The daemon's stdout is a file nobody rotates: the services' lines and events go to their
    # own log files (serve_control), which are.
    shown = None if daemon else printer
    return serve_async(up(manager, shown, state), stop_is_success=True, fast_loop=uses_proxy)


async def up(manager: Manager, printer: Printer | None, state: ProjectState) -> int:
    """Start everything, then serve until a signal or `pitstop down`; with --no-watch, end
    when nothing serves (every service failed at start). The control socket (`pitstop ps`,
    `logs`, `restart`...) serves meanwhile, in the foreground as in the daemon."""
    from pitstop.manager.control import serve_control

    # The project's lock first: a second `up` is refused before it prints or starts anything.
    async with serve_control(manager, state) as control:
        refresher = None
        if printer is not None:
            manager.subscribe(printer)
            if printer.err.isatty() and os.environ.get("TERM") != "dumb":
                # On a terminal, the services' table stays at the bottom; its uptimes tick.
                printer.footer = manager.status
                refresher = asyncio.create_task(_refresh(printer))
        try:
            control.started(await manager.start())
            if not manager.watch and all(row.version is None for row in manager.status()):
                return 1
            await control.down_requested.wait()  # or Ctrl-C / SIGTERM cancels us
            return 0
        finally:
            try:
                await manager.stop()
            finally:
                if refresher is not None:
                    refresher.cancel()
                if printer is not None:
                    printer.close_footer()


async def _refresh(printer: Printer) -> None:
    while True:
        await asyncio.sleep(1.0)
        printer.redraw_footer()
