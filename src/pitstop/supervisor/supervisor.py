"""The build/run separation: build while the current instance serves, then swap.

    change ──▶ build (old serves) ──ok──▶ start new on its socket ──ready──▶ new connections
                  │ a newer change: cancel,       │                       to new; old drains
                  │ build again                   └─not ready / exits:    and stops
                  └─failed: old keeps serving,      kill new, keep old
                    wait for the next change

Every decision is taken by one loop (`_main`); `changed()`, instance exits and `stop()` only
set a flag and wake it. A change during a build cancels the build; a change during a swap
waits for the swap to end. The listening address (a socket per instance on one reuseport
group, or the proxy in front of private ports) never goes without a listener, so no version
change ever refuses a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path

from pitstop.engine import process, reaper
from pitstop.supervisor import events as ev
from pitstop.supervisor import sockets
from pitstop.supervisor.frontends import Frontend, make_frontend
from pitstop.supervisor.instance import Binding, Instance, InstanceCommand, NotReady
from pitstop.supervisor.swapcount import SwapWindow
from pitstop.taskfile.addresses import ListenAddress
from pitstop.taskfile.service import ServiceSpec

log = logging.getLogger(__name__)

# The paths that changed since the last build -> the command of the new instance, or None if
# the build failed. The supervisor keeps the command; the build never writes into it.
BuildFn = Callable[[frozenset[Path]], Awaitable[InstanceCommand | None]]
EventSink = Callable[[ev.SupervisorEvent], None]


class Supervisor:
    """Runs one service: builds, starts, swaps, restarts and stops its instances.

    `build` runs the build plan and returns the command to start the new instance with, or
    None if the build failed; it is cancelled (and must end its children) when a newer change
    arrives. A `build` of None means there is nothing to build. Events name the service as
    `name`.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        command: InstanceCommand,
        build: BuildFn | None,
        on_event: EventSink,
        *,
        name: str = "service",
        frontend: Frontend | None = None,
        builds_dir: Path | None = None,
        builds: bool = True,
        last_generation: int = 0,
    ) -> None:
        self.spec = spec
        # False: `build` only prepares the command (no build steps), so no "building" line.
        self.builds = builds
        self.name = name
        self.command = command
        self._build_fn = build
        self._on_event = on_event
        self._frontend = frontend if frontend is not None else make_frontend(spec)
        # Numbers go on from a previous supervisor of the same service (`pitstop stop` then
        # `start`): two instances never share a name in the logs, nor a kept build's folder.
        self._generation = last_generation
        self._serving: Instance | None = None
        self._instances: set[Instance] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._pending = False
        self._changes: set[Path] = set()  # changed since the last build started
        self._crashed: Instance | None = None
        self._crash_times: list[float] = []
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._build_task: asyncio.Task[InstanceCommand | None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._runtime_dir: Path | None = None
        self._stopped = False
        self._down = asyncio.Event()  # nothing serves, and nothing will before a change
        self._down_status = 0
        # Kept builds (`artifacts`): version -> the command that starts it from its folder
        # under `builds_dir`; the newest `keep_builds` and the serving one are kept.
        self._builds_dir = builds_dir
        self._kept: dict[int, InstanceCommand] = {}
        self._rollback_to: int | None = None
        self._fresh_pending = False  # replace_instance() asked; the loop does it

    # ----------------------------------------------------------------- public API

    @property
    def addresses(self) -> list[ListenAddress]:
        """The addresses clients connect to (port 0 resolved to the port actually bound)."""
        return list(self._frontend.addresses)

    @property
    def serving(self) -> int | None:
        """The number of the instance that serves now, if any."""
        return self._serving.number if self._serving is not None else None

    @property
    def serving_pid(self) -> int | None:
        return self._serving.pid if self._serving is not None else None

    @property
    def generation(self) -> int:
        """The number of the latest build (the one in progress while `build` runs)."""
        return self._generation

    @property
    def kept_builds(self) -> list[int]:
        """The versions `rollback` can start again, oldest first."""
        return sorted(self._kept)

    def rollback_target(self, version: int | None = None) -> int:
        """The kept build `rollback(version)` would start: `version`, or by default the
        newest kept one older than the serving one. Raises ValueError saying why none."""
        if not self.spec.artifacts:
            raise ValueError(f"{self.name} keeps no builds: add artifacts = [...] to its service")
        serving = self.serving
        if version is None:
            older = [v for v in self._kept if serving is None or v < serving]
            if not older:
                raise ValueError(f"{self.name} has no kept build older than #{serving}")
            version = max(older)
        if version not in self._kept:
            kept = ", ".join(f"#{v}" for v in sorted(self._kept)) or "none"
            raise ValueError(f"{self.name} has no kept build #{version} (kept: {kept})")
        if version == serving:
            raise ValueError(f"{self.name} #{version} is serving already")
        return version

    async def rollback(self, version: int | None = None) -> int:
        """Swap back to kept build `version` (see `rollback_target`) without a build,
        cancelling a build in progress; returns once it serves. Raises ValueError saying
        why it cannot, or RuntimeError if that build did not become ready (the serving one
        keeps serving)."""
        version = self.rollback_target(version)
        self._rollback_to = version
        self._pending = True
        self._settled.clear()
        if self._build_task is not None and not self._build_task.done():
            self._build_task.cancel()
        self._wake.set()
        await self.settled()
        if self.serving != version:
            raise RuntimeError(f"{self.name} #{version} did not take over; see its events")
        return version

    def traffic(self) -> ev.Traffic | ev.ListenerTally | None:
        """Since start(): requests served and failed (proxy mode), or what the listening
        sockets counted (socket mode); None where nothing can be counted."""
        return self._frontend.traffic()

    def instance_pids(self) -> list[int]:
        """Pids of every instance still running (serving, starting or being stopped)."""
        return [i.pid for i in self._instances if i.pid is not None and i.running]

    async def start(self) -> bool:
        """Bind, build, start the first instance; True if it serves. Raises OSError if an
        address cannot be bound. After a failed first build the supervisor waits for
        `changed()` like after any other failure."""
        self._runtime_dir = reaper.mkdtemp("pitstop-")
        if self._builds_dir is not None and self.spec.artifacts:
            from pitstop.supervisor import artifacts

            artifacts.clear(self._builds_dir)
        try:
            await self._frontend.open()
        except BaseException:
            reaper.remove_tempdir(self._runtime_dir)
            raise
        self._pending = True
        self._settled.clear()
        self._loop_task = asyncio.create_task(self._main(), name="supervisor")
        await self.settled()
        return self._serving is not None

    def changed(self, paths: Iterable[str | Path] = ()) -> None:
        """Sources changed: rebuild (cancelling a build in progress) and swap."""
        if self._stopped:
            return
        changes = [Path(p) for p in paths]
        log.debug("change: %s", ", ".join(map(str, changes)) or "(unspecified)")
        self._changes.update(changes)
        self._pending = True
        self._settled.clear()
        if self._build_task is not None and not self._build_task.done():
            self._build_task.cancel()
        self._wake.set()

    def replace_instance(self) -> None:
        """Replace the serving instance by a fresh one of the same version (the current
        command, no build), with zero downtime: swapped like a rebuild, the old one drains.
        Does nothing when nothing serves; a change or crash meanwhile takes precedence."""
        if self._stopped or self._serving is None:
            return
        self._fresh_pending = True
        self._settled.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until no build, swap or restart is in progress, no change is pending and
        replaced instances have stopped (so only the serving instance answers)."""
        loop_task = self._loop_task
        while loop_task is not None and not loop_task.done():
            waiter = asyncio.create_task(self._settled.wait())
            await asyncio.wait({waiter, loop_task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if self._retiring:
                await asyncio.gather(*self._retiring, return_exceptions=True)
            if self._settled.is_set() and not self._retiring:
                return

    async def down(self) -> int:
        """Wait until the serving instance has exited for good: it was not to be restarted,
        or it crashed `max_crashes` times. Its last exit status (0 for a clean exit)."""
        await self._down.wait()
        return self._down_status

    async def stop(self) -> None:
        """Stop everything gracefully; when it returns no instance or build process is left
        and the addresses are free."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._loop_task, self._build_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._serving = None
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(
            *(self._stop_instance(i) for i in list(self._instances)), return_exceptions=True
        )
        await self._frontend.close()
        if self._runtime_dir is not None:
            reaper.remove_tempdir(self._runtime_dir)
        self._emit(ev.Status("stopped"))

    # ----------------------------------------------------------------- the loop

    async def _main(self) -> None:
        while True:
            if not self._pending and self._crashed is None and not self._fresh_pending:
                self._settled.set()
                await self._wake.wait()
            self._wake.clear()
            try:
                if self._pending:
                    self._pending = False
                    await self._cycle()
                elif self._crashed is not None:
                    await self._handle_crash()
                elif self._fresh_pending:
                    await self._fresh_swap()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not leave the service unsupervised
                log.exception("supervisor step failed")
                self._emit(ev.Status(f"internal error: {exc}"))

    async def _cycle(self) -> None:
        """Build; on success swap. A change during the build starts the build over. A
        rollback request swaps to its kept build instead, without one."""
        if self._rollback_to is not None:
            # Changes seen meanwhile stay for the next build; none starts by itself now.
            version, self._rollback_to = self._rollback_to, None
            self.command = self._kept[version]
            self._crash_times.clear()
            await self._swap(version)
            return
        while True:
            self._generation += 1
            n = self._generation
            if self._build_fn is None:
                break
            self._emit(ev.BuildStarted(n))
            if self.builds:
                self._status(f"building #{n}…")
            ok = await self._run_build()
            if ok is None:
                self._emit(ev.BuildCancelled(n))
                if self._rollback_to is not None:
                    self._pending = True  # the loop runs the rollback next
                    return
                if self._pending:
                    self._pending = False
                    continue
                return
            if not ok:
                self._emit(ev.BuildFailed(n))
                self._status(f"build #{n} failed")
                if self._serving is None:
                    self._frontend.unavailable(f"build #{n} failed; waiting for a change")
                return
            break
        self._crash_times.clear()
        await self._swap(n)

    async def _run_build(self) -> bool | None:
        """True/False for the build's result, None if a newer change cancelled it. A build
        that succeeded gave the command the next instance starts with."""
        assert self._build_fn is not None
        build_fn = self._build_fn
        changes = frozenset(self._changes)
        self._changes.clear()

        async def run() -> InstanceCommand | None:
            return await build_fn(changes)

        task = asyncio.create_task(run(), name=f"build-{self._generation}")
        self._build_task = task
        try:
            # asyncio.wait, not await: the build's cancellation must not look like ours.
            await asyncio.wait({task})
        finally:
            self._build_task = None
        if task.cancelled():
            self._changes.update(changes)  # the next build has not seen them either
            return None
        exc = task.exception()
        if exc is not None:
            log.error("build #%d raised %r", self._generation, exc)
            return False
        command = task.result()
        if command is None:
            return False
        self.command = command
        if self.spec.artifacts:
            self._kept[self._generation] = command
        return True

    async def _swap(self, n: int) -> None:
        started = time.monotonic()
        old = self._serving
        window = SwapWindow.open(self._frontend, old.number, n) if old is not None else None
        instance = await self._launch(n)
        if not isinstance(instance, str) and self.spec.check:
            failed = await self._check(instance)
            if failed is not None:
                await self._stop_instance(instance)
                self._frontend.release(n, instance.binding)
                instance = failed
        if isinstance(instance, str):
            serving = old.number if old is not None else None
            self._emit(ev.RolledBack(n, instance, serving))
            self._status(f"#{n} {'rolled back' if old else 'failed to start'}: {instance}")
            if old is None:
                self._frontend.unavailable(f"#{n} did not start: {instance}")
            return
        self._promote(instance)
        took = time.monotonic() - started
        self._emit(ev.Swapped(old.number if old is not None else None, n, took))
        # No duration here: the swap's one line (SwapFinished) says how long it took.
        self._status()
        if old is not None:
            self._retire(old, window)
        await self._prune_builds()

    async def _check(self, instance: Instance) -> str | None:
        """Run the `check` commands against the ready candidate, before it takes traffic;
        None if all passed, else why it is rolled back (the CheckFailed event shows the
        failing command's output)."""
        from pitstop.supervisor.checks import run_checks

        n = instance.number
        self._status(f"checking #{n}…")
        # What the instance sees (PORT and HOST in proxy mode), but not its socket-activation
        # variables: they describe descriptors the check does not have.
        env = sockets.strip_inherited(instance.environment())
        env["PITSTOP_INSTANCE_PID"] = str(instance.pid)
        async with self._frontend.candidate(n, instance.binding) as url:
            env["PITSTOP_CANDIDATE_URL"] = url
            checking = asyncio.create_task(
                run_checks(
                    self.spec.check,
                    env=env,
                    cwd=self.command.cwd,
                    timeout=self.spec.check_timeout,
                )
            )
            assert instance.exited is not None
            try:
                # A candidate that dies during its checks fails them, whatever they say.
                await asyncio.wait({checking, instance.exited}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Also when we are cancelled (stop): the running check's group is ended.
                if not checking.done():
                    checking.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await checking
            if checking.cancelled():
                status = instance.exited.result()
                return f"exited with status {status} during its checks"
            failure = checking.result()
        if failure is None:
            self._emit(ev.ChecksPassed(n, len(self.spec.check)))
            return None
        self._emit(ev.CheckFailed(n, failure.command, failure.reason, failure.output))
        return f"check `{failure.command}` {failure.reason}"

    async def _prune_builds(self) -> None:
        """Keep the newest `keep_builds` builds and the serving one; forget the rest."""
        if not self._kept:
            return
        newest = sorted(self._kept)[-self.spec.keep_builds :]
        keep = set(newest)
        if self._serving is not None:
            keep.add(self._serving.number)
        for version in list(self._kept):
            if version not in keep:
                del self._kept[version]
        if self._builds_dir is not None:
            from pitstop.supervisor import artifacts

            await artifacts.prune(self._builds_dir, keep)

    async def _fresh_swap(self) -> None:
        """replace_instance()'s work, in the loop: a new number, the same command."""
        self._fresh_pending = False
        if self._serving is None or self._pending:
            return  # nothing to replace, or a rebuild is coming anyway
        self._generation += 1
        await self._swap(self._generation)

    async def _launch(self, n: int) -> Instance | str:
        """Start instance `n` and wait until it is ready; the instance, or why it failed."""
        self._status(f"starting #{n}…")
        try:
            binding = await self._frontend.binding(n)
        except OSError as exc:
            return f"cannot open its listening socket: {exc.strerror or exc}"
        instance = self._new_instance(n, binding)
        self._instances.add(instance)
        try:
            await instance.start()
            self._emit(ev.InstanceStarting(n, instance.pid))
            await instance.wait_ready()
        except NotReady as exc:
            # Gracefully, not with SIGKILL: with a shared socket (unix addresses, or no
            # serving instance) an instance that is not ready may already have accepted
            # connections, and those must still be answered.
            await instance.stop()
            self._instances.discard(instance)
            self._frontend.release(n, binding)
            return exc.reason
        self._emit(ev.InstanceReady(n))
        return instance

    def _promote(self, instance: Instance) -> None:
        self._frontend.promote(instance.number, instance.binding)
        self._serving = instance
        self._down.clear()
        assert instance.exited is not None
        instance.exited.add_done_callback(lambda _t: self._exited(instance))

    def _retire(self, old: Instance, window: SwapWindow | None = None) -> None:
        old.stopping = True  # its exit is now expected, not a crash

        async def retire() -> None:
            try:
                # Nothing is left to wait for once the old instance has exited by itself.
                assert old.exited is not None
                drained = asyncio.create_task(self._frontend.retire(old.number, old.binding))
                await asyncio.wait({drained, old.exited}, return_when=asyncio.FIRST_COMPLETED)
                drained.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drained
                await self._stop_instance(old)
            finally:
                release = functools.partial(self._frontend.release, old.number, old.binding)
                if window is None:
                    release()
                else:
                    self._emit(window.close(self._frontend, release))

        task = asyncio.create_task(retire(), name=f"retire-{old.number}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _stop_instance(self, instance: Instance) -> None:
        status = await instance.stop()
        self._instances.discard(instance)
        self._emit(ev.InstanceStopped(instance.number, status))

    # ----------------------------------------------------------------- crashes

    def _exited(self, instance: Instance) -> None:
        if instance.stopping or self._stopped:
            return
        assert instance.exited is not None
        if instance.exited.cancelled():
            return
        self._emit(ev.InstanceExited(instance.number, instance.exited.result()))
        if instance is self._serving:
            # At once, not when the loop gets to the crash: an instance started meanwhile
            # then takes over the socket where connections wait (or the proxy holds them).
            self._frontend.lost(instance.number, instance.binding)
            self._crashed = instance
            self._wake.set()

    async def _handle_crash(self) -> None:
        crashed, self._crashed = self._crashed, None
        if crashed is None or crashed is not self._serving:
            return  # replaced meanwhile
        self._serving = None
        self._instances.discard(crashed)
        self._frontend.lost(crashed.number, crashed.binding)
        assert crashed.exited is not None
        status = crashed.exited.result()
        n = crashed.number
        if self.spec.restart == "never" or (self.spec.restart == "on-failure" and status == 0):
            self._frontend.unavailable(f"#{n} exited with status {status}")
            self._status(f"#{n} exited with status {status} · waiting for a change")
            self._went_down(status)
            return
        reason = f"exited with status {status}"
        while True:
            now = time.monotonic()
            window = self.spec.crash_window
            self._crash_times = [t for t in self._crash_times if now - t < window]
            self._crash_times.append(now)
            crashes = len(self._crash_times)
            if crashes >= self.spec.max_crashes:
                why = f"#{n} crashed {crashes} times within {window:g}s ({reason})"
                self._emit(ev.GaveUp(why))
                self._frontend.unavailable(why)
                self._status(f"gave up: {why} · waiting for a change")
                self._went_down(status or 1)
                return
            delay = min(
                self.spec.restart_backoff * 2 ** (crashes - 1), self.spec.restart_backoff_max
            )
            self._emit(ev.CrashRestart(n, delay))
            self._status(f"#{n} {reason} · restarting in {delay:g}s")
            if await self._wait_for_change(delay):
                return  # the change's build and swap take over
            instance = await self._launch(n)
            if not isinstance(instance, str):
                self._promote(instance)
                self._emit(ev.Swapped(None, n))
                self._status()
                return
            reason = instance

    def _went_down(self, status: int) -> None:
        self._down_status = status
        self._down.set()

    async def _wait_for_change(self, delay: float) -> bool:
        """Wait `delay` seconds unless a change arrives first; True if one did."""
        self._wake.clear()
        if self._pending:
            return True
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # comes as the wake-up does, and stop() would find a crash restart starting anew.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        return self._pending

    # ----------------------------------------------------------------- helpers

    def _new_instance(self, n: int, binding: Binding) -> Instance:
        assert self._runtime_dir is not None
        return Instance(
            number=n,
            command=self.command,
            spec=self.spec,
            binding=binding,
            runtime_dir=self._runtime_dir,
            on_output=self._output,
            on_status=lambda k, text: self._emit(ev.InstanceStatus(k, text)),
        )

    def _output(self, n: int, stream: process.Stream, line: str) -> None:
        self._emit(ev.InstanceOutput(n, stream, line))

    def _status(self, activity: str | None = None) -> None:
        parts = [f"serving #{self._serving.number}" if self._serving else "nothing serving"]
        if activity:
            parts.append(activity)
        self._emit(ev.Status(" · ".join(parts)))

    def _emit(self, event: ev.SupervisorEvent) -> None:
        try:
            self._on_event(replace(event, service=self.name))
        except Exception:
            log.exception("event handler failed on %r", event)
