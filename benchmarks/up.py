"""Ten services under one manager: `pitstop up` beside pm2, in the same run.

    .venv/bin/python benchmarks/up.py [--services 10] [--repeat 3] [--idle 20]
                                      [--pm2 /tmp/pm2/node_modules/.bin/pm2] [--foreground]

Every service is the same app: examples/dev-env/api/server.py, a Python standard-library
HTTP server that takes a listening socket on fd 3 (pitstop's socket hand-off, READY=1 on
$NOTIFY_SOCKET) or binds 127.0.0.1:$PORT itself (pitstop's proxy mode, and pm2). For each
way of running the ten it reports (median over --repeat runs):

- *returned s*: launch → the command's exit (`up -d` returns once every service is ready;
  `pm2 start` once it has launched them);
- *ready s*: launch of the command → every service's public address answers
  `GET /health` with 200 (polled from here every 10 ms, the same test for every tool);
- *idle CPU %*: after 3 s of quiet, user+system CPU time of the manager's processes (every
  thread; the apps are not counted) over --idle s, as a % of one core;
- *RSS MB*: the manager's resident memory at the end of the idle period (apps not counted);
  *apps MB*, the ten apps' together, for scale;
- *stop s*: `pitstop down` (`SIGTERM` with --foreground; `pm2 delete all` for pm2) → every
  app has exited.

Ways: `pitstop up -d --no-watch` with socket hand-off and with the proxy, `pitstop up -d`
watching (the default), and pm2 (`pm2 start ecosystem.config.js`) with its daemon not yet running
(a user's first command), already running, and with `--watch`. pm2 runs with a PM2_HOME of
its own in a temp folder, and `pm2 kill` ends its daemon after each run. Install it with
`npm install --prefix /tmp/pm2 pm2`; without it, only pitstop is measured.

With --foreground, `pitstop up` runs in the foreground instead (output to a file beside the
project, as the daemon's goes to .pitstop/logs). Linux only (reads /proc). Every wait has a
deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from watch_idle import TICKS, cpu_ticks, rss_mb, tree

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "dev-env" / "api" / "server.py"
DEADLINE = 60.0
SETTLE_S = 3.0


@dataclass
class Figures:
    returned_s: float | None  # the launching command's exit (None: it runs in the foreground)
    ready_s: float
    cpu_percent: float
    rss: float
    apps_rss: float
    stop_s: float


@dataclass
class Way:
    name: str
    command: str  # as a user would type it, for the table
    start: Callable[[Path, list[int]], Running]
    before: Callable[[], None] = lambda: None  # untimed, before each start


class Running:
    """One launched manager: what to measure and how to stop it."""

    returns = False  # whether the launching command exits (a daemon's does)

    def __init__(self, launch: subprocess.Popen[bytes], folder: Path) -> None:
        self.launch = launch
        self.folder = folder

    def manager_root(self) -> int:
        return self.launch.pid

    def stop(self) -> None:
        self.launch.send_signal(signal.SIGTERM)
        self.launch.wait(timeout=DEADLINE)

    def kill(self) -> None:
        if self.launch.poll() is None:
            self.launch.kill()
            self.launch.wait()


class DaemonRunning(Running):
    """`pitstop up -d`: the daemon's pid is in the project's state folder."""

    returns = True

    def manager_root(self) -> int:
        return int((self.folder / ".pitstop" / "daemon.pid").read_text())

    def stop(self) -> None:
        pitstop("down", cwd=self.folder)

    def kill(self) -> None:
        daemon = self.folder / ".pitstop" / "daemon.pid"
        with contextlib.suppress(OSError, ValueError):  # no pid file: `down` went well
            pid = int(daemon.read_text())
            if b"pitstop" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)  # its services die with it
        self.launch.wait(timeout=DEADLINE)


def pitstop(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pitstop", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=DEADLINE,
        check=True,
    )


class Pm2Running(Running):
    returns = True

    def __init__(self, launch: subprocess.Popen[bytes], folder: Path, pm2: Pm2) -> None:
        super().__init__(launch, folder)
        self.pm2 = pm2

    def manager_root(self) -> int:
        return int((self.pm2.home / "pm2.pid").read_text())

    def stop(self) -> None:
        self.pm2.run("delete", "all")

    def kill(self) -> None:
        self.pm2.run("kill")  # so that the next run of a "daemon not running" way is cold
        self.launch.wait(timeout=DEADLINE)


@dataclass
class Pm2:
    binary: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PM2_HOME": str(self.home)}

    def run(self, *args: str) -> None:
        subprocess.run(
            [str(self.binary), *args],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=DEADLINE,
            check=True,
        )

    def popen(self, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(self.binary), *args],
            cwd=cwd,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], what: str, log: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {DEADLINE:g} s: {what}\n{log()}")
        time.sleep(0.01)


def app_pids(folder: Path) -> list[int]:
    """The apps: processes running the app's copy in `folder`."""
    needle = str(folder / "server.py").encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                found.append(int(entry))
    return found


# --------------------------------------------------------------------------- the ways


def pitstop_way(*, proxy: bool, watch: bool, detach: bool) -> Callable[[Path, list[int]], Running]:
    def start(folder: Path, ports: list[int]) -> Running:
        parts = []
        for n, port in enumerate(ports):
            if proxy:
                service = f'{{ proxy = "127.0.0.1:{port}", ready = {{ http = "/health" }} }}'
            else:
                service = f'{{ listen = "127.0.0.1:{port}", ready = {{ notify = true }} }}'
            parts.append(
                f'[tasks.svc{n}]\ncommand = "{sys.executable}"\n'
                f'args = ["{folder / "server.py"}"]\nservice = {service}\n'
            )
        (folder / "pitstop.toml").write_text("\n".join(parts))
        argv = [sys.executable, "-m", "pitstop", "up"]
        argv += (["-d"] if detach else []) + ([] if watch else ["--no-watch"])
        # The log sits beside the project: inside, every line written would be a change.
        # (The daemon writes its own under .pitstop/, which the watcher ignores.)
        with (folder.parent / "pitstop.log").open("wb") as log:
            launch = subprocess.Popen(
                argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return DaemonRunning(launch, folder) if detach else Running(launch, folder)

    return start


def pm2_warm(pm2: Pm2) -> Callable[[], None]:
    def before() -> None:
        pm2.run("ping")  # starts the daemon...
        time.sleep(SETTLE_S)  # ...and lets it finish starting up

    return before


def pm2_way(pm2: Pm2, *, watch: bool) -> Callable[[Path, list[int]], Running]:
    def start(folder: Path, ports: list[int]) -> Running:
        apps = [
            {
                "name": f"svc{n}",
                "script": str(folder / "server.py"),
                "interpreter": sys.executable,
                "cwd": str(folder),
                "env": {"PORT": str(port)},
                "autorestart": True,
                "watch": [str(folder)] if watch else False,
            }
            for n, port in enumerate(ports)
        ]
        config = folder / "ecosystem.config.js"
        config.write_text(f"module.exports = {{ apps: {json.dumps(apps, indent=2)} }};\n")
        return Pm2Running(pm2.popen("start", str(config), cwd=folder), folder, pm2)

    return start


# --------------------------------------------------------------------------- measuring


def measure(way: Way, services: int, idle_s: float) -> Figures:
    with tempfile.TemporaryDirectory(prefix="pitstop-up-bench-") as tmp:
        folder = Path(tmp) / "project"
        folder.mkdir()
        shutil.copy(APP, folder / "server.py")
        ports = free_ports(services)
        way.before()
        t0 = time.monotonic()
        running = way.start(folder, ports)
        returned: list[float] = []

        def exited() -> bool:
            if not returned and running.launch.poll() is not None:
                returned.append(time.monotonic() - t0)
            return bool(returned)

        def ready() -> bool:
            if exited() and running.launch.returncode != 0:
                raise RuntimeError(f"{way.name}: exit {running.launch.returncode}\n{log()}")
            return all(healthy(p) for p in ports)

        def log() -> str:
            files = [folder.parent / "pitstop.log", *folder.glob(".pitstop/**/*.log")]
            return "\n".join(f"--- {f}\n{f.read_text()[-2000:]}" for f in files if f.exists())

        try:
            wait_for(ready, f"{way.name}: every service ready", log)
            ready_s = time.monotonic() - t0
            if running.returns:
                wait_for(exited, f"{way.name}: the command returns")
            time.sleep(SETTLE_S)
            apps = app_pids(folder)
            assert len(apps) == services, f"{way.name}: {len(apps)} apps running"
            manager = [p for p in tree(running.manager_root()) if p not in apps]
            before, t1 = cpu_ticks(manager), time.monotonic()
            time.sleep(idle_s)
            after, t2 = cpu_ticks(manager), time.monotonic()
            used = sum(after[p] - before[p] for p in after if p in before) / TICKS
            rss, apps_rss = rss_mb(manager), rss_mb(apps)
            t3 = time.monotonic()
            running.stop()
            wait_for(lambda: not app_pids(folder), f"{way.name}: every app exited")
            stop_s = time.monotonic() - t3
        finally:
            running.kill()
        return Figures(
            returned[0] if returned else None,
            ready_s,
            100 * used / (t2 - t1),
            rss,
            apps_rss,
            stop_s,
        )


def median_figures(runs: list[Figures]) -> Figures:
    returned = [r.returned_s for r in runs if r.returned_s is not None]
    return Figures(
        statistics.median(returned) if returned else None,
        *(
            statistics.median(getattr(r, f) for r in runs)
            for f in ("ready_s", "cpu_percent", "rss", "apps_rss", "stop_s")
        ),
    )


def find_pm2(given: str | None) -> Path | None:
    for candidate in (given, "/tmp/pm2/node_modules/.bin/pm2", shutil.which("pm2")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measured")
    parser.add_argument(
        "--foreground", action="store_true", help="pitstop up in the foreground, not up -d"
    )
    parser.add_argument("--pm2", help="the pm2 binary (default: /tmp/pm2/..., then PATH)")
    args = parser.parse_args()

    detach = not args.foreground
    up = "pitstop up" + ("" if args.foreground else " -d")
    ways = [
        Way(
            "pitstop, socket hand-off",
            f"{up} --no-watch",
            pitstop_way(proxy=False, watch=False, detach=detach),
        ),
        Way(
            "pitstop, proxy",
            f"{up} --no-watch",
            pitstop_way(proxy=True, watch=False, detach=detach),
        ),
        Way(
            "pitstop, socket hand-off, watching",
            up,
            pitstop_way(proxy=False, watch=True, detach=detach),
        ),
    ]
    pm2_binary = find_pm2(args.pm2)
    pm2_home = Path(tempfile.mkdtemp(prefix="pitstop-up-bench-pm2-"))
    if pm2_binary is None:
        print("pm2 not found (npm install --prefix /tmp/pm2 pm2): measuring pitstop only")
    else:
        pm2 = Pm2(pm2_binary, pm2_home)
        version = (
            subprocess.run(
                [str(pm2_binary), "--version"], env=pm2.env(), capture_output=True, text=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        pm2.run("kill")  # --version may have started a daemon: the first way starts cold
        warm = pm2_warm(pm2)
        ways += [
            Way(f"pm2 {version}, daemon not running", "pm2 start", pm2_way(pm2, watch=False)),
            Way(f"pm2 {version}, daemon running", "pm2 start", pm2_way(pm2, watch=False), warm),
            Way(
                f"pm2 {version}, daemon running, watching",
                "pm2 start --watch",
                pm2_way(pm2, watch=True),
                warm,
            ),
        ]

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"$ {' '.join(sys.argv)}")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load average {load}; node "
        f"{subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip() or '-'}"
    )
    print(
        f"{args.services} services, median of {args.repeat} runs, idle measured over {args.idle:g} s\n"
    )
    print("| way | command | returned s | ready s | idle CPU % | RSS MB | apps MB | stop s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    try:
        for way in ways:
            runs = []
            for _ in range(args.repeat):
                runs.append(measure(way, args.services, args.idle))
            m = median_figures(runs)
            spread = f"{min(r.ready_s for r in runs):.2f}-{max(r.ready_s for r in runs):.2f}"
            returned = "-" if m.returned_s is None else f"{m.returned_s:.2f}"
            print(
                f"| {way.name} | `{way.command}` | {returned} | {m.ready_s:.2f} ({spread}) | "
                f"{m.cpu_percent:.2f} | {m.rss:.0f} | {m.apps_rss:.0f} | {m.stop_s:.2f} |",
                flush=True,
            )
    finally:
        if pm2_binary is not None:
            subprocess.run(
                [str(pm2_binary), "kill"],
                env={**os.environ, "PM2_HOME": str(pm2_home)},
                capture_output=True,
                timeout=DEADLINE,
            )
        shutil.rmtree(pm2_home, ignore_errors=True)
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
