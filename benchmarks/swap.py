"""Swap vs kill-then-restart: what clients see while a service is rebuilt 50 times.

    .venv/bin/python benchmarks/swap.py [--changes 50] [--service py|rust|uvicorn]

A Python client on a thread makes back-to-back requests, each on a new connection, to a
service on 127.0.0.1. The script releases N source changes and one broken change, and
reports for each strategy:

* failed requests (after a failure the client pauses 5 ms, so a refused port is not
  counted thousands of times a second),
* the longest gap between two successful responses,
* median and p95 time from writing the change to the first response from the new version.

Strategies:
* pitstop: `Supervisor` with a build callable; the socket is held, the new version starts
  beside the old one, the old one stops once the new one is ready.
* restart: what `cargo watch -x run` does: stop the running server, build, start the new
  one, which binds the port itself; a broken build leaves nothing running.

Services: `py` is tests/apps/fd_app.py with a `cp` for a build (isolates the swap itself);
`rust` is examples/rust-service with a real `cargo build` (the build dominates); `uvicorn`
is examples/uvicorn-app run as `uvicorn app:app --fd 3` (a server pitstop does not control,
which drops accepted-but-unread connections on SIGTERM) with `py_compile` for a build.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pitstop.engine import process  # noqa: E402
from pitstop.errors import Location  # noqa: E402
from pitstop.supervisor import sockets  # noqa: E402
from pitstop.supervisor.events import BuildStarted, InstanceReady  # noqa: E402
from pitstop.supervisor.instance import InstanceCommand  # noqa: E402
from pitstop.supervisor.supervisor import Supervisor  # noqa: E402
from pitstop.taskfile.service import parse_service  # noqa: E402

FD_APP = ROOT / "tests" / "apps" / "fd_app.py"
RUST = ROOT / "examples" / "rust-service"
UVICORN_APP = ROOT / "examples" / "uvicorn-app"
DEADLINE = 120.0


# --------------------------------------------------------------------------- load


@dataclass
class Load:
    """The client runs in its own process (so it does not compete with the supervisor for
    the GIL); a thread here collects its results. CLOCK_MONOTONIC is system-wide."""

    address: tuple[str, int]
    times: list[float] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    failures: int = 0

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=client, args=(self.address, send, self._stop))
        self._proc.start()
        send.close()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while True:
            try:
                item = self._recv.recv()
            except EOFError:
                return
            if item is None:
                self.failures += 1
            else:
                self.times.append(item[0])
                self.bodies.append(item[1])

    def finish(self) -> None:
        self._stop.set()
        self._proc.join()
        self._thread.join()

    def first_with(self, marker: str, after: float) -> float | None:
        """Time of the first response containing `marker` at or after `after`."""
        times = self.times[: len(self.bodies)]
        for i in range(bisect.bisect_left(times, after), len(times)):
            if marker in self.bodies[i]:
                return times[i]
        return None

    def longest_gap(self, end: float) -> float:
        """Longest time without a successful response, counting up to `end` (so that a
        service left down by the broken build counts too)."""
        times = [*self.times, end]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


#: The client's own time bound: it ends even if this script dies without telling it (a
#: non-daemon multiprocessing child would otherwise keep the dead script's exit waiting).
MAX_LOAD_S = 900.0


def client(address: tuple[str, int], send: Any, stop: Any) -> None:
    deadline = time.monotonic() + MAX_LOAD_S
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            body = get(address)
        except OSError:
            send.send(None)
            time.sleep(0.005)
            continue
        send.send((time.monotonic(), body))
    send.close()


def get(address: tuple[str, int]) -> str:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionResetError("no response")
    return body.decode()


async def wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.002)


# --------------------------------------------------------------------------- services


@dataclass
class Service:
    root: Path
    argv: tuple[str, ...]
    env: dict[str, str]
    build_argv: tuple[str, ...]
    write: Callable[[str], None]  # write source version N (or "broken")
    marker: Callable[[str], str]  # the text a response of version N contains
    ready: dict[str, object] = field(default_factory=lambda: {"notify": True})


def py_service(root: Path) -> Service:
    script = "grep -q broken src && exit 1; cp src version"

    def write(version: str) -> None:
        (root / "src").write_text(version)

    write("v0")
    return Service(
        root,
        (sys.executable, str(FD_APP), str(root / "version")),
        dict(os.environ),
        ("/bin/sh", "-c", script),
        write,
        lambda v: v,
    )


def rust_service(root: Path) -> Service:
    project = root / "rust-service"
    shutil.copytree(RUST, project, ignore=shutil.ignore_patterns("target*"))
    env = {**os.environ, "CARGO_TARGET_DIR": str(RUST / "target-bench")}
    main_rs = project / "src" / "main.rs"
    original = main_rs.read_text()

    def write(version: str) -> None:
        text = 'const VERSION: &str = "v1";'
        replacement = "const VERSION: &str = oops" if version == "broken" else text
        main_rs.write_text(original.replace(text, replacement.replace("v1", version)))

    write("v0")
    binary = str(Path(env["CARGO_TARGET_DIR"]) / "debug" / "rust-service")
    return Service(
        project, (binary,), env, ("cargo", "build", "--quiet"), write, lambda v: f" {v}\n"
    )


def uvicorn_service(root: Path) -> Service:
    app = root / "app.py"
    original = (UVICORN_APP / "app.py").read_text()

    def write(version: str) -> None:
        text = 'VERSION = "v1"'
        replacement = "VERSION = oops(" if version == "broken" else f'VERSION = "{version}"'
        app.write_text(original.replace(text, replacement))

    write("v0")
    uvicorn = f'"{sys.executable}" -m uvicorn app:app --no-access-log'
    # --fd 3 under pitstop; its own --port for the kill-then-restart comparison.
    script = (
        f'if [ -n "$LISTEN_FDS" ]; then exec {uvicorn} --fd 3; '
        f'else exec {uvicorn} --port "$PORT"; fi'
    )
    return Service(
        root,
        ("/bin/sh", "-c", script),
        dict(os.environ),
        (sys.executable, "-m", "py_compile", "app.py"),
        write,
        lambda v: f" {v}\n",
        ready={"log": "Uvicorn running on"},
    )


async def run_build(service: Service) -> bool:
    child = await process.spawn(
        service.build_argv, cwd=service.root, env=service.env, on_line=lambda *_: None
    )
    try:
        return await child.wait() == 0
    except asyncio.CancelledError:
        await child.terminate(timeout=2)
        raise


# --------------------------------------------------------------------------- strategies


class Strategy:
    address: tuple[str, int]

    async def start(self) -> None: ...
    async def change(self) -> None: ...
    async def stop(self) -> None: ...


class PitstopStrategy(Strategy):
    def __init__(self, service: Service, port: int) -> None:
        spec = parse_service(
            {"listen": f"127.0.0.1:{port}", "ready": service.ready},
            Location(service.root / "pitstop.toml"),
        )
        command = InstanceCommand(service.argv, service.root, service.env)
        self.events: list[tuple[float, object]] = []

        async def build(_changes: frozenset[Path]) -> InstanceCommand | None:
            return command if await run_build(service) else None

        self.sup = Supervisor(spec, command, build, self._record)
        self.address = ("127.0.0.1", port)

    def _record(self, event: object) -> None:
        self.events.append((time.monotonic(), event))

    def build_and_ready(self, since: float) -> float | None:
        """Seconds the last cycle since `since` spent building, then starting until ready."""
        marks = [(t, e) for t, e in self.events if t >= since]
        built = [t for t, e in marks if isinstance(e, BuildStarted)]
        ready = [t for t, e in marks if isinstance(e, InstanceReady)]
        if not built or not ready:
            return None
        return ready[-1] - built[-1]

    async def start(self) -> None:
        assert await self.sup.start()

    async def change(self) -> None:
        self.sup.changed()
        await self.sup.settled()

    async def stop(self) -> None:
        await self.sup.stop()


class RestartStrategy(Strategy):
    """Kill, build, start: `cargo watch -x run`."""

    def __init__(self, service: Service, port: int) -> None:
        self.service = service
        self.address = ("127.0.0.1", port)
        self.child: process.Child | None = None
        self.env = {**service.env, "PORT": str(port)}
        for key in ("LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"):
            self.env.pop(key, None)

    async def start(self) -> None:
        await self.change()

    async def change(self) -> None:
        if self.child is not None:
            await self.child.terminate(signal.SIGTERM, 10)
            self.child = None
        if await run_build(self.service):
            self.child = await process.spawn(
                self.service.argv, cwd=self.service.root, env=self.env, on_line=lambda *_: None
            )

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.terminate(signal.SIGTERM, 10)


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    name: str
    requests: int
    failures: int
    longest_gap: float
    latencies: list[float]
    broken_kept_serving: bool
    # change → new version minus (build + start until ready): pitstop's own part of it
    overheads: list[float] = field(default_factory=list)


async def measure(
    name: str, make: Callable[[], Strategy], service: Service, changes: int
) -> Result:
    strategy = make()
    service.write("v0")
    await strategy.start()
    load = Load(strategy.address)
    await wait_for(lambda: _answers(strategy.address), "first start")
    load.start()
    await wait_for(lambda: load.times, "first response")
    latencies: list[float] = []
    overheads: list[float] = []
    try:
        for i in range(1, changes + 1):
            version = f"v{i}"
            written = time.monotonic()
            service.write(version)
            task = asyncio.ensure_future(strategy.change())
            marker = service.marker(version)
            await wait_for(lambda m=marker, w=written: load.first_with(m, w), version)  # type: ignore[misc]
            first = load.first_with(marker, written)
            assert first is not None
            latencies.append(first - written)
            await task
            if isinstance(strategy, PitstopStrategy):
                spent = strategy.build_and_ready(written)
                if spent is not None:
                    overheads.append(first - written - spent)
        service.write("broken")
        await strategy.change()
        after = time.monotonic()
        # Watch what clients get for a moment after the broken build.
        await wait_for(lambda: time.monotonic() > after + 0.3, "observation")
        kept = load.first_with(service.marker(f"v{changes}"), after) is not None
        end = time.monotonic()
    finally:
        await asyncio.to_thread(load.finish)
        await strategy.stop()
    return Result(
        name,
        len(load.times) + load.failures,
        load.failures,
        load.longest_gap(end),
        latencies,
        kept,
        overheads,
    )


def _answers(address: tuple[str, int]) -> bool:
    try:
        get(address)
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def report(result: Result) -> str:
    lat = sorted(result.latencies)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
    return (
        f"{result.name:8} requests={result.requests:6d} failed={result.failures:5d} "
        f"longest_gap={1000 * result.longest_gap:8.1f}ms "
        f"change->new median={1000 * statistics.median(lat):7.1f}ms p95={1000 * p95:7.1f}ms "
        f"broken build: {'old keeps serving' if result.broken_kept_serving else 'nothing serves'}"
        + _overhead(result.overheads)
    )


def _overhead(overheads: list[float]) -> str:
    if not overheads:
        return ""
    ordered = sorted(overheads)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"\n         beyond build + readiness: median={1000 * statistics.median(ordered):6.1f}ms "
        f"p95={1000 * p95:6.1f}ms max={1000 * ordered[-1]:6.1f}ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--service", choices=("py", "rust", "uvicorn"), default="py")
    parser.add_argument(
        "--shared-socket",
        action="store_true",
        help="pitstop without per-instance sockets (one shared socket), for comparison",
    )
    args = parser.parse_args()
    if args.shared_socket:
        sockets.STEERING = False
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-") as tmp:
        make_service = {"py": py_service, "rust": rust_service, "uvicorn": uvicorn_service}[
            args.service
        ]
        service = make_service(Path(tmp))
        if args.service == "rust":
            await run_build(service)  # warm the target dir so both strategies start equal
        results = []
        for name, cls in (("pitstop", PitstopStrategy), ("restart", RestartStrategy)):
            port = free_port()
            results.append(
                await measure(name, lambda c=cls, p=port: c(service, p), service, args.changes)  # type: ignore[misc]
            )
    sharing = "one shared socket" if args.shared_socket else "a socket per instance"
    print(
        f"service={args.service} changes={args.changes} + 1 broken; pitstop: {sharing}; "
        "client: new connection per request"
    )
    for result in results:
        print(report(result))


if __name__ == "__main__":
    asyncio.run(main())
