"""Where new work goes, and what is still in flight where.

The router is the one piece both proxy modes share: it holds the current backend, makes
requests wait while there is none, and counts what is in flight per backend so a swap can
wait for the old instance to drain. Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_REASON = "no instance of the service is ready"


class Tally:
    """What one backend did with the requests (http) or connections (tcp) routed to it.

    `served`: answered in full (http: the response's last byte relayed to the client; tcp: the
    connection reached the backend). `failed`: refused, reset, or answered with a 5xx that
    pitstop generated (502, 504) or cut off after part of a response. A request whose client
    went away first counts as neither. One integer increment on the request's end, on the
    event loop's thread: no lock, no allocation.
    """

    __slots__ = ("failed", "served")

    def __init__(self) -> None:
        self.served = 0
        self.failed = 0


@dataclass(frozen=True)
class Backend:
    """One running instance of the service, listening on its own port."""

    host: str
    port: int
    name: str = ""
    # The counts of the requests routed to this object (not to an equal one built later).
    tally: Tally = field(default_factory=Tally, compare=False, repr=False)

    def __str__(self) -> str:
        label = f"{self.name} " if self.name else ""
        return f"{label}({self.host}:{self.port})"


class Flight:
    """One request (http) or connection (tcp) in flight; abort() cuts its transports."""

    __slots__ = ("transports",)

    def __init__(self, transports: list[asyncio.WriteTransport] | None = None) -> None:
        self.transports = transports if transports is not None else []

    def abort(self) -> None:
        for transport in self.transports:
            transport.abort()


class NoBackend(Exception):
    """No backend became ready within the wait timeout."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Router:
    def __init__(self, wait_timeout: float) -> None:
        self.wait_timeout = wait_timeout
        self.current: Backend | None = None
        self._reason = DEFAULT_REASON
        self._ready = asyncio.Event()
        self._flights: dict[Backend, set[Flight]] = {}
        self._emptied: dict[Backend, asyncio.Event] = {}
        # The flights of the backend used last, found without hashing a Backend (a
        # dataclass, hashed in Python) on each request; when not empty it is the set
        # `_flights` holds for that backend.
        self._hot_backend: Backend | None = None
        self._hot: set[Flight] = set()
        self.waiting = 0  # requests (or connections) waiting for a backend to appear
        self.unrouted = 0  # requests (or connections) that got 503 (closed): no backend came

    def set_backend(self, backend: Backend | None) -> Backend | None:
        previous, self.current = self.current, backend
        if backend is None:
            self._reason = DEFAULT_REASON
            self._ready.clear()
        else:
            self._ready.set()
        log.info("proxy: new requests go to %s (was %s)", backend, previous)
        return previous

    def unavailable(self, reason: str) -> None:
        self.set_backend(None)
        self._reason = reason.splitlines()[0] if reason.strip() else DEFAULT_REASON

    async def acquire(self, flight: Flight) -> Backend:
        """The backend current now (or the first one to appear); `flight` counts on it."""
        backend = self.current or await self._wait_for_backend()
        # Registered in the same step as the choice, so a drain() started right after
        # set_backend() can never miss a request routed to the old backend.
        self._add(backend, flight)
        return backend

    def _add(self, backend: Backend, flight: Flight) -> None:
        if backend is not self._hot_backend or not self._hot:
            self._hot_backend = backend
            self._hot = self._flights.setdefault(backend, set())
        self._hot.add(flight)

    def acquire_now(self, flight: Flight) -> Backend | None:
        """acquire() without waiting: None when there is no backend right now."""
        backend = self.current
        if backend is not None:
            self._add(backend, flight)
        return backend

    async def _wait_for_backend(self) -> Backend:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        self.waiting += 1
        try:
            while (backend := self.current) is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise NoBackend(self._reason)
                try:
                    async with asyncio.timeout(remaining):
                        await self._ready.wait()
                except TimeoutError:
                    raise NoBackend(self._reason) from None
            return backend
        finally:
            self.waiting -= 1

    def release(self, backend: Backend, flight: Flight) -> None:
        if backend is self._hot_backend and flight in self._hot:
            flights = self._hot
        else:
            found = self._flights.get(backend)
            if found is None:
                return
            flights = found
        flights.discard(flight)
        if not flights:
            if self._flights.get(backend) is flights:
                del self._flights[backend]
            emptied = self._emptied.pop(backend, None)
            if emptied is not None:
                emptied.set()

    def in_flight(self, backend: Backend) -> int:
        return len(self._flights.get(backend, ()))

    async def drain(self, backend: Backend, timeout: float) -> bool:
        """Wait until nothing is in flight on `backend`; past `timeout`, abort what is left."""
        if not self._flights.get(backend):
            return True
        emptied = self._emptied.setdefault(backend, asyncio.Event())
        try:
            # Not wait_for, which on Python 3.11 swallows a cancellation that comes as the
            # last flight ends (control.py says more).
            async with asyncio.timeout(timeout):
                await emptied.wait()
            return True
        except TimeoutError:
            left = self._flights.get(backend, set())
            log.warning("proxy: %s still had %d in flight after %.1fs", backend, len(left), timeout)
            for flight in list(left):
                flight.abort()
            return False
