"""The swap counts end to end: `pitstop up -d` with a service behind the proxy
(tests/apps/port_app.py), swapped with `pitstop restart` under load; `ps --json` carries the
running totals and `events --json` each swap's figures, and both agree with the load client."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, pid_alive, wait_until
from tests.load import Load

APP = Path(__file__).resolve().parents[1] / "apps" / "port_app.py"

TASKFILE = """
[tasks.build]
script = "cp source.txt version.txt"

[tasks.api]
dependencies = ["build"]
command = "/bin/sh"
args = ["-c", 'VERSION=$(cat version.txt) exec "{python}" "{app}"']
service = {{ proxy = "127.0.0.1:{port}", ready = {{ http = "/health" }}, drain_timeout = "5s" }}
"""


def two_swaps_under_load(
    project: Project, tmp_path: Path, taskfile: str, port: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Load]:
    """`up -d` the project, swap api twice with `pitstop restart` under load, then `down`:
    `ps --json`'s rows at the end, the swap_finished events seen, and the load client."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    project.write("source.txt", "v1\n")
    project.write("pitstop.toml", taskfile)
    up = project.run("up", "-d", "--no-watch", **env)
    assert up.returncode == 0, up.stderr + up.stdout
    events = project.popen("events", "--json", **env)
    try:
        lines = collect_lines(events.stdout)  # type: ignore[arg-type]
        with Load.new_connections(("127.0.0.1", port), clients=3) as load:
            load.wait_to_see("v1")
            for version in ("v2", "v3"):
                project.write("source.txt", f"{version}\n")
                assert project.run("restart", "api", **env).returncode == 0
                load.wait_to_see(version)
                load.wait_for_more(30)

        def finished() -> list[dict[str, Any]]:
            found = [json.loads(line) for line in lines]
            return [e for e in found if e["type"] == "swap_finished"]

        # The events stream may have connected after the first swap: at least the last one.
        wait_until(lambda: any(e["new"] == 3 for e in finished()), 20, "the swap to #3")
        rows = json.loads(project.run("ps", "--json", **env).stdout)
        assert project.run("down", **env).returncode == 0
        assert events.wait(timeout=20) == 0
    finally:
        if events.poll() is None:
            events.kill()
        events.wait()
        pid_file = project.root / ".pitstop" / "daemon.pid"
        if pid_file.exists() and pid_alive(pid := int(pid_file.read_text())):
            os.kill(pid, signal.SIGKILL)
    return rows, finished(), load


def test_ps_and_events_json_carry_the_counts_of_each_swap(project: Project, tmp_path: Path) -> None:
    port = free_port()
    taskfile = TASKFILE.format(python=sys.executable, app=APP, port=port)
    rows, swaps, load = two_swaps_under_load(project, tmp_path, taskfile, port)
    assert load.failures == []
    [row] = rows
    assert row["version"] == 3
    assert (row["served"], row["failed"]) == (len(load.bodies), 0)
    for swap in swaps:
        assert swap["service"] == "api" and swap["failed"] == 0
        assert swap["served"] == swap["served_old"] + swap["served_new"]
        assert isinstance(swap["ms"], int) and swap["ms"] >= 0


FD_APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"
SOCKET_TASKFILE = """
[tasks.build]
script = "cp source.txt version.txt"

[tasks.api]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "version.txt"]
service = {{ listen = "127.0.0.1:{port}", ready = {{ notify = true }} }}
"""


def test_socket_mode_ps_and_events_json_carry_what_the_listeners_counted(
    project: Project, tmp_path: Path
) -> None:
    """Socket hand-off: no served counts (null), and the listeners' dropped and reset (0
    under load with a swap), in ps --json's totals and each swap_finished event."""
    port = free_port()
    taskfile = SOCKET_TASKFILE.format(python=sys.executable, app=FD_APP, port=port)
    rows, swaps, load = two_swaps_under_load(project, tmp_path, taskfile, port)
    assert load.failures == []
    [row] = rows
    assert (row["version"], row["swaps"], row["restarts"]) == (3, 2, 0)
    assert (row["served"], row["failed"], row["dropped"], row["reset"]) == (None, 0, 0, 0)
    assert swaps
    for swap in swaps:
        assert (swap["served"], swap["served_old"], swap["served_new"]) == (None, None, None)
        assert (swap["failed"], swap["dropped"], swap["reset"]) == (0, 0, 0)
