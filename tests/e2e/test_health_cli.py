"""Issue 11's resource checks end to end, with the real CLI and a service that really leaks
(tests/apps/leaky_app.py keeps 256 KiB per request and answers with its pid):

- on_limit = "swap" under load: the leaking instance is replaced, 0 failed requests;
- on_limit = "alert": the alert command runs once with the right values in its environment,
  and the same instance keeps serving; `ps --json` carries cpu_percent and rss_bytes;
- bad limits are one error at their line and column, exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.helpers import collect_lines, free_port, pid_alive, wait_until
from tests.load import Load, http_get

APP = Path(__file__).resolve().parents[1] / "apps" / "leaky_app.py"
# Well above the app's start (a Python HTTP server: about 20 MiB), reached in ~200 requests.
LIMIT = "72MiB"
LIMIT_BYTES = 72 * 1024 * 1024
# The alert command writes its PITSTOP_ variables into a file of its own per run.
RECORD = """
import os
values = "".join(f"{k}={v}\\n" for k, v in sorted(os.environ.items()) if k.startswith("PITSTOP_"))
with open(f"alert-{os.getpid()}.env", "w") as out:
    out.write(values)
"""

TASKFILE = """
[tasks.api]
command = "{python}"
args = ["{app}"]
service = {{ proxy = "127.0.0.1:{port}", limits = {{ memory = "{limit}" }}, on_limit = "{on_limit}", sample_interval = "100ms", alert_command = ["{python}", "record.py"] }}
"""


def _write(project: Project, on_limit: str) -> int:
    port = free_port()
    project.write("record.py", RECORD)
    project.write(
        "Makefile.toml",
        TASKFILE.format(python=sys.executable, app=APP, port=port, limit=LIMIT, on_limit=on_limit),
    )
    return port


def _alerts(root: Path) -> list[dict[str, str]]:
    found = []
    for path in sorted(root.glob("alert-*.env")):
        text = path.read_text()
        if text.endswith("\n"):  # complete
            found.append(dict(line.split("=", 1) for line in text.splitlines()))
    return found


@pytest.fixture
def serving(project: Project) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_leaking_service_is_swapped_under_load_with_no_failure(
    project: Project, serving: list[subprocess.Popen[str]]
) -> None:
    port = _write(project, "swap")
    proc = project.popen("api")
    serving.append(proc)
    assert proc.stderr is not None
    err = collect_lines(proc.stderr)
    wait_until(lambda: any("serving #1" in line for line in err), 30, "the first instance")
    assert http_get(("127.0.0.1", port), path="/health") == "ok"
    with Load.new_connections(("127.0.0.1", port), clients=4) as load:
        load.wait_for_more(20)
        first_pid = load.bodies[0]
        # It leaks until it crosses the limit, then a fresh instance answers.
        wait_until(
            lambda: (load.check_running(), any(b != first_pid for b in load.bodies[-20:]))[1],
            60,
            "a fresh instance",
        )
        load.wait_for_more(50)
    assert load.failures == []
    assert not pid_alive(int(first_pid))  # the leaking instance drained and stopped
    crossed = [line for line in err if "crossed its memory limit" in line]
    assert crossed and "> 72.0MiB · swap" in crossed[0], err

    # The alert command ran for it too, with the instance's values.
    def first_alert() -> list[dict[str, str]]:
        return [a for a in _alerts(project.root) if a["PITSTOP_INSTANCE"] == "1"]

    (alert,) = wait_until(first_alert, 20, "the alert command")
    assert alert["PITSTOP_ACTION"] == "swap" and alert["PITSTOP_LIMIT"] == "memory"
    assert not any("alert_command" in line for line in err), err


def test_an_alert_runs_the_command_once_and_leaves_the_service(
    project: Project, tmp_path: Path
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    port = _write(project, "alert")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return project.run(*args, XDG_RUNTIME_DIR=str(runtime))

    def row() -> dict[str, object]:
        result = run("ps", "--json")
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, object]] = json.loads(result.stdout)
        return rows[0]

    up = run("up", "-d", "--no-watch")
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        # ps --json carries the serving tree's CPU and memory once it has been sampled.
        wait_until(lambda: row()["rss_bytes"] is not None, 20, "a sample in ps --json")
        first = row()
        assert isinstance(first["cpu_percent"], int | float) and first["cpu_percent"] >= 0
        assert isinstance(first["rss_bytes"], int) and 0 < first["rss_bytes"] < LIMIT_BYTES
        table = run("ps").stdout.splitlines()
        assert table[0].split()[4:6] == ["CPU", "MEM"] and table[1].split()[5].endswith("MiB")
        pid = first["pid"]

        with Load.new_connections(("127.0.0.1", port), clients=4) as load:
            wait_until(
                lambda: (load.check_running(), _alerts(project.root))[1], 60, "the alert command"
            )
            value = int(_alerts(project.root)[0]["PITSTOP_VALUE"])
            # Leaking on, well past the limit: many more samples, still no second alert.
            wait_until(
                lambda: (load.check_running(), (row()["rss_bytes"] or 0) > value + 16 * 2**20)[1],
                60,
                "more leaking",
            )
        assert load.failures == []
        alerts = _alerts(project.root)
        assert len(alerts) == 1, alerts
        assert len(list(project.root.glob("alert-*.env"))) == 1
        assert alerts[0]["PITSTOP_SERVICE"] == "api"
        assert alerts[0]["PITSTOP_LIMIT"] == "memory"
        assert alerts[0]["PITSTOP_THRESHOLD"] == str(LIMIT_BYTES)
        assert alerts[0]["PITSTOP_ACTION"] == "alert"
        assert value > LIMIT_BYTES
        after = row()
        assert after["pid"] == pid and after["version"] == 1 and after["state"] == "serving"
        events = (project.root / ".pitstop" / "logs" / "api.log").read_text()
        assert "crossed its memory limit" in events
    finally:
        down = run("down")
        assert down.returncode == 0, down.stderr


FAKE_NOTIFY_SEND = """#!/bin/sh
printf '%s|' "$@" >> "{log}"
echo >> "{log}"
"""


@pytest.mark.parametrize(
    ("notify_env", "key", "shown"),
    [
        ("1", "", True),  # on: the alert is also a desktop notification
        ("", "desktop_notifications = false, ", False),  # off in the task file
        ("0", "", False),  # off by PITSTOP_NOTIFY (what the whole suite sets)
        ("0", "desktop_notifications = true, ", False),  # the variable wins over the key
    ],
)
def test_desktop_notifications_are_attempted_unless_switched_off(
    project: Project,
    tmp_path: Path,
    serving: list[subprocess.Popen[str]],
    notify_env: str,
    key: str,
    shown: bool,
) -> None:
    """A fake notify-send first on PATH records what it was asked to show."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "notify.log"
    fake = bin_dir / "notify-send"
    fake.write_text(FAKE_NOTIFY_SEND.format(log=log))
    fake.chmod(0o755)
    port = _write(project, "alert")
    text = (project.root / "Makefile.toml").read_text()
    project.write("Makefile.toml", text.replace("alert_command = [", f"{key}alert_command = ["))
    path = f"{bin_dir}:{os.environ['PATH']}"
    proc = project.popen("api", PITSTOP_NOTIFY=notify_env, PATH=path)
    serving.append(proc)
    assert proc.stderr is not None
    err = collect_lines(proc.stderr)
    wait_until(lambda: any("serving #1" in line for line in err), 30, "the first instance")
    with Load.new_connections(("127.0.0.1", port), clients=4) as load:
        wait_until(
            lambda: (load.check_running(), _alerts(project.root))[1], 60, "the alert command"
        )
        if shown:
            wait_until(log.exists, 20, "the desktop notification")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, "".join(err)
    if shown:
        title, message = log.read_text().split("|")[1:3]  # after --app-name=pitstop
        assert title == "pitstop: api"
        assert "crossed its memory limit" in message
    else:
        # Launched with the alert command, in the same step: it would have run by now.
        assert not log.exists(), log.read_text()


def test_a_bad_pitstop_notify_is_refused(project: Project) -> None:
    _write(project, "alert")
    result = project.run("api", PITSTOP_NOTIFY="maybe")
    assert result.returncode == 2, result.stderr
    assert "PITSTOP_NOTIFY='maybe' is neither on nor off" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("service", "says", "column"),
    [
        ('limits = { memory = "512XB" }', "service.limits.memory has unknown unit 'XB'", 47),
        ('limits = { memory = "0MiB" }', "service.limits.memory must be more than zero", 47),
        ('limits = { cpu = "-5%" }', "service.limits.cpu must be more than 0%", 47),
        ('on_limit = "restart"', 'service.on_limit must be "swap" or "alert"', 36),
        (
            'desktop_notifications = "no"',
            "service.desktop_notifications must be true or false",
            36,
        ),
    ],
)
@pytest.mark.parametrize("verb", [["api"], ["up", "--no-watch"]])
def test_bad_limits_are_refused_at_their_key(
    project: Project, service: str, says: str, column: int, verb: list[str]
) -> None:
    project.write(
        "Makefile.toml",
        f"""
        [tasks.api]
        command = "sleep"
        args = ["100"]
        service = {{ proxy = "127.0.0.1:0", {service} }}
        """,
    )
    result = project.run(*verb, XDG_RUNTIME_DIR=str(project.root))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    assert f"Makefile.toml:5:{column}" in result.stderr, result.stderr
