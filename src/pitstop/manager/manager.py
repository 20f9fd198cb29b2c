"""The manager: one Supervisor per service on one event loop (`pitstop up`).

    start ──▶ each service waits for the services it depends on ──ready──▶ build ─▶ serve
                                     └─ one failed: BLOCKED, naming it (started once it serves)
    change batch ──▶ routed to the services watching its paths, plus every service sharing a
                     build step with one of them ──▶ each rebuilds (a shared step runs once),
                     swaps after its dependencies in the batch have swapped

Construction takes the loaded project (task file, request, settings) and its ServiceGraph
(manager/graph.py); the foreground `pitstop up` (app/up.py) and the daemon both build one with
`Manager(project, graph, watch=..., jobs=...)` and drive it with the methods below. The manager
prints nothing: every event goes to the subscribers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.engine import reaper
from pitstop.engine.events import (
    ErrorReported,
    Notice,
    Source,
    TaskFinished,
    TaskOutput,
    TaskSkipped,
    TaskStarted,
)
from pitstop.engine.events import Event as EngineEvent
from pitstop.errors import PitstopError, UserError
from pitstop.manager.graph import (
    BuildStep,
    ServiceGraph,
    ServiceNode,
    definition,
    load_graph,
    shared_definition,
    table_definition,
)
from pitstop.manager.status import ServiceState, ServiceStatus, StateChanged
from pitstop.request import UserRequest
from pitstop.settings import RunSettings, WatchSettings, desktop_notifications
from pitstop.steps.perform import RunContext, Runner
from pitstop.supervisor import events as ev
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.supervisor import Supervisor
from pitstop.taskfile.model import Taskfile
from pitstop.watch.filters import PathFilter

if TYPE_CHECKING:
    from pitstop.supervisor.health import HealthMonitor

log = logging.getLogger(__name__)

# Everything a subscriber receives: the engine's events (build output, notices, errors), the
# supervisors' events (instance output, swaps...), each carrying a `source`, and state changes.
ManagerEvent = EngineEvent | ev.SupervisorEvent | StateChanged
Subscriber = Callable[[ManagerEvent], None]

# The project's state folder (logs, the daemon's pid): never a change to react to.
STATE_FOLDER = ".pitstop"
_S = ServiceState


@dataclass
class Project:
    """The loaded task file and the settings the request resolved to."""

    taskfile: Taskfile
    request: UserRequest
    settings: RunSettings
    cwd: Path
    skip: re.Pattern[str] | None = None


@dataclass
class _Service:
    """The manager's record of one service; `row()` is its ServiceStatus."""

    node: ServiceNode
    tmpdir: Path  # the instances' script files live here, as long as the manager does
    supervisor: Supervisor | None = None
    state: ServiceState = _S.STOPPED
    reason: str | None = None
    version: int | None = None
    pid: int | None = None
    swaps: int = 0  # from one serving instance to another (not the first start)
    restarts: int = 0  # crash restarts
    # The last instance number of the previous supervisor; the next one goes on from it.
    last_generation: int = 0
    started_at: float | None = None
    last_build_ok: bool | None = None
    last_build_s: float | None = None
    # Resolved when a start attempt ends: True once it serves, False if it failed or is blocked.
    first: asyncio.Future[bool] | None = None
    start_task: asyncio.Task[None] | None = None
    watch_roots: tuple[Path, ...] = ()
    watch_filter: PathFilter | None = None
    last_row: ServiceStatus | None = field(default=None, compare=False)
    health: HealthMonitor | None = None  # samples the serving instance while it runs

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def running(self) -> bool:
        return self.supervisor is not None

    def address(self) -> str:
        if self.supervisor is not None:
            return ", ".join(str(a) for a in self.supervisor.addresses)
        return ", ".join(str(a) for a in self.node.addresses)

    def row(self) -> ServiceStatus:
        sample = self.health.latest if self.health is not None else None
        traffic = self.supervisor.traffic() if self.supervisor is not None else None
        return ServiceStatus(
            name=self.name,
            state=self.state,
            version=self.version,
            pid=self.pid,
            address=self.address(),
            restarts=self.restarts,
            swaps=self.swaps,
            started_at=self.started_at,
            last_build_ok=self.last_build_ok,
            last_build_s=self.last_build_s,
            reason=self.reason,
            cpu_percent=sample.cpu_percent if sample is not None else None,
            rss_bytes=sample.rss_bytes if sample is not None else None,
            served=traffic.served if isinstance(traffic, ev.Traffic) else None,
            failed=traffic.failed if traffic is not None else None,
            dropped=traffic.dropped if isinstance(traffic, ev.ListenerTally) else None,
            reset=traffic.reset if isinstance(traffic, ev.ListenerTally) else None,
        )


class Manager:
    def __init__(
        self, project: Project, graph: ServiceGraph, *, watch: bool = True, jobs: int | None = None
    ) -> None:
        self.project = project
        self.graph = graph
        self.watch = watch
        self.jobs = max(1, jobs if jobs is not None else project.settings.jobs)
        self._subscribers: list[Subscriber] = []
        self._services: dict[str, _Service] = {}
        for node in graph.nodes:
            self._services[node.name] = _Service(node, reaper.mkdtemp(f"pitstop-up-{node.name}-"))
        # Shared build steps of the current change batch: step key -> its run (exit status).
        self._steps: dict[str, asyncio.Task[int]] = {}
        # Runs a newer change cancelled, until their processes have ended.
        self._dying: dict[str, asyncio.Task[int]] = {}
        self._slots: asyncio.Semaphore | None = None
        # Services whose build and swap belong to the batch in progress (swap order).
        self._batch: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped: asyncio.Future[None] | None = None
        # The watcher's settings as planned, and the paths the running watcher watches.
        self._watched: WatchSettings | None = None
        self._watching: tuple[Path, ...] = ()
        # Work a task file edit started (a removed service's stop...); stop() waits for it.
        self._background: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- public API

    async def start(self) -> bool:
        """Start every service in dependency order; a service starts once the services it
        depends on are ready. True if every service serves. Raises UserError for a watch
        path that does not exist (before anything starts)."""
        changes = self._watch_source() if self.watch else None
        for svc in self._services.values():
            self._launch(svc)
        if changes is not None:
            self._watcher = asyncio.create_task(self._follow(changes), name="up-watch")
        results = []
        for svc in self._services.values():
            assert svc.first is not None
            results.append(await asyncio.shield(svc.first))
        return all(results)

    def status(self) -> list[ServiceStatus]:
        """One row per service, in dependency order."""
        return [svc.row() for svc in self._services.values()]

    def unstarted(self) -> list[str]:
        """Services of the task file this `up` does not run (it was given other names)."""
        return [
            name
            for name, task in self.project.taskfile.tasks.items()
            if task.service is not None and name not in self._services
        ]

    async def restart(self, name: str) -> None:
        """Rebuild and swap `name`, zero downtime (the serving instance serves meanwhile);
        returns once the build and swap are over. A service that is not running starts."""
        svc = self._service(name)
        if svc.supervisor is None:
            await self.start_service(name)
            return
        self._forget_steps(svc.node.shared_keys, running_too=False)
        svc.supervisor.changed()
        await svc.supervisor.settled()

    async def rollback(self, name: str, version: int | None = None) -> int:
        """Swap `name` back to a kept build (`artifacts`) without building: the newest one
        older than the serving version, or `version`. Returns the version that serves.
        Raises UserError saying why it cannot."""
        svc = self._service(name)
        if svc.supervisor is None:
            raise UserError(f"{name} is not running; start it first")
        try:
            target = svc.supervisor.rollback_target(version)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        # A build in progress is abandoned: end its steps, but not those another service
        # shares (its build still needs them).
        others = [s.node.shared_keys for s in self._services.values() if s is not svc]
        self._forget_steps(svc.node.shared_keys - set().union(*others), running_too=True)
        try:
            return await svc.supervisor.rollback(target)
        except (ValueError, RuntimeError) as exc:
            raise UserError(str(exc)) from None

    async def stop_service(self, name: str) -> None:
        """Stop `name` gracefully; its dependants keep running."""
        svc = self._service(name)
        await self._stop(svc)
        self._set(svc, _S.STOPPED, reason=None)

    async def start_service(self, name: str) -> None:
        """Start `name` (after the services it depends on are ready); returns once it serves
        or has failed. Raises UserError once `up` is stopping: a service started then would
        outlive the stop, which has passed it already or is about to."""
        svc = self._service(name)
        if self._stopping:
            raise UserError(f"{name} is not started: pitstop up is stopping")
        self._launch(svc)
        assert svc.first is not None
        await asyncio.shield(svc.first)

    async def stop(self) -> None:
        """Stop every service, each once the services that depend on it have stopped (so
        independent ones stop at the same time); when it returns no instance or build process
        is left and every address is free.

        Callers share one stop: `pitstop down` (the control socket) and the end of `up` both
        ask, and each returns only once it is over. Shielded: a caller that is cancelled does
        not cut the stop short for the other one (the event loop's end cancels it, if ever)."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop_all())
        await asyncio.shield(self._stopped)

    async def _stop_all(self) -> None:
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        # A stop or restart a task file edit began: over before the services' own stops.
        await asyncio.gather(*self._background, return_exceptions=True)
        stopped: dict[str, asyncio.Future[None]] = {}
        for svc in reversed(list(self._services.values())):  # dependants were created first
            waits = [stopped[n] for n in self.graph.dependants_of(svc.name) if n in stopped]
            stopped[svc.name] = asyncio.ensure_future(self._stop_after(svc, waits))
        # Every stop runs to its end even if one fails (a process is never left behind).
        results = await asyncio.gather(*stopped.values(), return_exceptions=True)
        self._forget_steps(set(self._steps), running_too=True)
        await asyncio.gather(*self._dying.values(), return_exceptions=True)
        for svc in self._services.values():
            reaper.remove_tempdir(svc.tmpdir)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _stop_after(self, svc: _Service, dependants: list[asyncio.Future[None]]) -> None:
        await asyncio.gather(*dependants, return_exceptions=True)
        await self._stop(svc)
        if svc.state is not _S.STOPPED:
            self._set(svc, _S.STOPPED, reason=None)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every event; returns the function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def pids(self) -> list[int]:
        """Every instance process still running (for tests and `down`'s check)."""
        return [
            pid
            for s in self._services.values()
            if s.supervisor
            for pid in s.supervisor.instance_pids()
        ]

    # ----------------------------------------------------------------- starting

    def _service(self, name: str) -> _Service:
        try:
            return self._services[name]
        except KeyError:
            raise self.graph.unknown_service(name) from None

    def _launch(self, svc: _Service) -> None:
        """Start `svc` in the background once its dependencies serve; `svc.first` tells.

        Nothing if it runs or is starting already: every start (`start`, a dependant's,
        a task file edit's restart) comes through here, and two at once would make two
        supervisors, the service keeping only the second (the first's instance left behind).
        """
        if svc.supervisor is not None or (svc.start_task is not None and not svc.start_task.done()):
            return
        svc.first = asyncio.get_running_loop().create_future()
        svc.start_task = asyncio.create_task(self._start_one(svc), name=f"start-{svc.name}")

    async def _start_one(self, svc: _Service) -> None:
        first = svc.first
        assert first is not None
        ok = False
        try:
            for dep_name in svc.node.depends_on:
                dep = self._services.get(dep_name)
                if dep is None:
                    continue
                if dep.first is None:  # stopped by request: it starts with us
                    self._launch(dep)
                assert dep.first is not None
                # Serving now (maybe after a failed start and a fix): good enough.
                if dep.version is None and not await asyncio.shield(dep.first):
                    why = dep.reason or dep.state.value
                    self._set(
                        svc,
                        _S.BLOCKED,
                        reason=f"waiting for {dep.name}, which is {dep.state.value}: {why}",
                    )
                    return
            ok = await self._run_supervisor(svc)
        finally:
            if not first.done():
                first.set_result(ok)

    async def _run_supervisor(self, svc: _Service) -> bool:
        from pitstop.app.serve import builds_dir

        node = svc.node
        supervisor = Supervisor(
            node.spec,
            # Replaced by the first build's result before any instance starts.
            InstanceCommand(("false",), self.project.cwd),
            lambda paths: self._build(svc, paths),
            lambda event: self._on_supervisor_event(svc, event),
            name=node.name,
            builds_dir=builds_dir(self.project.taskfile.path, node.name, node.spec),
            last_generation=svc.last_generation,
        )
        svc.supervisor = supervisor
        svc.reason = None
        from pitstop.supervisor.health import HealthMonitor

        notify = desktop_notifications(self.project.settings, node.spec.health)
        svc.health = HealthMonitor(supervisor, self._emit, notify=notify)
        svc.health.start()
        try:
            return await supervisor.start()
        except OSError as exc:
            svc.supervisor = None
            svc.last_generation = supervisor.generation
            await self._stop_health(svc)
            await supervisor.stop()
            where = node.spec.public_addresses
            self._set(svc, _S.FAILED, reason=f"cannot listen on {where}: {exc.strerror or exc}")
            return False

    async def _stop(self, svc: _Service) -> None:
        task, svc.start_task = svc.start_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        supervisor, svc.supervisor = svc.supervisor, None
        await self._stop_health(svc)
        if supervisor is not None:
            svc.last_generation = supervisor.generation
            await supervisor.stop()
        if svc.first is not None and not svc.first.done():
            svc.first.set_result(False)
        svc.first = None
        svc.version = svc.pid = svc.started_at = None

    async def _stop_health(self, svc: _Service) -> None:
        health, svc.health = svc.health, None
        if health is not None:
            await health.stop()

    def _unblock_dependants(self, name: str) -> None:
        """`name` serves now: start the services that were waiting for it."""
        if self._stopping:
            return
        for other in self._services.values():
            if other.state is not _S.BLOCKED or name not in other.node.depends_on:
                continue
            deps = [self._services.get(d) for d in other.node.depends_on]
            if all(d is None or d.version is not None for d in deps):
                self._launch(other)

    # ----------------------------------------------------------------- builds

    async def _build(self, svc: _Service, paths: frozenset[Path]) -> InstanceCommand | None:
        """The Supervisor's build: the service's build steps (shared ones once per batch),
        then, once its dependencies in this batch have swapped, the new instance's command."""
        node = svc.node
        started = time.monotonic()
        ok = False
        try:
            ctx = await self._context(svc)
        except PitstopError as error:
            self._emit(ErrorReported(error, Source(node.name)))
            return None
        try:
            for build_step in node.build:
                if await self._run_step(build_step, ctx) != 0:
                    return None
            ok = True
        finally:
            ctx.cleanup()
            if node.builds:
                svc.last_build_ok = ok
                svc.last_build_s = time.monotonic() - started
        await self._after_dependencies(svc)
        from pitstop.app.serve import builds_dir, versioned_command

        kept = builds_dir(self.project.taskfile.path, node.name, node.spec)
        try:
            version = svc.supervisor.generation if svc.supervisor is not None else 0
            folder = kept / str(version) if kept is not None else None
            return await versioned_command(node.task, ctx, svc.tmpdir, node.spec, folder)
        except PitstopError as error:
            self._emit(ErrorReported(error, Source(node.name)))
            return None

    async def _context(self, svc: _Service) -> RunContext:
        from pitstop.app.run import make_context

        project = self.project
        ctx = await make_context(
            project.taskfile,
            svc.name,
            project.request,
            project.settings,
            project.cwd,
            project.skip,
            functools.partial(self._emit_build, svc),
        )
        # Several builds share one stream: their output is always captured and prefixed.
        ctx.capture_output = True
        return ctx

    async def _run_step(self, build_step: BuildStep, ctx: RunContext) -> int:
        """Run one build step, or, for a shared one, join its run in this batch."""
        if build_step.shared_key is None:
            return await self._step(build_step, ctx)
        key = build_step.shared_key
        task = self._steps.get(key)
        if task is None:
            dying = self._dying.get(key)
            if dying is not None:  # never two runs of one step at once
                await asyncio.wait({dying})
            task = self._steps.get(key)
        if task is None:
            task = asyncio.create_task(
                self._step(build_step, ctx), name=f"build-step-{build_step.step.name}"
            )
            self._steps[key] = task
        # Shielded: a build cancelled by a newer change must not cancel a step another
        # service waits for; a newer change to this step cancels it in `_forget_steps`.
        return await asyncio.shield(task)

    async def _step(self, build_step: BuildStep, ctx: RunContext) -> int:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.jobs)
        async with self._slots:
            try:
                return await Runner(ctx).run_step(build_step.step)
            except PitstopError as error:
                ctx.emit(ErrorReported(error, Source(build_step.step.name)))
                return 1

    def _forget_steps(self, keys: Iterable[str], *, running_too: bool) -> None:
        """The next build runs these steps again; running ones are cancelled if asked."""
        for key in list(keys):
            task = self._steps.get(key)
            if task is None:
                continue
            if task.done():
                del self._steps[key]
            elif running_too:
                del self._steps[key]
                task.cancel()
                self._dying[key] = task
                task.add_done_callback(functools.partial(self._forget_dying, key))

    def _forget_dying(self, key: str, task: asyncio.Task[int]) -> None:
        if self._dying.get(key) is task:
            del self._dying[key]

    async def _after_dependencies(self, svc: _Service) -> None:
        """Dependencies first: wait for services this one depends on that rebuild in the same
        batch to finish their swap."""
        for dep_name in svc.node.depends_on:
            dep = self._services.get(dep_name)
            if dep is not None and dep.supervisor is not None and dep_name in self._batch:
                await dep.supervisor.settled()

    def _emit_build(self, svc: _Service, event: EngineEvent) -> None:
        """An event of `svc`'s build, tagged with the services whose build it is: `svc`, or
        every service sharing the step (a shared step runs once for them all)."""
        match event:
            case TaskStarted() | TaskSkipped() | TaskOutput() | TaskFinished():
                event = replace(event, services=self._build_owners(svc, event.name))
            case Notice(source=source) | ErrorReported(source=source):
                owners = self._build_owners(svc, source.name if source else None)
                event = replace(event, source=Source(",".join(owners)))
        self._emit(event)

    def _build_owners(self, svc: _Service, step_name: str | None) -> tuple[str, ...]:
        key = next((b.shared_key for b in svc.node.build if b.step.name == step_name), None)
        if key is None:  # its own step, a hook, or a sub-flow task (run_task)
            return (svc.name,)
        return self.graph.owners(key)

    # ----------------------------------------------------------------- watching

    def _watch_source(self) -> AsyncIterator[frozenset[Path]]:
        """One watcher over the union of every service's watch paths."""
        self._apply_watch_plan(*self._watch_plan(self._services.values()))
        return self._open_watch()

    def _open_watch(self) -> AsyncIterator[frozenset[Path]]:
        """A watcher with the settings last planned (`_apply_watch_plan`), and the task file."""
        from pitstop.app.watch import watch_source

        assert self._watched is not None
        self._watching = self._watched.paths
        return watch_source(self._watched, self.project.cwd, always=(self.project.taskfile.path,))

    def _watch_plan(
        self, services: Iterable[_Service]
    ) -> tuple[dict[str, tuple[tuple[Path, ...], PathFilter]], WatchSettings]:
        """Each service's watch roots and filter, and the one watcher's settings; raises
        UserError for a watch path that does not exist. Changes nothing."""
        from pitstop.settings import resolve_watch
        from pitstop.watch.loop import OnBusy

        flags = self.project.request.watch
        taskfile = self.project.taskfile
        union: list[Path] = []
        settings: list[WatchSettings] = []
        plan: dict[str, tuple[tuple[Path, ...], PathFilter]] = {}
        for svc in services:
            own = resolve_watch(flags, svc.node.task, taskfile, OnBusy.RESTART)
            own = replace(own, ignore_globs=(*own.ignore_globs, f"{STATE_FOLDER}/"))
            settings.append(own)
            roots = tuple(p.absolute() for p in own.paths)
            for root in roots:
                if not root.exists():
                    raise UserError(
                        f"service {svc.name} watches {root}, which does not exist",
                        svc.node.task.where("watch"),
                        "create it, or fix the service's watch paths",
                    )
            watch_filter = PathFilter(
                [r if not r.is_file() else r.parent for r in roots],
                own.filter_options(),
                base=self.project.cwd,
            )
            plan[svc.name] = (roots, watch_filter)
            union.extend(p for p in roots if p not in union)
        merged = replace(
            settings[0],
            paths=tuple(union),
            git_ignore=all(s.git_ignore for s in settings),
            ignore_globs=(*flags.ignore, f"{STATE_FOLDER}/"),
            exts=(),
        )
        return plan, merged

    def _apply_watch_plan(
        self, plan: dict[str, tuple[tuple[Path, ...], PathFilter]], merged: WatchSettings
    ) -> None:
        for name, (roots, watch_filter) in plan.items():
            svc = self._services[name]
            svc.watch_roots, svc.watch_filter = roots, watch_filter
        self._watched = merged

    async def _follow(self, changes: AsyncIterator[frozenset[Path]]) -> None:
        try:
            async for batch in changes:
                try:
                    self._on_changes(batch)
                except Exception:  # a bug must not end the watching
                    log.exception("routing a change failed")
        finally:
            close = getattr(changes, "aclose", None)
            if close is not None:  # the inotify descriptor now, not when collected
                await close()

    def _on_changes(self, batch: frozenset[Path]) -> None:
        taskfile_path = self.project.taskfile.path.resolve()
        redefined: set[str] = set()
        if taskfile_path in {p.resolve() for p in batch}:
            # The task file's own edit swaps the services whose definition it changed, and
            # only those. A broken save is reported and changes nothing. Its other paths
            # still count, but not the task file itself: every service whose watch covers
            # its folder would swap for it.
            redefined = self._reload() or set()
            batch = frozenset(p for p in batch if p.resolve() != taskfile_path)
        touched = [
            svc.name
            for svc in self._services.values()
            if svc.name in redefined or any(self._watches(svc, p) for p in batch)
        ]
        affected = [name for name in self.graph.sharing(touched) if self._services[name].supervisor]
        if not affected:
            return
        from pitstop.app.watch import describe_trigger

        if batch:
            why = describe_trigger(batch, self.project.cwd, self.project.request.watch.why)
        else:
            why = f"{self.project.taskfile.path.name} changed their definition"
        self._emit(Notice("info", f"{why}: rebuilding {', '.join(affected)}"))
        self._batch |= set(affected)
        for name in affected:
            supervisor = self._services[name].supervisor
            assert supervisor is not None
            supervisor.changed(batch)  # cancels its build in progress first
        keys = set().union(*(self._services[n].node.shared_keys for n in affected))
        self._forget_steps(keys, running_too=True)

    def _watches(self, svc: _Service, path: Path) -> bool:
        absolute = path.absolute()
        inside = any(absolute == r or absolute.is_relative_to(r) for r in svc.watch_roots)
        if not inside:
            return False
        return svc.watch_filter is None or svc.watch_filter.accepts(absolute)

    def _reload(self) -> set[str] | None:
        """The task file changed: reload it and the graph. Returns the running services to
        rebuild and swap (their definition changed); None if the file does not load (the
        error is reported, nothing changes).

        Live, without restarting `up`: a service added to the file (and in `up`'s selection)
        starts; one removed stops; one whose service table changed (its address, readiness,
        stop...) is stopped and started again, which is not zero-downtime (its supervisor
        holds the old table); the rest keep running untouched."""
        from pitstop.taskfile.loader import load_taskfile

        project = self.project
        try:
            taskfile = load_taskfile(str(project.taskfile.path), project.cwd)
            full = load_graph(
                taskfile,
                cwd=project.cwd,
                skip=project.skip,
                skip_init_end=project.request.plan.skip_init_end,
            )
            wanted = [n for n in project.request.up.services if n in full.names]
            if project.request.up.services and not wanted:
                raise UserError(
                    f"none of the services `up` runs ({', '.join(project.request.up.services)})"
                    f" is in {taskfile.path.name} any more",
                    hint="put one back, or restart `pitstop up`",
                )
            graph = full.select(wanted)
            if not graph.nodes:
                raise UserError(
                    f"no service task in {taskfile.path.name} any more",
                    hint="put one back, or stop `pitstop up`",
                )
            fresh = {n.name: n for n in graph.nodes}
            plan = None
            if self._watcher is not None:
                # The services as they will be, for their watch paths.
                plan = self._watch_plan(_Service(node, Path()) for node in graph.nodes)
        except PitstopError as error:
            self._emit(ErrorReported(error))
            return None
        everyone = shared_definition(taskfile) != shared_definition(project.taskfile)
        old = self._services
        added = [n for n in graph.names if n not in old]
        removed = [n for n in old if n not in fresh]
        # A stopped or blocked service starts on its new table anyway when it starts; one
        # that could not listen gets another try on it.
        respecified = [
            n
            for n in graph.names
            if n in old
            and (old[n].supervisor is not None or old[n].state is _S.FAILED)
            and table_definition(old[n].node) != table_definition(fresh[n])
        ]
        redefined = {
            n
            for n in graph.names
            if n in old
            and n not in respecified
            and (
                everyone
                or definition(old[n].node, project.taskfile) != definition(fresh[n], taskfile)
            )
        }
        project.taskfile = taskfile
        self.graph = graph
        retired = [old[n] for n in removed]
        self._services = {
            n: old[n] if n in old else _Service(fresh[n], reaper.mkdtemp(f"pitstop-up-{n}-"))
            for n in graph.names
        }
        for svc in self._services.values():
            svc.node = fresh[svc.name]
        if plan is not None:
            self._apply_watch_plan(*plan)
            if self._watching != plan[1].paths:
                self._rewatch()
        said = [f"reloaded {taskfile.path.name}"]
        if not (added or removed or respecified or redefined):
            said.append("no service's definition changed")
        for svc in retired:
            said.append(f"{svc.name} is no longer in it: stopping it")
            self._later(self._retire(svc))
        for name in respecified:
            said.append(f"{name}'s service table changed: restarting it (not zero-downtime)")
            self._later(self._respecify(self._services[name]))
        for name in added:
            said.append(f"{name} is new: starting it")
            self._launch(self._services[name])
        self._emit(Notice("info", "; ".join(said)))
        # As at start: a key misspelt in this save is said now, not at the next start.
        for warning in taskfile.warnings:
            self._emit(Notice("warning", warning.message))
        return {n for n in redefined if self._services[n].supervisor is not None}

    def _later(self, work: Coroutine[object, object, None]) -> None:
        """Run `work` in the background; stop() waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retire(self, svc: _Service) -> None:
        """A service removed from the task file: stop it for good."""
        try:
            await self._stop(svc)
            self._set(svc, _S.STOPPED, reason="removed from the task file")
        finally:
            reaper.remove_tempdir(svc.tmpdir)

    async def _respecify(self, svc: _Service) -> None:
        """A changed service table: a new supervisor with it (stop, then start)."""
        # Not serving on its table any more: the row must not show the old instance's state
        # beside the new table's address meanwhile.
        self._set(svc, _S.STARTING, reason="its service table changed: restarting")
        await self._stop(svc)
        if not self._stopping and self._services.get(svc.name) is svc:
            self._launch(svc)

    def _rewatch(self) -> None:
        """The union of watch paths changed: a new watcher (this one ends at its next wait;
        _on_changes runs inside it)."""
        old = self._watcher
        self._watcher = asyncio.create_task(self._follow(self._open_watch()), name="up-watch")
        if old is not None:
            old.cancel()

    # ----------------------------------------------------------------- events and states

    def _emit(self, event: ManagerEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("subscriber failed on %r", event)

    def _set(self, svc: _Service, state: ServiceState, **changes: object) -> None:
        svc.state = state
        for key, value in changes.items():
            setattr(svc, key, value)
        row = svc.row()
        # A new sample alone is no state change (the table shows it; no event line says it).
        if _without_sample(row) != _without_sample(svc.last_row):
            svc.last_row = row
            self._emit(StateChanged(row))

    def _on_supervisor_event(self, svc: _Service, event: ev.SupervisorEvent) -> None:
        self._emit(event)
        if svc.supervisor is None and not isinstance(event, ev.Status):
            return
        serving = svc.version is not None
        match event:
            case ev.BuildStarted():
                self._set(svc, _S.BUILDING)
            case ev.BuildFailed(n):
                why = f"build #{n} failed"
                if serving:
                    self._set(svc, _S.SERVING, reason=f"{why}; #{svc.version} keeps serving")
                else:
                    self._set(svc, _S.FAILED, reason=f"{why}; waiting for a change")
                self._batch.discard(svc.name)
            case ev.BuildCancelled():
                pass  # a newer build follows
            case ev.InstanceStarting():
                self._set(svc, _S.SWAPPING if serving else _S.STARTING, reason=None)
            case ev.InstanceReady():
                self._set(svc, _S.READY)
            case ev.Swapped(old, new):
                if old is not None:
                    svc.swaps += 1
                assert svc.supervisor is not None
                self._set(
                    svc,
                    _S.SERVING,
                    version=new,
                    pid=svc.supervisor.serving_pid,
                    started_at=time.time(),
                    reason=None,
                )
                self._batch.discard(svc.name)
                self._unblock_dependants(svc.name)
            case ev.RolledBack(n, reason, _kept):
                if serving:
                    self._set(svc, _S.SERVING, reason=f"#{n} rolled back: {reason}")
                else:
                    self._set(svc, _S.FAILED, reason=f"#{n} did not start: {reason}")
                self._batch.discard(svc.name)
            case ev.InstanceExited(n, status):
                if n == svc.version:
                    self._set(
                        svc,
                        _S.FAILED,
                        version=None,
                        pid=None,
                        started_at=None,
                        reason=f"#{n} exited with status {status}",
                    )
            case ev.CrashRestart(n, delay):
                svc.restarts += 1
                self._set(svc, _S.STARTING, reason=f"#{n} crashed; restarting in {delay:g}s")
            case ev.GaveUp(reason):
                self._set(svc, _S.FAILED, reason=reason)
            case _:
                pass


def _without_sample(row: ServiceStatus | None) -> ServiceStatus | None:
    return None if row is None else replace(row, cpu_percent=None, rss_bytes=None)
