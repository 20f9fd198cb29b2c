"""`pitstop up -d` and the verbs end to end: the real CLI, real services on 127.0.0.1, the
real control socket (under a private XDG_RUNTIME_DIR per test).

Two services (tests/apps/fd_app.py, answering with the version their build copied into
place); `web` depends on `api`. Watching is off (--no-watch) so that only `pitstop restart`
swaps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, pid_alive, port_open, wait_until
from tests.load import Load

APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"

TASKFILE = """
[tasks.build]
script = '''
if grep -q broken source.txt; then echo "build failed: broken source" >&2; exit 1; fi
cp source.txt version.txt
'''

[tasks.api]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "version.txt"]
watch = {{ watch = ["source.txt"] }}
service = {{ listen = "127.0.0.1:{api}", ready = {{ notify = true }}, ready_timeout = "20s" }}

[tasks.web]
dependencies = ["api"]
command = "{python}"
args = ["{app}", "version.txt"]
watch = {{ watch = ["source.txt"] }}
service = {{ listen = "127.0.0.1:{web}", ready = {{ notify = true }}, ready_timeout = "20s" }}
"""


class Daemon:
    def __init__(self, project: Project, runtime: Path) -> None:
        self.project = project
        self.runtime = runtime
        self.api, self.web = free_port(), free_port()
        project.write("source.txt", "v1\n")
        project.write(
            "pitstop.toml",
            TASKFILE.format(python=sys.executable, app=APP, api=self.api, web=self.web),
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.project.run(*args, XDG_RUNTIME_DIR=str(self.runtime))

    def ps(self) -> list[dict[str, object]]:
        result = self.run("ps", "--json")
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, object]] = json.loads(result.stdout)
        return rows

    @property
    def state(self) -> Path:
        return self.project.root / ".pitstop"

    def pid(self) -> int | None:
        try:
            return int((self.state / "daemon.pid").read_text())
        except (OSError, ValueError):
            return None

    def socket_path(self) -> Path:
        return Path((self.state / "socket").read_text().strip())


@pytest.fixture
def daemon(project: Project, tmp_path: Path) -> Iterator[Daemon]:
    runtime = tmp_path / "run"
    runtime.mkdir()
    running = Daemon(project, runtime)
    yield running
    pid = running.pid()
    if pid is not None and pid_alive(pid):
        running.run("down")
        if pid_alive(pid):  # the test failed half-way: end what it started, by its pid
            os.kill(pid, signal.SIGKILL)


def _gone(pids: list[int], ports: list[int]) -> bool:
    return not any(pid_alive(p) for p in pids) and not any(port_open("127.0.0.1", p) for p in ports)


def test_daemon_life_up_ps_logs_restart_under_load_down(daemon: Daemon) -> None:
    up = daemon.run("up", "-d", "--no-watch")
    assert up.returncode == 0, up.stderr + up.stdout
    assert "api" in up.stdout and "web" in up.stdout
    # It points at where the output is, not at daemon.log (empty unless the daemon crashes).
    assert "`pitstop logs` shows the services' output" in up.stdout
    assert "daemon.log" not in up.stdout
    assert daemon.pid() is not None and pid_alive(daemon.pid() or 0)

    rows = daemon.ps()
    assert [r["name"] for r in rows] == ["api", "web"]  # dependency order
    for row in rows:
        assert row["state"] in ("ready", "serving"), row
        assert {"version", "pid", "address", "restarts", "uptime_s"} <= row.keys()
        assert pid_alive(int(str(row["pid"])))
    assert rows[0]["address"] == f"127.0.0.1:{daemon.api}"
    pids = [int(str(r["pid"])) for r in rows]
    # The daemon's mark is for the daemon only; its services don't see it.
    assert b"PITSTOP_DAEMON=" not in Path(f"/proc/{pids[0]}/environ").read_bytes()

    # Only its user can reach the daemon.
    sock = daemon.socket_path()
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700

    # A second daemon in the same project is refused, naming the first.
    again = daemon.run("up", "-d", "--no-watch")
    assert again.returncode == 2
    assert f"pid {daemon.pid()}" in again.stderr and "Traceback" not in again.stderr

    logs = daemon.run("logs", "api", "-n", "3")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("api | ") for line in lines), lines
    both = daemon.run("logs", "-n", "1000").stdout
    assert "web | " in both and "api | " in both

    daemon.project.write("source.txt", "v2\n")
    with Load.new_connections(("127.0.0.1", daemon.api), clients=4) as load:
        load.wait_to_see("v1")
        restart = daemon.run("restart", "api")
        assert restart.returncode == 0, restart.stderr
        load.wait_to_see("v2")
        load.wait_for_more(50)
    assert load.failures == []
    rows = daemon.ps()
    assert rows[0]["version"] == 2 and (rows[0]["swaps"], rows[0]["restarts"]) == (1, 0)
    assert rows[1]["pid"] == pids[1]  # web was not touched
    pids.append(int(str(rows[0]["pid"])))

    daemon_pid = daemon.pid()
    assert daemon_pid is not None
    down = daemon.run("down")
    assert down.returncode == 0, down.stderr
    # `down` returns once the daemon has exited: nothing is left, every port is free.
    assert down.stdout == f"every service stopped; pitstop up (pid {daemon_pid}) exited\n"
    assert not pid_alive(daemon_pid)  # the process itself, not only its lock and socket
    assert _gone(pids, [daemon.api, daemon.web])
    assert daemon.pid() is None
    assert not sock.exists()
    gone = daemon.run("ps")
    assert gone.returncode == 1 and "no daemon runs" in gone.stderr


def test_sigkill_to_the_daemon_leaves_nothing_and_its_socket_is_replaced(daemon: Daemon) -> None:
    assert daemon.run("up", "-d", "--no-watch").returncode == 0
    pids = [int(str(r["pid"])) for r in daemon.ps()]
    daemon_pid = daemon.pid()
    assert daemon_pid is not None
    sock = daemon.socket_path()

    os.kill(daemon_pid, signal.SIGKILL)
    wait_until(lambda: _gone([daemon_pid, *pids], [daemon.api, daemon.web]), 15, "all gone")
    ps = daemon.run("ps")
    assert ps.returncode == 1
    assert "no daemon runs" in ps.stderr and "Traceback" not in ps.stderr
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)  # the dead daemon's socket is still there

    up = daemon.run("up", "-d", "--no-watch")
    assert up.returncode == 0, up.stderr
    assert all(r["state"] in ("ready", "serving") for r in daemon.ps())
    assert daemon.run("down").returncode == 0


def test_verbs_without_a_daemon(daemon: Daemon) -> None:
    ps = daemon.run("ps")
    assert ps.returncode == 1 and "no daemon runs" in ps.stderr
    for verb in (["restart", "api"], ["stop", "api"], ["start", "api"], ["logs"], ["events"]):
        result = daemon.run(*verb)
        assert result.returncode == 2, verb
        assert "no daemon runs" in result.stderr and "Traceback" not in result.stderr
    rollback = daemon.run("rollback", "api")
    assert rollback.returncode == 2 and "no daemon runs" in rollback.stderr
    assert "not a single `pitstop api`: run it with `pitstop up api`" in rollback.stderr
    # `down` wants nothing running, and nothing runs: one line, success.
    down = daemon.run("down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == [
        f"nothing to stop: no pitstop up runs for {daemon.project.root / 'pitstop.toml'}"
    ]
    assert down.stderr == ""


def test_verbs_reach_a_foreground_up_and_down_ends_it(daemon: Daemon) -> None:
    foreground = daemon.project.popen("up", "--no-watch", XDG_RUNTIME_DIR=str(daemon.runtime))
    try:
        wait_until(
            lambda: (
                daemon.run("ps").returncode == 0
                and all(r["state"] in ("ready", "serving") for r in daemon.ps())
            ),
            30,
            "the foreground up serves",
        )
        second = daemon.run("up", "--no-watch")
        assert second.returncode == 2 and f"pid {foreground.pid}" in second.stderr
        stop = daemon.run("stop", "web")
        assert stop.returncode == 0, stop.stderr
        assert [r["state"] for r in daemon.ps()] == ["serving", "stopped"]
        start = daemon.run("start", "web")
        assert start.returncode == 0, start.stderr
        wait_until(lambda: daemon.ps()[1]["state"] in ("ready", "serving"), 20, "web again")
        assert daemon.run("down").returncode == 0
        assert foreground.wait(timeout=30) == 0
    finally:
        if foreground.poll() is None:
            foreground.kill()
            foreground.wait()


def test_up_d_names_each_service_that_failed_and_why(daemon: Daemon) -> None:
    daemon.project.write("source.txt", "broken\n")
    up = daemon.run("up", "-d")
    assert up.returncode == 1, up.stdout + up.stderr
    assert "Traceback" not in up.stderr
    errors = [line for line in up.stderr.splitlines() if line.startswith("error: ")]
    assert any("service api is failed" in line for line in errors), up.stderr
    assert any("service web is blocked" in line and "api" in line for line in errors), up.stderr
    # The daemon keeps running and watching: a fix brings both up.
    assert [r["state"] for r in daemon.ps()] == ["failed", "blocked"]
    # The build's output is api's: in its log, with its prefix.
    assert "api | build failed: broken source" in daemon.run("logs", "-n", "100", "api").stdout
    daemon.project.write("source.txt", "v1\n")
    wait_until(
        lambda: [r["state"] for r in daemon.ps()] == ["serving", "serving"], 30, "both serve"
    )
    assert daemon.run("down").returncode == 0


def test_up_d_with_bad_input_starts_no_daemon(daemon: Daemon) -> None:
    up = daemon.run("up", "-d", "apy")
    assert up.returncode == 2
    assert "apy" in up.stderr and "api" in up.stderr and "Traceback" not in up.stderr
    assert daemon.pid() is None


def test_logs_follow_and_events_json_stream_what_happens(daemon: Daemon) -> None:
    assert daemon.run("up", "-d", "--no-watch").returncode == 0
    env = {"XDG_RUNTIME_DIR": str(daemon.runtime)}
    follow = daemon.project.popen("logs", "-f", "-n", "0", "web", **env)
    events = daemon.project.popen("events", "--json", **env)
    try:
        logs_lines = collect_lines(follow.stdout)  # type: ignore[arg-type]
        event_lines = collect_lines(events.stdout)  # type: ignore[arg-type]

        def swapped() -> bool:
            # The streams may connect after a first restart: restart until both saw one.
            found = any(json.loads(line)["type"] == "swapped" for line in event_lines) and any(
                "serves" in line for line in logs_lines
            )
            if not found:
                assert daemon.run("restart", "web").returncode == 0
            return found

        wait_until(swapped, 30, "a swap in both streams", interval=0.2)
        assert all(line.startswith("web | ") for line in logs_lines), logs_lines
        for line in event_lines:
            assert {"type", "time", "service", "instance"} <= json.loads(line).keys()
        assert follow.poll() is None and events.poll() is None  # still following
        assert daemon.run("down").returncode == 0
        # The daemon's exit ends both streams.
        assert follow.wait(timeout=20) == 0 and events.wait(timeout=20) == 0
    finally:
        for child in (follow, events):
            if child.poll() is None:
                child.kill()
            child.wait()


def test_ctrl_c_while_up_d_waits_says_the_daemon_keeps_running(daemon: Daemon) -> None:
    daemon.project.write(
        "pitstop.toml",
        f"""
[tasks.slow-build]
script = "sleep 60"

[tasks.api]
dependencies = ["slow-build"]
command = "{sys.executable}"
args = ["{APP}", "version.txt"]
service = {{ listen = "127.0.0.1:{daemon.api}", ready = {{ notify = true }} }}
""",
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "pitstop", "up", "-d", "--no-watch"],
        cwd=daemon.project.root,
        env=daemon.project.env(XDG_RUNTIME_DIR=str(daemon.runtime)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: daemon.run("ps").returncode == 0, 30, "the daemon answers")
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 130, err
    assert "Traceback" not in err
    daemon_pid = daemon.pid()
    assert daemon_pid is not None and pid_alive(daemon_pid)
    assert f"stopped waiting; the daemon (pid {daemon_pid}) keeps starting" in err
    assert "`pitstop down` stops them" in err
    assert daemon.run("down").returncode == 0
    assert not pid_alive(daemon_pid)


def test_up_d_shows_each_services_progress_while_a_build_runs(daemon: Daemon) -> None:
    # api's build waits for the test's word (a bounded wait, so that it ends on its own).
    daemon.project.write(
        "pitstop.toml",
        f"""
[tasks.build]
script = "for i in $(seq 300); do test -e go && break; sleep 0.1; done; cp source.txt version.txt"

[tasks.api]
dependencies = ["build"]
command = "{sys.executable}"
args = ["{APP}", "version.txt"]
service = {{ listen = "127.0.0.1:{daemon.api}", ready = {{ notify = true }} }}

[tasks.web]
dependencies = ["api"]
command = "{sys.executable}"
args = ["{APP}", "missing.txt"]
service = {{ listen = "127.0.0.1:{daemon.web}", ready = {{ notify = true }} }}
""",
    )
    launcher = daemon.project.popen("up", "-d", "--no-watch", XDG_RUNTIME_DIR=str(daemon.runtime))
    try:
        assert launcher.stderr is not None
        said = collect_lines(launcher.stderr)
        wait_until(lambda: "api: building…\n" in said, 30, "api's build in progress")
        assert launcher.poll() is None  # still waiting, and saying why
        (daemon.project.root / "go").touch()
        assert launcher.wait(timeout=60) == 1
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    lines = [line.rstrip("\n") for line in said]
    progress = [line for line in lines if line.startswith(("api: ", "web: "))]
    # One line per change seen (a short one may be missed between two looks): api builds,
    # then is ready; web fails to start, saying why.
    api = [line for line in progress if line.startswith("api: ")]
    assert api[0] == "api: building…" and api[1:-1] in ([], ["api: starting…"]), lines
    assert re.fullmatch(r"api: ready in \d+\.\d s", api[-1]), lines
    assert any(line.startswith("web: failed: ") for line in progress), lines
    assert len(progress) == len(set(progress)), lines
    assert daemon.run("down").returncode == 0
