"""Env setup never blocks the event loop, and its children never outlive pitstop.

The real CLI in a temp directory. A proxy-mode service (tests/apps/port_app.py behind
pitstop's proxy) is under steady load while its rebuild runs a slow env script: no request
may wait longer than 200 ms (the threshold issue 8 asks for). And the children of env
scripts, env value scripts and condition scripts are ended when pitstop is interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, pid_alive, port_open, try_get, wait_until
from tests.load import KeepAlive, Load

APP = Path(__file__).resolve().parents[1] / "apps" / "port_app.py"
LATENCY_LIMIT = 0.2  # seconds: issue 8's "no request waits longer than 200 ms"

SERVICE = """
[tasks.build-version]
script = "cp source.txt version.txt"

[tasks.serve]
dependencies = ["build-version"]
script = '''
VERSION="$(cat version.txt)" exec "{python}" "{app}"
'''
watch = {{ watch = ["source.txt"] }}
service = {{ proxy = "127.0.0.1:{port}", ready = {{ http = "/health" }}, ready_timeout = "30s" }}
"""

# Each slow part appends a line to setup.log when it starts, so the test knows the rebuild's
# slow part really ran inside the window it measured.
SLOW_SETUP = {
    "env_scripts": """env_scripts = ["echo env_scripts >> setup.log; sleep 2"]\n""",
    "env value script": """
[env]
SLOW = { script = ["echo env value >> setup.log; sleep 2; echo slow"] }
""",
}


class Timed:
    """A keep-alive client of the shared load generator that also records, for every
    answered request, when it started and how long it took."""

    def __init__(self, address: tuple[str, int], samples: list[tuple[float, float]]) -> None:
        self._client = KeepAlive(address)
        self._samples = samples

    def request(self) -> str:
        start = time.monotonic()
        body = self._client.request()
        self._samples.append((start, time.monotonic() - start))
        return body

    def close(self) -> None:
        self._client.close()


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.parametrize("slow", sorted(SLOW_SETUP))
def test_proxied_requests_stay_fast_while_a_rebuild_runs_a_slow_env_script(
    project: Project, slow: str
) -> None:
    port = free_port()
    project.write("source.txt", "v1\n")
    taskfile = SLOW_SETUP[slow] + SERVICE.format(python=sys.executable, app=APP, port=port)
    project.write("Makefile.toml", taskfile)
    log = project.root / "setup.log"
    proc = project.popen("--watch", "serve")
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=60, message="the first version serves")
        runs_before = _lines(log)
        samples: list[tuple[float, float]] = []
        with Load(lambda: Timed(("127.0.0.1", port), samples)) as load:
            load.wait_for_more(10)
            changed = time.monotonic()
            (project.root / "source.txt").write_text("v2\n")
            load.wait_to_see("v2", timeout=60)
            load.check_running()
        assert load.failures == [], load.failures
        assert _lines(log) > runs_before, f"the rebuild did not run the {slow}"
        window = [(start, lat) for start, lat in samples if start + lat >= changed]
        worst_start, worst = max(window, key=lambda sample: sample[1])
        assert worst <= LATENCY_LIMIT, (
            f"a request waited {worst * 1000:.0f} ms, {worst_start - changed:.2f} s after the"
            f" change (limit {LATENCY_LIMIT * 1000:.0f} ms)"
        )
        # The window holds the 2 s sleep, and requests were answered all through it.
        assert time.monotonic() - changed >= 2.0
        assert len(window) > 20, f"only {len(window)} requests during the rebuild"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(stderr)
    wait_until(lambda: not port_open("127.0.0.1", port), timeout=10)


# --------------------------------------------------------------------------- no orphans

# Each records its shell's pid and a background grandchild's pid, then waits for ever.
_HANG = "echo $$ > shell.pid; sleep 300 & echo $! > child.pid; wait"
INTERRUPTED = {
    "env_scripts": f"""
env_scripts = ["{_HANG}"]

[tasks.main]
command = "true"
""",
    "env value script": f"""
[env]
SLOW = {{ script = ["{_HANG}"] }}

[tasks.main]
command = "true"
""",
    "condition_script": f"""
[tasks.main]
condition_script = ["{_HANG}"]
command = "true"
""",
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("where", sorted(INTERRUPTED))
def test_an_interrupted_run_leaves_no_script_child_behind(
    project: Project, where: str, sig: signal.Signals
) -> None:
    project.makefile(INTERRUPTED[where])
    proc = project.popen("main")
    pid_files = [project.root / "shell.pid", project.root / "child.pid"]
    try:
        wait_until(
            lambda: all(p.is_file() and p.read_text().strip() for p in pid_files),
            timeout=30,
            message=f"the {where} started",
        )
        pids = [int(p.read_text()) for p in pid_files]
        assert all(pid_alive(pid) for pid in pids)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, proc.stderr.read() if proc.stderr else ""
    for pid in pids:
        # pitstop has exited and signalled them; a killed process may take a moment to go.
        wait_until(
            lambda pid=pid: not pid_alive(pid),
            timeout=5,
            message=f"pid {pid} of the {where} outlived pitstop",
        )


def test_stopping_serve_while_a_rebuild_runs_an_env_script_leaves_no_child(
    project: Project,
) -> None:
    port = free_port()
    project.write("source.txt", "v1\n")
    hang_on_change = f"if grep -q hang source.txt; then {_HANG}; fi"
    taskfile = f'env_scripts = ["{hang_on_change}"]\n' + SERVICE.format(
        python=sys.executable, app=APP, port=port
    )
    project.write("Makefile.toml", taskfile)
    proc = project.popen("--watch", "serve")
    pid_files = [project.root / "shell.pid", project.root / "child.pid"]
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=60, message="the first version serves")
        (project.root / "source.txt").write_text("hang\n")
        wait_until(
            lambda: all(p.is_file() and p.read_text().strip() for p in pid_files),
            timeout=30,
            message="the rebuild's env script started",
        )
        pids = [int(p.read_text()) for p in pid_files]
        assert try_get(port) == "v1"  # the old instance serves while the env script hangs
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    for pid in pids:
        wait_until(
            lambda pid=pid: not pid_alive(pid),
            timeout=5,
            message=f"pid {pid} of the rebuild's env script outlived pitstop",
        )
    wait_until(lambda: not port_open("127.0.0.1", port), timeout=10)


def test_a_failing_env_script_stops_the_run_before_any_task(project: Project) -> None:
    project.makefile(
        """
        env_scripts = ["echo from the env script; exit 3"]

        [tasks.default]
        command = "echo"
        args = ["task ran"]
        """
    )
    result = project.run("default")
    assert result.returncode == 2, result.stderr
    assert "from the env script" in result.stdout
    assert "env_scripts entry failed with exit code 3" in result.stderr
    assert "task ran" not in result.stdout
    assert os.path.basename(str(project.root / "Makefile.toml")) in result.stderr


def test_a_task_env_file_is_read_and_persists_for_later_tasks(project: Project) -> None:
    project.write("task.env", "FROM_FILE=file-${BASE}\n")
    project.makefile(
        """
        [env]
        BASE = "base"

        [tasks.first]
        env_files = ["./task.env"]
        script = "echo first:$FROM_FILE"

        [tasks.second]
        dependencies = ["first"]
        script = "echo second:$FROM_FILE"
        """
    )
    result = project.run("second")
    assert result.returncode == 0, result.stderr
    assert "first:file-base" in result.stdout
    assert "second:file-base" in result.stdout
