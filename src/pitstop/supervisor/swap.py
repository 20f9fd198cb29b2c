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
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from socket import socket
from typing import Protocol

from pitstop.engine import process
from pitstop.supervisor import events as ev
from pitstop.supervisor import sockets
from pitstop.supervisor.instance import Binding, Instance, InstanceCommand, NotReady
from pitstop.supervisor.sockets import ListenAddress
from pitstop.supervisor.spec import ServiceSpec

log = logging.getLogger(__name__)

BuildFn = Callable[[], Awaitable[bool]]
EventSink = Callable[[ev.SupervisorEvent], None]

PRIVATE_HOST = "127.0.0.1"
DRAIN_POLL = 0.005  # how often a retiring socket's accept queue is looked at

# --------------------------------------------------------------------------- frontends


class Frontend(Protocol):
    """Where clients connect, and how an instance is put behind it."""

    addresses: list[ListenAddress]

    async def open(self) -> None: ...
    async def binding(self, n: int) -> Binding: ...
    def promote(self, n: int, binding: Binding) -> None: ...
    def lost(self, n: int, binding: Binding) -> None: ...
    async def retire(self, n: int, binding: Binding) -> None:
        """The instance no longer gets new work; return when it has what it must finish."""

    def release(self, n: int, binding: Binding) -> None:
        """The instance has stopped (retired, or rolled back): free what it was given."""

    def unavailable(self, reason: str) -> None: ...
    async def close(self) -> None: ...


class _Listeners:
    """Binds the addresses once; closes them (and removes unix socket files) at the end."""

    def __init__(self, requested: Iterable[ListenAddress]) -> None:
        self.requested = list(requested)
        self.sockets: list[socket] = []
        self.addresses: list[ListenAddress] = []

    def open(self) -> None:
        try:
            for address in self.requested:
                sock = sockets.bind(address)
                self.sockets.append(sock)
                self.addresses.append(sockets.bound_address(sock, address))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        sockets.close(self.sockets, self.addresses)
        self.sockets.clear()


class SocketFrontend:
    """Socket hand-off: every instance gets listening sockets as fds 3, 4, ...

    On TCP each new instance gets its own socket on the address (`sockets.Listener`), and
    new connections are steered to the serving instance's: a starting instance gets none,
    so a version that never becomes ready loses none when it is killed; at a swap the old
    instance finishes what waits in its own accept queue before it gets stop_signal.
    Without a serving instance (the first start, after a crash) the next instance takes
    over the current socket, with whatever connections wait in its queue.
    """

    def __init__(self, spec: ServiceSpec) -> None:
        self._spec = spec
        self._names = spec.listen_names
        self._listeners = [sockets.Listener(address) for address in spec.listen]
        self._front: tuple[socket, ...] = ()  # where new connections go
        self._live = False  # the instance on `_front` was promoted and has not exited
        self._given: dict[tuple[int, ...], tuple[socket, ...]] = {}
        self._no_extra = asyncio.Event()  # no socket besides `_front` is in use
        self._no_extra.set()
        self.addresses: list[ListenAddress] = []

    async def open(self) -> None:
        try:
            self._front = tuple(listener.open() for listener in self._listeners)
        except BaseException:
            await self.close()
            raise
        self.addresses = [listener.address for listener in self._listeners]

    async def binding(self, n: int) -> Binding:
        if not self._live:
            socks = self._front
        else:
            # One retired socket at a time: with three in a group, removing one can move
            # the serving socket to another index while the program still names the old one.
            await self._no_extra.wait()
            added: list[socket] = []
            try:
                for listener in self._listeners:
                    added.append(listener.add())
            except BaseException:
                for listener, sock in zip(self._listeners, added, strict=False):
                    listener.remove(sock)
                raise
            socks = tuple(added)
        if socks != self._front:
            self._no_extra.clear()
        binding = Binding(fds=tuple(s.fileno() for s in socks), names=self._names)
        self._given[binding.fds] = socks
        return binding

    def promote(self, n: int, binding: Binding) -> None:
        socks = self._given[binding.fds]
        for listener, sock in zip(self._listeners, socks, strict=True):
            listener.steer(sock)
        self._front = socks
        self._live = True

    def lost(self, n: int, binding: Binding) -> None:
        if self._given.get(binding.fds) == self._front:
            self._live = False  # the next instance takes over this socket and its queue

    async def retire(self, n: int, binding: Binding) -> None:
        """Wait until the connections steered to the old socket before the switch have been
        accepted, and then `drain_delay` more so that their requests have been read."""
        socks = self._given.get(binding.fds, ())
        mine = [
            (listener, sock)
            for listener, sock, front in zip(self._listeners, socks, self._front, strict=False)
            if sock is not front
        ]

        def queued() -> int:
            return sum(listener.queued(sock) for listener, sock in mine)

        if not mine:
            return
        try:
            async with asyncio.timeout(self._spec.drain_timeout):
                while True:
                    while queued():
                        await asyncio.sleep(DRAIN_POLL)
                    # A connection whose handshake began before the switch may still land
                    # in the old queue, and the old instance needs a moment to read what it
                    # accepted last: settle, then look again.
                    await asyncio.sleep(self._spec.drain_delay)
                    if not queued():
                        return
        except TimeoutError:
            log.info("instance #%d still had queued connections after drain_timeout", n)

    def release(self, n: int, binding: Binding) -> None:
        socks = self._given.pop(binding.fds, ())
        for listener, sock, front in zip(self._listeners, socks, self._front, strict=False):
            if sock is not front:
                listener.remove(sock)
        if all(socks == self._front for socks in self._given.values()):
            self._no_extra.set()

    def unavailable(self, reason: str) -> None:
        pass

    async def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._given.clear()
        self._no_extra.set()


class ProxyFrontend:
    """Proxy mode: pitstop serves the public address and forwards to the instance's $PORT."""

    def __init__(self, spec: ServiceSpec) -> None:
        # Imported here so that socket hand-off never loads the proxy modules.
        from pitstop.supervisor.proxy.server import Proxy, Timeouts

        assert spec.proxy is not None
        self._spec = spec
        self._listeners = _Listeners([spec.proxy])
        self._proxy = Proxy(
            spec.mode,
            wait_timeout=spec.ready_timeout,
            drain_timeout=spec.drain_timeout,
            timeouts=Timeouts(
                head=spec.head_timeout,
                body=spec.body_timeout,
                keepalive=spec.keepalive_timeout,
                connect=spec.connect_timeout,
                response=spec.response_timeout,
            ),
            max_connections=spec.max_connections,
        )
        self.addresses: list[ListenAddress] = []

    async def open(self) -> None:
        self._listeners.open()
        self.addresses = self._listeners.addresses
        await self._proxy.start(self._listeners.sockets)

    async def binding(self, n: int) -> Binding:
        from pitstop.supervisor.proxy.server import free_port

        return Binding(host=PRIVATE_HOST, port=free_port(PRIVATE_HOST))

    def _backend(self, n: int, binding: Binding) -> object:
        from pitstop.supervisor.proxy.server import Backend

        assert binding.port is not None
        return Backend(binding.host or PRIVATE_HOST, binding.port, f"#{n}")

    def promote(self, n: int, binding: Binding) -> None:
        from pitstop.supervisor.proxy.server import Backend

        backend = self._backend(n, binding)
        assert isinstance(backend, Backend)
        self._proxy.set_backend(backend)

    def lost(self, n: int, binding: Binding) -> None:
        # Requests wait (up to ready_timeout) for the restarted instance instead of failing.
        if self._proxy.backend == self._backend(n, binding):
            self._proxy.set_backend(None)

    async def retire(self, n: int, binding: Binding) -> None:
        from pitstop.supervisor.proxy.server import Backend

        backend = self._backend(n, binding)
        assert isinstance(backend, Backend)
        if not await self._proxy.drain(backend, self._spec.drain_timeout):
            log.info("instance #%d still had requests after drain_timeout; cut off", n)

    def release(self, n: int, binding: Binding) -> None:
        pass

    def unavailable(self, reason: str) -> None:
        self._proxy.unavailable(reason)

    async def close(self) -> None:
        await self._proxy.close()
        self._listeners.close()


def make_frontend(spec: ServiceSpec) -> Frontend:
    return ProxyFrontend(spec) if spec.uses_proxy else SocketFrontend(spec)


# --------------------------------------------------------------------------- supervisor


class Supervisor:
    """Runs one service: builds, starts, swaps, restarts and stops its instances.

    `build` runs the build plan and returns whether it succeeded; it is cancelled (and must
    end its children) when a newer change arrives. `None` means there is nothing to build.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        command: InstanceCommand,
        build: BuildFn | None,
        on_event: EventSink,
        *,
        frontend: Frontend | None = None,
    ) -> None:
        self.spec = spec
        self.command = command
        self._build_fn = build
        self._on_event = on_event
        self._frontend = frontend if frontend is not None else make_frontend(spec)
        self._generation = 0
        self._serving: Instance | None = None
        self._instances: set[Instance] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._pending = False
        self._crashed: Instance | None = None
        self._crash_times: list[float] = []
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._build_task: asyncio.Task[bool] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._runtime_dir: Path | None = None
        self._stopped = False
        self._down = asyncio.Event()  # nothing serves, and nothing will before a change
        self._down_status = 0

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

    def instance_pids(self) -> list[int]:
        """Pids of every instance still running (serving, starting or being stopped)."""
        return [i.pid for i in self._instances if i.pid is not None and i.running]

    async def start(self) -> bool:
        """Bind, build, start the first instance; True if it serves. Raises OSError if an
        address cannot be bound. After a failed first build the supervisor waits for
        `changed()` like after any other failure."""
        self._runtime_dir = Path(tempfile.mkdtemp(prefix="pitstop-"))
        try:
            await self._frontend.open()
        except BaseException:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
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
        log.debug("change: %s", ", ".join(map(str, paths)) or "(unspecified)")
        self._pending = True
        self._settled.clear()
        if self._build_task is not None and not self._build_task.done():
            self._build_task.cancel()
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
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        self._emit(ev.Status("stopped"))

    # ----------------------------------------------------------------- the loop

    async def _main(self) -> None:
        while True:
            if not self._pending and self._crashed is None:
                self._settled.set()
                await self._wake.wait()
            self._wake.clear()
            try:
                if self._pending:
                    self._pending = False
                    await self._cycle()
                elif self._crashed is not None:
                    await self._handle_crash()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not leave the service unsupervised
                log.exception("supervisor step failed")
                self._emit(ev.Status(f"internal error: {exc}"))

    async def _cycle(self) -> None:
        """Build; on success swap. A change during the build starts the build over."""
        while True:
            self._generation += 1
            n = self._generation
            if self._build_fn is None:
                break
            self._emit(ev.BuildStarted(n))
            self._status(f"building #{n}…")
            ok = await self._run_build()
            if ok is None:
                self._emit(ev.BuildCancelled(n))
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
        """True/False for the build's result, None if a newer change cancelled it."""
        assert self._build_fn is not None
        build_fn = self._build_fn

        async def run() -> bool:
            return await build_fn()

        task = asyncio.create_task(run(), name=f"build-{self._generation}")
        self._build_task = task
        try:
            # asyncio.wait, not await: the build's cancellation must not look like ours.
            await asyncio.wait({task})
        finally:
            self._build_task = None
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is not None:
            log.error("build #%d raised %r", self._generation, exc)
            return False
        return bool(task.result())

    async def _swap(self, n: int) -> None:
        old = self._serving
        instance = await self._launch(n)
        if isinstance(instance, str):
            serving = old.number if old is not None else None
            self._emit(ev.RolledBack(n, instance, serving))
            self._status(f"#{n} rolled back: {instance}")
            if old is None:
                self._frontend.unavailable(f"#{n} did not start: {instance}")
            return
        self._promote(instance)
        self._emit(ev.Swapped(old.number if old is not None else None, n))
        self._status()
        if old is not None:
            self._retire(old)

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

    def _retire(self, old: Instance) -> None:
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
                self._frontend.release(old.number, old.binding)

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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
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
            self._on_event(event)
        except Exception:
            log.exception("event handler failed on %r", event)
