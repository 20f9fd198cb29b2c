"""The shipped example examples/dev-env, run as a user runs it: `pitstop up` in a copy of the
folder brings up a Python API (socket hand-off), a Node frontend that depends on it (proxy)
and a Rust service (proxy, built by cargo); a saved change swaps that one service while the
others keep their pids; SIGTERM leaves nothing running and every port free."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, pid_alive, port_open, wait_until
from tests.load import Load, NewConnections

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dev-env"
# Startup includes a first `cargo build` on a loaded machine.
DEADLINE = 120.0
HAS_CARGO = shutil.which("cargo") is not None

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _get(port: int, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return str(answer.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def _serving(lines: list[str], name: str) -> list[tuple[int, int]]:
    """(version, pid) of every `NAME | serving #N (pid P)` line, in order."""
    pattern = re.compile(rf"^{re.escape(name)}\s+\| serving #(\d+) \(pid (\d+)\)")
    return [(int(m[1]), int(m[2])) for line in lines if (m := pattern.match(line))]


def _processes_in(folder: Path) -> list[str]:
    """Processes whose working directory is inside `folder` (services and builds): pid and
    command line."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cwd.is_relative_to(folder) and pid_alive(int(entry)):
                words = cmdline.decode(errors="replace").split("\0")
                found.append(f"{entry} {' '.join(words)}")
    return found


def _copy_example(root: Path) -> dict[str, int]:
    """Copy examples/dev-env into `root` with each public port replaced by a free one."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("target", "__pycache__"))
    ports = {"web": free_port(), "api": free_port(), "stats": free_port()}
    taskfile = root / "pitstop.toml"
    text = taskfile.read_text()
    for name, default in (("web", 8000), ("api", 8001), ("stats", 8002)):
        assert f"127.0.0.1:{default}" in text
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
    taskfile.write_text(text)
    return ports


def _set_version(path: Path, version: str) -> None:
    text = path.read_text()
    new = re.sub(r'VERSION = "v\d+"', f'VERSION = "{version}"', text, count=1)
    assert new != text
    path.write_text(new)


def test_the_dev_env_example_swaps_one_service_and_leaves_nothing_running(tmp_path: Path) -> None:
    root = tmp_path / "dev-env"
    ports = _copy_example(root)
    names = ["api", "web", "stats"] if HAS_CARGO else ["api", "web"]
    child = Project(root).popen("up", *names)
    assert child.stdout is not None and child.stderr is not None
    lines = collect_lines(child.stdout)
    errors = collect_lines(child.stderr)

    def output() -> str:
        return "".join(lines + errors)

    def wait(predicate: Callable[[], object], what: str) -> None:
        try:
            wait_until(predicate, DEADLINE, what)
        except AssertionError as error:
            raise AssertionError(f"{error}; pitstop's output:\n{output()}") from None

    try:
        # All serve, in readiness order: web starts only once the API is ready.
        wait(lambda: all(_serving(lines + errors, n) for n in names), "all serve")
        api_v1 = _get(ports["api"], "/hello")
        assert api_v1 is not None and '"version": "v1"' in api_v1
        assert _get(ports["web"], "/version") == "web v1\n"
        through_web = _get(ports["web"], "/api/hello")
        assert through_web is not None and '"version": "v1"' in through_web
        if HAS_CARGO:
            stats = _get(ports["stats"], "/")
            assert stats is not None and stats.startswith("stats v1:")
        both = lines + errors
        assert both.index(next(s for s in both if re.match(r"api\s+\| ready", s))) < both.index(
            next(s for s in both if re.match(r"web\s+\| starting", s))
        )
        before = {n: _serving(lines + errors, n)[-1] for n in names}

        # A saved change to the API swaps the API only, with no failed request to it, made
        # directly or through the frontend.
        direct = Load(lambda: NewConnections(("127.0.0.1", ports["api"]), "/hello"))
        through = Load(lambda: NewConnections(("127.0.0.1", ports["web"]), "/api/hello"))
        with direct, through:
            direct.wait_for_more(20)
            through.wait_for_more(20)
            _set_version(root / "api" / "server.py", "v2")
            direct.wait_to_see('"version": "v2"', DEADLINE)
            through.wait_to_see('"version": "v2"', DEADLINE)
            direct.wait_for_more(20)
        assert direct.failures == [] and through.failures == []
        wait(lambda: _serving(lines + errors, "api")[-1][0] > before["api"][0], "api swaps")
        through_web = _get(ports["web"], "/api/hello")
        assert through_web is not None and '"version": "v2"' in through_web
        wait(lambda: not pid_alive(before["api"][1]), "the old API stops")
        for name in names[1:]:
            assert _serving(lines + errors, name) == [before[name]], output()
            assert pid_alive(before[name][1]), f"{name} kept its pid"

        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=DEADLINE) == 0, output()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    pids = [pid for n in names for _, pid in _serving(lines + errors, n)]
    assert not [p for p in pids if pid_alive(p)]
    assert not _processes_in(root), output()
    assert not [n for n, p in ports.items() if port_open("127.0.0.1", p)]
    if not HAS_CARGO:
        pytest.skip("cargo is not installed: api and web were checked, the Rust service was not")


def test_the_dev_env_example_as_a_daemon_with_ps_logs_restart_and_down(tmp_path: Path) -> None:
    """The README's second recipe: up -d, ps, logs, restart under load, down."""
    root = tmp_path / "dev-env"
    ports = _copy_example(root)
    names = ["api", "web", "stats"] if HAS_CARGO else ["api", "web"]
    project = Project(root)
    try:
        started = project.run("up", "-d", *names, timeout=DEADLINE)
        assert started.returncode == 0, started.stdout + started.stderr
        rows = json.loads(project.run("ps", "--json").stdout)
        assert [(r["name"], r["state"], r["version"]) for r in rows] == [
            (n, "serving", 1) for n in names
        ]
        pids = {r["name"]: r["pid"] for r in rows}
        logs = project.run("logs", "-n", "50").stdout
        assert re.search(r"^api\s+\| api v1 serving$", logs, re.M), logs
        assert re.search(r"^web\s+\| web v1 listening on ", logs, re.M), logs

        with Load(lambda: NewConnections(("127.0.0.1", ports["web"]), "/api/hello")) as load:
            load.wait_for_more(20)
            restarted = project.run("restart", "api", timeout=DEADLINE)
            assert restarted.returncode == 0, restarted.stderr
            load.wait_for_more(20)
        assert load.failures == []
        rows = json.loads(project.run("ps", "--json").stdout)
        after = {r["name"]: (r["version"], r["pid"]) for r in rows}
        assert after["api"][0] == 2 and after["api"][1] != pids["api"]
        assert [after[n] for n in names[1:]] == [(1, pids[n]) for n in names[1:]]
        everything = [*pids.values(), after["api"][1]]

        down = project.run("down", timeout=DEADLINE)
        assert down.returncode == 0, down.stderr
    finally:
        pid_file = root / ".pitstop" / "daemon.pid"
        if pid_file.exists():  # a failed test must not leave the daemon and its services
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert not [p for p in everything if pid_alive(p)]
    assert not [n for n, p in ports.items() if port_open("127.0.0.1", p)]
    assert project.run("ps").returncode == 1
    # `down` returns once the services are stopped and the daemon has let go of the project;
    # the daemon's process and its temp-folder watchdog end just after.
    wait_until(lambda: not _processes_in(root), 15, "the daemon's processes end")
    if not HAS_CARGO:
        pytest.skip("cargo is not installed: api and web were checked, the Rust service was not")
