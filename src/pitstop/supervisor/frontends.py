"""Frontends: where clients connect, and how an instance is put behind that address.

`SocketFrontend` hands listening sockets to each instance (fds 3, 4, ...) and steers new
connections to the serving one; `ProxyFrontend` serves the address itself and forwards to the
instance's private $PORT. The `Supervisor` decides when; a frontend only does what it is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from socket import socket
from typing import TYPE_CHECKING, Protocol

from pitstop.supervisor import sockets
from pitstop.supervisor.events import ListenerTally, Traffic
from pitstop.supervisor.instance import Binding
from pitstop.taskfile.addresses import ListenAddress
from pitstop.taskfile.service import ServiceSpec

if TYPE_CHECKING:
    from pitstop.supervisor.proxy.server import Backend

log = logging.getLogger(__name__)

PRIVATE_HOST = "127.0.0.1"
DRAIN_POLL = 0.005  # how often a retiring socket's accept queue is looked at


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
    def candidate(self, n: int, binding: Binding) -> contextlib.AbstractAsyncContextManager[str]:
        """While open: a URL that reaches instance `n` (started, not promoted) directly."""
        ...

    def traffic(self) -> Traffic | ListenerTally | None:
        """Everything counted since open(): requests (proxy), what the listening sockets
        counted (socket hand-off), or None where nothing can be counted."""

    def served_by(self, n: int) -> int | None:
        """What instance `n` has served since it was promoted (0 if it never was)."""


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

    def __init__(self, spec: ServiceSpec, backlog: int = sockets.BACKLOG) -> None:
        self._spec = spec
        self._names = spec.listen_names
        self._listeners = [sockets.Listener(address, backlog) for address in spec.listen]
        self._front: tuple[socket, ...] = ()  # where new connections go
        self._live = False  # the instance on `_front` was promoted and has not exited
        self._given: dict[tuple[int, ...], tuple[socket, ...]] = {}
        self._no_extra = asyncio.Event()  # no socket besides `_front` is in use
        self._no_extra.set()
        self.addresses: list[ListenAddress] = []
        # What the closed sockets counted (traffic() adds the open ones); None where the
        # kernel's counts cannot be read or no address is TCP (unix sockets count nothing).
        self._past: ListenerTally | None = None

    async def open(self) -> None:
        try:
            self._front = tuple(listener.open() for listener in self._listeners)
        except BaseException:
            await self.close()
            raise
        self.addresses = [listener.address for listener in self._listeners]
        if any(listener.counted for listener in self._listeners):
            self._past = ListenerTally()

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
                self._count_removal(listener, sock)
                listener.remove(sock)
        if all(socks == self._front for socks in self._given.values()):
            self._no_extra.set()

    def _count_removal(self, listener: sockets.Listener, sock: socket) -> None:
        """A socket's last figures, just before it is closed: its drops, and the connections
        still in its queue, which the close resets (nothing accepts them any more)."""
        if self._past is None or not listener.counted:
            return
        self._past = ListenerTally(
            self._past.dropped + (sockets.listen_drops(sock) or 0),
            self._past.reset + listener.queued(sock),
        )

    def unavailable(self, reason: str) -> None:
        pass

    @contextlib.asynccontextmanager
    async def candidate(self, n: int, binding: Binding) -> AsyncIterator[str]:
        """Through the candidate's own socket on the first address (see candidate.py)."""
        from pitstop.supervisor.candidate import CHECK_SOURCE, Relay, source_reachable

        listener = self._listeners[0]
        socks = self._given.get(binding.fds, ())
        own = socks[0] if socks else None
        if (
            own is None
            or own is self._front[0]
            or not listener.can_steer_by_source()
            or not source_reachable()
        ):
            # One shared socket (unix, IPv6, no steering) or nothing serves yet: the public
            # address is all there is, and with nothing serving it reaches the candidate.
            address = listener.address
            if address.family != "unix" and own is not None and own is not self._front[0]:
                log.warning("#%d: checks reach the public address, not the candidate only", n)
            yield _url(address)
            return
        relay = Relay(listener.address)
        await relay.open()
        listener.steer_source(own, CHECK_SOURCE)
        try:
            yield relay.url
        finally:
            listener.end_source_steering()
            await relay.close()

    # Connections go from the kernel straight to the instance: Linux keeps no count of what
    # a listening socket accepted, only of what it dropped (sockets.listen_drops).
    def traffic(self) -> ListenerTally | None:
        if self._past is None:
            return None
        dropped = self._past.dropped
        for listener in self._listeners:
            if listener.counted:
                dropped += sum(sockets.listen_drops(sock) or 0 for sock in listener.sockets)
        return ListenerTally(dropped, self._past.reset)

    def served_by(self, n: int) -> int | None:
        return None

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
        # The backend each promoted instance got, until it is released; the counts of those
        # released are added up in `_past`.
        self._promoted: dict[int, Backend] = {}
        self._past = Traffic()

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
        self._fold(n)  # the same number after a crash restart: the crashed one's counts
        self._promoted[n] = backend
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
        self._fold(n)

    def _fold(self, n: int) -> None:
        backend = self._promoted.pop(n, None)
        if backend is not None:
            self._past = Traffic(
                self._past.served + backend.tally.served, self._past.failed + backend.tally.failed
            )

    def unavailable(self, reason: str) -> None:
        self._proxy.unavailable(reason)

    @contextlib.asynccontextmanager
    async def candidate(self, n: int, binding: Binding) -> AsyncIterator[str]:
        yield f"http://{binding.host or PRIVATE_HOST}:{binding.port}"

    def traffic(self) -> Traffic:
        served, failed = self._past.served, self._past.failed + self._proxy.unrouted
        for backend in self._promoted.values():
            served += backend.tally.served
            failed += backend.tally.failed
        return Traffic(served, failed)

    def served_by(self, n: int) -> int | None:
        backend = self._promoted.get(n)
        return backend.tally.served if backend is not None else 0

    async def close(self) -> None:
        await self._proxy.close()
        self._listeners.close()


def _url(address: ListenAddress) -> str:
    if address.family == "unix":
        return f"unix:{address.path}"
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"http://{host}:{address.port}"


def make_frontend(spec: ServiceSpec) -> Frontend:
    return ProxyFrontend(spec) if spec.uses_proxy else SocketFrontend(spec)
