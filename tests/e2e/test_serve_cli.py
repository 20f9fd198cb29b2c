"""`pitstop serve` / `pitstop --watch serve` end to end: the real CLI, a real server on 127.0.0.1.

The service (tests/apps/fd_app.py) takes its listener from fd 3, sends READY=1, and answers
with the version its build copied into place; the build fails when the source says "broken".
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import (
    collect_lines,
    free_port,
    pid_alive,
    port_open,
    script_pids,
    try_get,
    wait_until,
)
from tests.load import Load

APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"

TASKFILE = """
[tasks.build]
script = '''
if grep -q broken source.txt; then echo "build failed: broken source" >&2; exit 1; fi
cp source.txt version.txt
'''

[tasks.serve]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "version.txt"]
watch = {{ watch = ["source.txt"] }}
service = {{ listen = "127.0.0.1:{port}", ready = {{ notify = true }}, ready_timeout = "20s", stop_timeout = "5s" }}
"""


def _release(project: Project, port: int, *versions: str) -> None:
    """Change the source to each version in turn, until the service answers with it.

    The write is repeated because the first one may land before the watcher is set up.
    """
    for version in versions:

        def answered(version: str = version) -> bool:
            if try_get(port) == version:
                return True
            (project.root / "source.txt").write_text(version + "\n")
            return False

        wait_until(answered, timeout=30, interval=0.3)


@pytest.fixture
def service(project: Project) -> tuple[Project, int]:
    port = free_port()
    project.write("source.txt", "v1\n")
    project.write("pitstop.toml", TASKFILE.format(python=sys.executable, app=APP, port=port))
    return project, port


def _serve(project: Project, *args: str) -> subprocess.Popen[str]:
    return project.popen(*args, "serve")


def test_watch_serve_swaps_without_a_failed_request_and_survives_a_broken_build(
    service: tuple[Project, int],
) -> None:
    project, port = service
    proc = _serve(project, "--watch")
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=30)
        with Load.new_connections(("127.0.0.1", port)) as load:
            _release(project, port, "v2", "v3")
            load.wait_for_more(50)
        assert load.failures == [], f"{len(load.failures)} failed of {len(load.bodies)}"

        (project.root / "source.txt").write_text("broken\n")
        wait_until(lambda: any("failed" in line for line in stderr[-20:]), timeout=30)
        assert try_get(port) == "v3"  # the old version keeps serving
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(stderr)
    wait_until(lambda: not script_pids("fd_app.py", project.root), timeout=10)
    assert not port_open("127.0.0.1", port)


def test_serve_without_watch_builds_then_serves_and_stops_cleanly(
    service: tuple[Project, int],
) -> None:
    project, port = service
    proc = _serve(project)
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=30)
        assert (project.root / "version.txt").read_text() == "v1\n"
        instances = script_pids("fd_app.py", project.root)
        assert len(instances) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    wait_until(lambda: not pid_alive(instances[0]), timeout=10)
    assert not port_open("127.0.0.1", port)


def test_a_failed_first_build_exits_with_its_status(service: tuple[Project, int]) -> None:
    project, port = service
    (project.root / "source.txt").write_text("broken\n")
    result = project.run("serve", timeout=60)
    assert result.returncode == 1
    assert "build failed: broken source" in result.stderr
    assert not port_open("127.0.0.1", port)


def test_sigkill_of_pitstop_frees_the_port(service: tuple[Project, int]) -> None:
    project, port = service
    proc = _serve(project)
    wait_until(lambda: try_get(port) == "v1", timeout=30)
    instances = script_pids("fd_app.py", project.root)
    assert instances
    proc.kill()
    proc.wait(timeout=10)
    for pid in instances:
        wait_until(
            lambda pid=pid: not pid_alive(pid), timeout=15, message="instance outlived pitstop"
        )
    wait_until(lambda: not port_open("127.0.0.1", port), timeout=10)


PROXY_TASKFILE = """
[tasks.build]
script = '''
if grep -q broken source.txt; then exit 1; fi
cp source.txt version.txt
'''

[tasks.serve]
dependencies = ["build"]
script = '''
VERSION="$(cat version.txt)" exec "{python}" "{app}"
'''
watch = {{ watch = ["source.txt"] }}
service = {{ proxy = "127.0.0.1:{port}", ready = {{ http = "/health" }}, ready_timeout = "20s" }}
"""


def test_proxy_mode_swaps_a_port_app_under_keep_alive_load(project: Project) -> None:
    port = free_port()
    app = Path(__file__).resolve().parents[1] / "apps" / "port_app.py"
    project.write("source.txt", "v1\n")
    project.write("pitstop.toml", PROXY_TASKFILE.format(python=sys.executable, app=app, port=port))
    proc = project.popen("--watch", "serve")
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=30)
        with Load.keep_alive(("127.0.0.1", port)) as load:
            _release(project, port, "v2", "v3")
            load.wait_for_more(50)
        assert load.failures == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    wait_until(lambda: not port_open("127.0.0.1", port), timeout=10)
