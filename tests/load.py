"""The one load generator of the tests: clients on threads making requests back to back
until stopped, or until a time bound passes — never until a request count, which a fast
machine reaches early. A test that waits on a load which has stopped fails at once, saying
"load stopped", instead of waiting for progress that cannot come.

    with Load.new_connections(address, clients=4) as load:
        load.wait_to_see("v1")
        ...swap...
        load.wait_for_more(20)
    assert load.failures == []

In async tests (where the event loop may be serving the requests) use `async with` and the
`async_` methods, so that waiting never blocks the loop.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

from tests.helpers import async_wait_until, wait_until

Address = tuple[str, int]
#: The longest a test waits for the load to make progress.
WAIT_S = 20.0
#: A safety net, not a test length (under pytest-timeout's 120 s): a test that needs longer
#: fails with "load stopped".
MAX_S = 90.0
#: After a failed request a client pauses, so that a refused port is not recorded thousands
#: of times a second (a test asserts there are none; the first few say why).
FAILURE_PAUSE_S = 0.005


class Client(Protocol):
    def request(self) -> str:
        """One request; the response body, or an exception."""
        ...

    def close(self) -> None: ...


def http_get(address: Address, timeout: float = 5.0, path: str = "/") -> str:
    """One request on a new connection; the body, or an exception."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"bad response: {data[:80]!r}")
    return body.decode().strip()


class NewConnections:
    """A new connection for every request."""

    def __init__(self, address: Address, path: str = "/") -> None:
        self.address, self.path = address, path

    def request(self) -> str:
        return http_get(self.address, path=self.path)

    def close(self) -> None:
        pass


class KeepAlive:
    """One keep-alive connection for every request, as browsers do. A request that finds the
    connection closed by the server fails: a swap must not close a client's connection."""

    def __init__(self, address: Address) -> None:
        self._conn = http.client.HTTPConnection(*address, timeout=5)
        self._sock: socket.socket | None = None

    def request(self) -> str:
        self._conn.request("GET", "/")
        response = self._conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise ConnectionError(f"status {response.status}: {body[:80]!r}")
        # http.client reopens a connection the server closed without a word: catch that.
        if self._sock is None:
            self._sock = self._conn.sock
        elif self._conn.sock is not self._sock:
            self._sock = self._conn.sock
            raise ConnectionError("the server closed the keep-alive connection")
        return body.strip()

    def close(self) -> None:
        self._conn.close()


class Worker:
    """One client thread; its own bodies and failures, in order."""

    def __init__(self, load: Load, connect: Callable[[], Client]) -> None:
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self.ended = ""  # why the thread ended, when it did
        self._load = load
        self._connect = connect
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def answered(self) -> int:
        """Requests answered or failed."""
        return len(self.bodies) + len(self.failures)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the test's next wait reports it as "load stopped"
            self.ended = f"the client crashed: {exc!r}"

    def _loop(self) -> None:
        load = self._load
        deadline = time.monotonic() + load.max_s
        client = self._connect()
        while not load.stopping.is_set():
            if time.monotonic() >= deadline:
                self.ended = f"its time bound of {load.max_s:g} s passed"
                break
            try:
                body = client.request()
            except Exception as exc:  # every failure is recorded; the test asserts none
                self.failures.append(repr(exc))
                load.failures.append(repr(exc))
                client.close()
                load.stopping.wait(FAILURE_PAUSE_S)
                client = self._connect()
                continue
            self.bodies.append(body)
            load.bodies.append(body)  # list.append is atomic: one list for all threads
        client.close()


class Load:
    """`clients` threads, each making requests back to back through its own `Client`, until
    stopped or `max_s` has passed. `bodies` and `failures` hold those of every thread, in the
    order they came; `workers` those of each."""

    def __init__(
        self, connect: Callable[[], Client], clients: int = 1, max_s: float = MAX_S
    ) -> None:
        self.max_s = max_s
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.workers = [Worker(self, connect) for _ in range(clients)]

    @classmethod
    def new_connections(cls, address: Address, clients: int = 1, max_s: float = MAX_S) -> Load:
        return cls(lambda: NewConnections(address), clients, max_s)

    @classmethod
    def keep_alive(cls, address: Address, clients: int = 1, max_s: float = MAX_S) -> Load:
        return cls(lambda: KeepAlive(address), clients, max_s)

    def __enter__(self) -> Load:
        for worker in self.workers:
            worker.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Load:
        return self.__enter__()

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.thread.join(timeout=15)

    def check_running(self) -> None:
        """Fail at once when a client has stopped while the test still relies on it."""
        for n, worker in enumerate(self.workers):
            if not worker.thread.is_alive() and not self.stopping.is_set():
                raise AssertionError(f"load stopped: client {n} ended, {worker.ended or '?'}")

    def saw(self, text: str) -> bool:
        """Whether one of the latest responses contains `text`."""
        return any(text in body for body in self.bodies[-50:])

    # Waits: each fails at once with "load stopped" if a client has ended.

    def _more(self, count: int, each: bool) -> Callable[[], bool]:
        targets = [worker.answered + count for worker in self.workers]
        total = len(self.bodies) + len(self.failures) + count

        def progressed() -> bool:
            self.check_running()
            if each:
                return all(w.answered >= t for w, t in zip(self.workers, targets, strict=True))
            return len(self.bodies) + len(self.failures) >= total

        return progressed

    def _seen(self, text: str) -> Callable[[], bool]:
        def seen() -> bool:
            self.check_running()
            return self.saw(text)

        return seen

    def wait_for_more(self, count: int, each: bool = False, timeout: float = WAIT_S) -> None:
        """Wait until `count` more requests have been answered (or failed) than now, in all
        or, with `each`, by every client."""
        wait_until(self._more(count, each), timeout, f"{count} more requests")

    async def async_wait_for_more(
        self, count: int, each: bool = False, timeout: float = WAIT_S
    ) -> None:
        await async_wait_until(self._more(count, each), timeout, f"{count} more requests")

    def wait_to_see(self, text: str, timeout: float = WAIT_S) -> None:
        """Wait until a response contains `text`."""
        wait_until(self._seen(text), timeout, f"a response with {text!r}")

    async def async_wait_to_see(self, text: str, timeout: float = WAIT_S) -> None:
        await async_wait_until(self._seen(text), timeout, f"a response with {text!r}")
