"""The control socket under hostile clients: each is cut off, and a well-behaved request
still gets its answer. The server is real (a real Unix socket, its own event loop on a
thread); the services behind it are a fixed table, since only the HTTP side is under test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pitstop.errors import UserError
from pitstop.manager.client import ControlClient, NoDaemon
from pitstop.manager.control import Limits, serve_control
from pitstop.manager.state import ProjectState
from pitstop.manager.status import ServiceState, ServiceStatus
from pitstop.supervisor.events import InstanceOutput
from tests.helpers import wait_until

LIMITS = Limits(
    head_timeout=0.5, body_timeout=0.5, write_timeout=1.0, max_waiting=16, stream_queue=64
)


class _FixedServices:
    """One service that always serves; records what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._subscribers: list[Callable[[Any], None]] = []

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(
                "api",
                ServiceState.SERVING,
                1,
                os.getpid(),
                "127.0.0.1:1",
                0,
                time.time(),
                True,
                0.1,
                None,
            )
        ]

    def unstarted(self) -> list[str]:
        return ["stats"]

    async def restart(self, name: str) -> None:
        self.calls.append(f"restart {name}")

    async def stop_service(self, name: str) -> None:
        self.calls.append(f"stop {name}")

    async def start_service(self, name: str) -> None:
        self.calls.append(f"start {name}")

    async def stop(self) -> None:
        self.calls.append("stop")

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def emit(self, *events: object) -> None:
        for event in events:
            for callback in list(self._subscribers):
                callback(event)


class _Daemon:
    def __init__(self, state: ProjectState) -> None:
        self.state = state
        self.services = _FixedServices()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_control(self.services, self.state, LIMITS) as control:
            control.started(True)
            self.ready.set()
            await self._stop.wait()

    def emit(self, *events: object) -> None:
        """Events as the manager would send them, on the daemon's loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.services.emit, *events)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)


def _project(tmp_path: Path) -> ProjectState:
    taskfile = tmp_path / "project" / "pitstop.toml"
    taskfile.parent.mkdir(exist_ok=True)
    taskfile.write_text("")
    return ProjectState.for_taskfile(taskfile, tmp_path / "run")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[_Daemon]:
    running = _Daemon(_project(tmp_path))
    running.thread.start()
    running.ready.wait(10)
    if running.error is not None:
        raise running.error
    yield running
    running.stop()


def _client(daemon: _Daemon) -> ControlClient:
    return ControlClient(daemon.state.socket_path, daemon.state.taskfile)


def _connect(daemon: _Daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(daemon.state.socket_path))
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything until the server closes (the test's socket timeout bounds the wait)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _ps_works(daemon: _Daemon) -> None:
    assert [s["name"] for s in _client(daemon).get("/v1/services", timeout=5)] == ["api"]


def test_socket_is_0600_in_a_0700_folder_and_speaks_json(daemon: _Daemon) -> None:
    path = daemon.state.socket_path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    sock = _connect(daemon)
    sock.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = _answer(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    rows = json.loads(body)
    assert rows[0]["name"] == "api" and rows[0]["state"] == "serving"
    assert {"name", "state", "version", "pid", "address", "restarts", "uptime_s"} <= rows[0].keys()
    _client(daemon).post("/v1/services/api/restart")
    assert daemon.services.calls == ["restart api"]


def test_unknown_service_is_a_users_mistake_with_a_suggestion(daemon: _Daemon) -> None:
    with pytest.raises(UserError, match="no service named apy") as caught:
        _client(daemon).post("/v1/services/apy/restart")
    assert caught.value.hint == "did you mean api?"
    assert daemon.services.calls == []


def test_a_service_of_the_file_that_up_does_not_run_is_named_so(daemon: _Daemon) -> None:
    """`pitstop up api`, then `pitstop restart stats`: stats is in the file, not in this up."""
    with pytest.raises(
        UserError, match=r"stats is not one of the services this `pitstop up` runs \(api\)"
    ) as caught:
        _client(daemon).post("/v1/services/stats/restart")
    assert "`pitstop up` naming it as well" in (caught.value.hint or "")
    assert daemon.services.calls == []


def test_a_slowloris_head_is_cut_off(daemon: _Daemon) -> None:
    sock = _connect(daemon)
    sock.sendall(b"GET /v1/services HTTP/1.1\r\n")
    sock.settimeout(0.05)
    answer = b""
    # One header byte every 50 ms, each well within any per-read timeout, for up to 10 s.
    for _ in range(200):
        try:
            sock.sendall(b"X")
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        break
    else:
        raise AssertionError("the slow head was never cut off")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
    _ps_works(daemon)


def test_an_oversized_head_is_refused(daemon: _Daemon) -> None:
    sock = _connect(daemon)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(b"GET /v1/services HTTP/1.1\r\n" + b"X-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n")
    answer = _answer(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    _ps_works(daemon)


def test_an_oversized_body_is_refused_unread(daemon: _Daemon) -> None:
    sock = _connect(daemon)
    sock.sendall(b"POST /v1/down HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n")
    assert _answer(sock).startswith(b"HTTP/1.1 413 ")
    assert daemon.services.calls == []  # the request was not acted on
    _ps_works(daemon)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET /v1/services\r\n\r\n",
        b"GET /v1/services HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /v1/down HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /v1/down HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_garbage_is_answered_with_an_error_and_not_acted_on(
    daemon: _Daemon, garbage: bytes
) -> None:
    sock = _connect(daemon)
    sock.sendall(garbage)
    answer = _answer(sock)
    assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 411 ")), answer[:60]
    assert daemon.services.calls == []
    _ps_works(daemon)


def test_many_idle_connections_do_not_lock_ps_out(daemon: _Daemon) -> None:
    idle = [_connect(daemon) for _ in range(LIMITS.max_waiting * 4)]
    _ps_works(daemon)

    def cut_off() -> int:
        count = 0
        for sock in idle:
            sock.settimeout(0.001)
            try:
                if sock.recv(1) == b"":
                    count += 1
            except TimeoutError:
                pass
            except ConnectionResetError:
                count += 1
        return count

    # Beyond max_waiting the oldest are pushed out at once; the rest after head_timeout.
    wait_until(lambda: cut_off() == len(idle), 10, "every idle connection cut off")
    _ps_works(daemon)


def test_a_stale_socket_is_replaced_and_a_second_daemon_refused(tmp_path: Path) -> None:
    state = _project(tmp_path)
    state.prepare()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(state.socket_path))
    dead.close()  # a socket file nobody listens on, as a SIGKILLed daemon leaves it
    with pytest.raises(NoDaemon):
        ControlClient(state.socket_path, state.taskfile).get("/v1/services")
    first = _Daemon(state)
    first.thread.start()
    first.ready.wait(10)
    try:
        assert first.error is None
        _ps_works(first)
        second = _Daemon(state)
        second.thread.start()
        second.ready.wait(10)
        assert isinstance(second.error, UserError)
        assert f"pid {os.getpid()}" in str(second.error)
        _ps_works(first)
    finally:
        first.stop()
    assert not state.socket_path.exists()


def _stream(daemon: _Daemon, target: str) -> Any:
    """A streamed GET: the socket's file, past the response head."""
    sock = _connect(daemon)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"HTTP/1.1 200 ")
    while reader.readline() not in (b"\r\n", b""):
        pass
    return reader


def _output(text: str) -> InstanceOutput:
    return InstanceOutput(1, "stdout", text, service="api")


def test_logs_tail_then_follow_and_events_stream(daemon: _Daemon) -> None:
    daemon.emit(_output("before"))
    wait_until(lambda: (daemon.state.logs / "api.log").exists(), 5, "the log file")
    logs = _stream(daemon, "/v1/logs?service=api&n=5&follow=1")
    events = _stream(daemon, "/v1/events")
    assert json.loads(logs.readline())["text"] == "before"
    daemon.emit(_output("after"))
    line = json.loads(logs.readline())
    assert (line["service"], line["stream"], line["text"]) == ("api", "out", "after")
    event = json.loads(events.readline())
    assert event["type"] == "instance_output" and event["service"] == "api"
    assert (event["instance"], event["line"]) == (1, "after")


def test_a_stream_reader_that_falls_behind_is_cut_off(daemon: _Daemon) -> None:
    events = _stream(daemon, "/v1/events")
    # Far more than the stream's queue, at once, while the reader reads nothing.
    daemon.emit(*(_output("x" * 1000) for _ in range(LIMITS.stream_queue * 20)))
    lines = [json.loads(line) for line in events]  # until the server closes
    assert lines[-1] == {"error": "too slow; stream cut"}
    assert len(lines) < LIMITS.stream_queue * 20
    _ps_works(daemon)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_speaks_to_the_socket(daemon: _Daemon) -> None:
    answer = subprocess.run(
        ["curl", "-sf", "--unix-socket", str(daemon.state.socket_path), "http://x/v1/services"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert json.loads(answer.stdout)[0]["name"] == "api"


def test_a_body_that_never_arrives_is_cut_off_and_not_acted_on(daemon: _Daemon) -> None:
    sock = _connect(daemon)
    sock.sendall(b"POST /v1/down HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
    assert _answer(sock).startswith(b"HTTP/1.1 408 ")
    assert daemon.services.calls == []
    _ps_works(daemon)
