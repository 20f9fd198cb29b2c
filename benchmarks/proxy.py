"""Throughput and latency through pitstop's proxy versus straight to the app.

    .venv/bin/python benchmarks/proxy.py [--duration 5] [--connections 50] [--rounds 3]
        [--app asyncio|uvicorn|both|none] [--client wrk|python] [--latency-connections 20]

Two apps: a tiny asyncio HTTP/1.1 server (so the app is not the bottleneck) and uvicorn
with a trivial ASGI app (closer to what a dev server costs). App and proxy each run in
their own process (on uvloop if it is installed), all on 127.0.0.1. The load comes from
`wrk` when it is installed, else from a small asyncio client in this file. Each scenario
(keep-alive, new connection per request) alternates direct and proxied runs `--rounds`
times, so both see the same machine noise, and reports the medians, with the proxy
process's own CPU time per request (steadier than req/s on a busy machine). Prints a markdown
table and the command that made it.

A second table is keep-alive latency at low load, the proxy on asyncio's default loop and
on uvloop: `--latency-connections` clients (the small asyncio client in this file, so that
each request waits for the one before) send requests one after another to an app built on
`http.server` (with TCP_NODELAY on its own sockets), which writes a response's head and body
in two send() calls. The proxy then forwards them in two writes too, and that is where
Nagle's algorithm meets the client's delayed ACK when TCP_NODELAY is missing on a socket of
the proxy: ~40 ms per request instead of well under one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A proxy started for --baseline-src runs another checkout's pitstop (PITSTOP_BENCH_SRC).
sys.path.insert(
    0, os.environ.get("PITSTOP_BENCH_SRC") or str(Path(__file__).resolve().parents[1] / "src")
)

from pitstop.supervisor.proxy.server import Backend, Proxy, free_port

HOST = "127.0.0.1"
BODY = b"hello, world\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%%s\r\n%s" % (
    len(BODY),
    BODY,
)
KEEP, CLOSE = RESPONSE % b"", RESPONSE % b"Connection: close\r\n"


# --- the app and the proxy, each run as `proxy.py --serve-app/--serve-proxy` -------------


class AppProtocol(asyncio.Protocol):
    """Answers every request head with the same small response; honours Connection: close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            if b"connection: close" in head:
                self.transport.write(CLOSE)
                self.transport.close()
                return
            self.transport.write(KEEP)


async def serve_app(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(AppProtocol, HOST, port, backlog=1024)
    print("READY", flush=True)
    await server.serve_forever()


async def asgi_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """The trivial ASGI app for `--app uvicorn`: closer to what a dev server costs."""
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": BODY})  # type: ignore[operator]


def serve_uvicorn(port: int) -> None:
    import uvicorn

    uvicorn.run(asgi_app, host=HOST, port=port, log_level="warning", backlog=1024)


def serve_http_server(port: int) -> None:
    """http.server, as a typical small dev server: head and body in separate writes."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Its own sends go out at once, so any stall measured is the proxy's.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((HOST, port), Handler)
    print("READY", flush=True)
    server.serve_forever()


async def serve_proxy(port: int, backend_port: int) -> None:
    proxy = Proxy("http")
    listener = socket.create_server((HOST, port), backlog=1024)
    await proxy.start([listener])
    proxy.set_backend(Backend(HOST, backend_port, "#1"))
    print("READY", flush=True)
    await asyncio.Event().wait()


def run_server(coro: object, loop: str = "uvloop") -> None:
    """Run `coro` on uvloop if it is installed and wanted, else on asyncio's default loop."""
    if loop == "uvloop":
        try:
            import uvloop

            uvloop.run(coro)  # type: ignore[arg-type]
            return
        except ImportError:
            pass
    asyncio.run(coro)  # type: ignore[arg-type]


# --- load generation -------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0  # the proxy process's CPU time (user + sys) per request


# The pid of the proxy serving each port, so its CPU time can be read around a run.
PROXY_PIDS: dict[int, int] = {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(load: Callable[[int, int, float, bool], Result], port: int, *args: Any) -> Result:
    """`load` against `port`, with the CPU time per request of the proxy behind it."""
    pid = PROXY_PIDS.get(port)
    before = cpu_seconds(pid) if pid else 0.0
    result = load(port, *args)
    if pid and result.rps:
        duration = args[1]
        result.cpu_us = (cpu_seconds(pid) - before) / (result.rps * duration) * 1e6
    return result


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, connections: int, duration: float, keep_alive: bool) -> Result:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if not keep_alive:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(
        [*argv, f"http://{HOST}:{port}/"], capture_output=True, text=True, check=True
    ).stdout

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        return float(match[1]) * _UNITS[match[2]]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    count = sum(int(n) for n in errors.groups()) if errors else 0
    assert rps, out
    return Result(
        float(rps[1]), latency("50"), latency("99"), count + int(non2xx[1] if non2xx else 0)
    )


async def _python_client(port: int, connections: int, duration: float, keep_alive: bool) -> Result:
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n%s\r\n" % (
        b"" if keep_alive else b"Connection: close\r\n"
    )
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def one_connection() -> None:
        nonlocal errors
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (start := time.perf_counter()) < deadline:
            try:
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                reader, writer = conn
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                if not keep_alive:
                    writer.close()
                    conn = None
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                conn = None
        if conn is not None:
            conn[1].close()

    began = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return Result(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, errors)


def run_python(port: int, connections: int, duration: float, keep_alive: bool) -> Result:
    return asyncio.run(_python_client(port, connections, duration, keep_alive))


# --- orchestration ----------------------------------------------------------------------


def start(role: str, *ports: int | str, src: str | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, role, *map(str, ports)]
    env = {**os.environ, "PITSTOP_BENCH_SRC": src} if src else None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    if role == "--serve-uvicorn":
        wait_for_port(int(ports[0]))
    else:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=["wrk", "python"], default=None)
    parser.add_argument("--app", choices=["asyncio", "uvicorn", "both", "none"], default="both")
    parser.add_argument("--latency-connections", type=int, default=20)
    parser.add_argument(
        "--baseline-src",
        help="also run, alternating with the others, a proxy from this src/ folder "
        "(e.g. an older checkout's), as the target 'baseline'",
    )
    args = parser.parse_args()
    client = args.client or ("wrk" if shutil.which("wrk") else "python")
    load = run_wrk if client == "wrk" else run_python
    rows: list[Row] = []
    apps = {"both": ("asyncio", "uvicorn"), "none": ()}.get(args.app, (args.app,))
    for app in apps:
        app_port = free_port(HOST)
        procs = [start("--serve-app" if app == "asyncio" else "--serve-uvicorn", app_port)]
        targets = {"direct": app_port}
        try:
            targets.update(start_proxies(procs, app_port, "uvloop", args.baseline_src))
            for keep_alive in (True, False):
                results: dict[str, list[Result]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name, port in targets.items():
                        results[name].append(
                            measured(load, port, args.connections, args.duration, keep_alive)
                        )
                scenario = "keep-alive" if keep_alive else "new connection per request"
                rows.append((app, scenario, {k: median(v) for k, v in results.items()}))
        finally:
            stop(procs)
    if rows:
        print_table(rows, client, args)
    if args.latency_connections:
        print_latency(latency_rows(args), args)


Row = tuple[str, str, dict[str, Result]]  # app or loop, scenario, result per target


def start_proxies(
    procs: list[subprocess.Popen[str]], app_port: int, loop: str, baseline: str | None
) -> dict[str, int]:
    """A proxy to `app_port` (and a baseline one); their ports by target name."""
    targets = {}
    for name, src in (("proxy", None), ("baseline", baseline)):
        if name == "proxy" or src:
            port = free_port(HOST)
            procs.append(start("--serve-proxy", port, app_port, loop, src=src))
            PROXY_PIDS[port] = procs[-1].pid
            targets[name] = port
    return targets


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait()


def latency_rows(args: argparse.Namespace) -> list[Row]:
    """Keep-alive latency to an http.server app, direct and through the proxy on each loop."""
    app_port = free_port(HOST)
    app = [start("--serve-http-server", app_port)]
    rows = []
    try:
        for loop in ("asyncio", "uvloop"):
            procs: list[subprocess.Popen[str]] = []
            targets = {"direct": app_port}
            try:
                targets.update(start_proxies(procs, app_port, loop, args.baseline_src))
                results: dict[str, list[Result]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name, port in targets.items():
                        n, d = args.latency_connections, args.duration
                        results[name].append(run_python(port, n, d, True))
                rows.append((loop, "keep-alive", {k: median(v) for k, v in results.items()}))
            finally:
                stop(procs)
    finally:
        stop(app)
    return rows


def print_latency(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nKeep-alive latency: {args.latency_connections} connections, requests one after "
        f"another on each, app http.server, client python, {args.duration:g} s per run, "
        f"median of {args.rounds}\n"
    )
    print("| proxy loop | target | p50 | p99 | added p50 | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for loop, _, results in rows:
        direct = results["direct"]
        for target, r in results.items():
            added = "" if target == "direct" else f"{r.p50_ms - direct.p50_ms:+.2f} ms"
            print(
                f"| {loop} | {target} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms | {added} "
                f"| {r.errors} |"
            )


def median(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        statistics.median(r.cpu_us for r in results),
    )


def print_table(rows: list[Row], client: str, args: argparse.Namespace) -> None:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    print("$ .venv/bin/python benchmarks/proxy.py " + " ".join(sys.argv[1:]))
    print(
        f"\n{args.connections} connections, {args.duration:g} s per run, median of "
        f"{args.rounds} alternating runs per target, client {client}, loop {loop}, "
        f"{os.cpu_count()} CPUs shared by client, app and proxy, Python {sys.version.split()[0]}\n"
    )
    print(
        "| app | scenario | target | req/s | p50 | p99 | errors | proxy/direct | added p50 "
        "| proxy CPU per request |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for app, name, results in rows:
        direct = results["direct"]
        for target, r in results.items():
            ratio = "" if target == "direct" else f"{100 * r.rps / direct.rps:.0f} %"
            added = "" if target == "direct" else f"{r.p50_ms - direct.p50_ms:+.2f} ms"
            cpu = f"{r.cpu_us:.1f} µs" if r.cpu_us else ""
            print(
                f"| {app} | {name} | {target} | {r.rps:,.0f} | {r.p50_ms:.2f} ms "
                f"| {r.p99_ms:.2f} ms | {r.errors} | {ratio} | {added} | {cpu} |"
            )


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--serve-app":
        run_server(serve_app(int(sys.argv[2])))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--serve-uvicorn":
        serve_uvicorn(int(sys.argv[2]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--serve-http-server":
        serve_http_server(int(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "--serve-proxy":
        loop = sys.argv[4] if len(sys.argv) >= 5 else "uvloop"
        run_server(serve_proxy(int(sys.argv[2]), int(sys.argv[3])), loop)
    else:
        main()
