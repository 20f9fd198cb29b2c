"""How long a proxied request can wait while a rebuild runs slow env scripts.

    .venv/bin/python benchmarks/env_stall.py [--sleep 2] [--rounds 3] [--clients 4]

A proxy-mode service (tests/apps/port_app.py behind `pitstop --watch serve`) whose task file
has `env_scripts = ["sleep N"]` and an env value `{ script = ["sleep N; echo x"] }`. Both run
again on every rebuild. While `--clients` keep-alive clients request `/` without pause, the
source changes; the round ends when the new version answers. Prints, per round, the worst
latency of any request during the rebuild (from the change until the new version
answered) next to the worst of 2 s of steady load before it, then the worst over all
rounds and the command that made it.

When env setup ran on the event loop, the worst latency was about twice N seconds (both
scripts in a row); off the loop it is a few milliseconds.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "port_app.py"

TASKFILE = """
env_scripts = ["sleep {sleep}"]

[env]
SLOW_VALUE = {{ script = ["sleep {sleep}; echo slow"] }}

[tasks.build]
script = "cp source.txt version.txt"

[tasks.serve]
dependencies = ["build"]
script = '''
VERSION="$(cat version.txt)" exec "{python}" "{app}"
'''
watch = {{ watch = ["source.txt"] }}
service = {{ proxy = "127.0.0.1:{port}", ready = {{ http = "/health" }}, ready_timeout = "30s" }}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        body = conn.getresponse().read().decode().strip()
        conn.close()
        return body
    except (OSError, http.client.HTTPException):
        return None


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the service")
        time.sleep(0.05)


class Client(threading.Thread):
    """Keep-alive GET / in a loop; records (start, latency) of every request."""

    def __init__(self, port: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.deadline = time.monotonic() + seconds
        self.stop = threading.Event()
        self.samples: list[tuple[float, float, str]] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            start = time.monotonic()
            try:
                conn.request("GET", "/")
                body = conn.getresponse().read().decode().strip()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.samples.append((start, time.monotonic() - start, body))
        conn.close()


def one_round(project: Path, port: int, version: str, clients: int) -> tuple[float, float]:
    """Change the source to `version`: the worst request latency in the 2 s of steady load
    before the change, and from the change until the new version answers."""
    workers = [Client(port, seconds=120) for _ in range(clients)]
    for worker in workers:
        worker.start()
    wait_for(lambda: all(w.samples for w in workers), 30)
    steady = time.monotonic()
    time.sleep(2.0)  # a window of steady load, for comparison
    changed = time.monotonic()
    (project / "source.txt").write_text(version + "\n")
    wait_for(lambda: any(s[2] == version for w in workers for s in w.samples[-5:]), 120)
    for worker in workers:
        worker.stop.set()
    for worker in workers:
        worker.join(timeout=60)
    if any(w.errors for w in workers):
        raise SystemExit(f"{sum(w.errors for w in workers)} requests failed")
    before = [lat for w in workers for start, lat, _ in w.samples if steady <= start < changed]
    during = [lat for w in workers for start, lat, _ in w.samples if start + lat >= changed]
    return max(before), max(during)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds each env script sleeps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="env-stall-") as tmp:
        project = Path(tmp)
        (project / "source.txt").write_text("v0\n")
        (project / "Makefile.toml").write_text(
            TASKFILE.format(sleep=args.sleep, python=sys.executable, app=APP, port=port)
        )
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitstop", "--watch", "serve"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: get(port) == "v0", 60)
            worst = []
            for n in range(1, args.rounds + 1):
                steady, latency = one_round(project, port, f"v{n}", args.clients)
                worst.append(latency)
                print(
                    f"round {n}: worst request latency during the rebuild {latency * 1000:.0f} ms"
                    f" (steady load before it: {steady * 1000:.0f} ms)"
                )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    print(f"worst over {args.rounds} rounds: {max(worst) * 1000:.0f} ms")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {platform.system()} {platform.release()}, load average {load}"
    )
    argv = " ".join(sys.argv[1:])
    print(f"command: .venv/bin/python benchmarks/env_stall.py {argv}".rstrip())


if __name__ == "__main__":
    main()
