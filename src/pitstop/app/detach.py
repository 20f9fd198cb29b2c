"""`pitstop up -d`: start the project's `pitstop up` as a daemon, and return once every
service is ready (0) or has failed (1, naming each and why).

The daemon is a fresh `pitstop up` process with the same arguments (not a fork of this one),
in its own session, with stdin from /dev/null and stdout/stderr appended to
.pitstop/daemon.log. PITSTOP_DAEMON=1 tells it that it is the daemon (so it runs in the
foreground there). It does not inherit this pitstop's PITSTOP_ANCESTRY mark: it is meant to
outlive the command that started it. Its own children carry its mark, so its reaper
watchdog ends them if it dies, SIGKILL included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pitstop.engine.reaper import ANCESTRY_VARIABLE
from pitstop.errors import PitstopError, UserError
from pitstop.escape import escape
from pitstop.manager.client import ControlClient, NoDaemon
from pitstop.manager.state import ProjectState
from pitstop.manager.table import status_table

DAEMON_VARIABLE = "PITSTOP_DAEMON"
# How often `up -d` looks at the starting daemon (its socket, then its services' states).
_POLL_S = 0.1


def is_daemon() -> bool:
    """Whether this process is the detached daemon `pitstop up -d` started."""
    return os.environ.get(DAEMON_VARIABLE) == "1"


def forget_daemon_mark() -> None:
    """PITSTOP_DAEMON is a word to this process only: its services and builds must not see
    it (a build that runs `pitstop up -d` would think it is the daemon). The one change to
    os.environ, once, before any child starts."""
    os.environ.pop(DAEMON_VARIABLE, None)


class DaemonFailed(PitstopError):
    """The daemon ended before its services were up; its own exit code, else 1."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code or 1


def run_detached(taskfile: Path, argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Start the daemon with `argv` (pitstop's own arguments) and wait for its first start."""
    state = ProjectState.for_taskfile(taskfile)
    pid = state.running_pid()
    if pid is not None:
        raise UserError(
            f"pitstop up already runs for {state.taskfile}" + (f" (pid {pid})" if pid > 0 else ""),
            hint="see it with `pitstop ps`, or stop it with `pitstop down`",
        )
    state.prepare()
    launched = time.time()
    child, log_from = _spawn(state, argv)
    try:
        result = _wait_started(state, child, log_from, Progress(err, launched))
    except KeyboardInterrupt:
        # Only the waiting ends: the daemon is in a session of its own and keeps starting.
        err.write(
            f"\ninterrupted: stopped waiting; the daemon (pid {child.pid}) keeps starting the "
            "services: `pitstop ps` shows them, `pitstop down` stops them\n"
        )
        err.flush()
        raise
    rows: list[dict[str, Any]] = result.get("services", [])
    out.write(status_table(rows, time.time()))
    # Not daemon.log: it holds only the daemon's own crashes; the services' output is in
    # .pitstop/logs/, which `pitstop logs` reads.
    out.write(
        f"pitstop up runs as a daemon (pid {child.pid}): `pitstop logs` shows the services'"
        " output, `pitstop down` stops it\n"
    )
    out.flush()
    if result.get("ok"):
        return 0
    for row in rows:
        if row.get("state") not in ("ready", "serving"):
            why = row.get("reason") or "not ready"
            err.write(f"error: service {row.get('name')} is {row.get('state')}: {why}\n")
    err.write("see `pitstop logs` for the services' output; the daemon keeps running\n")
    err.flush()
    return 1


def daemon_argv(argv: Sequence[str], cwd: Path) -> list[str]:
    """The daemon's command line: the same arguments, with --cwd made absolute (this process
    has already moved there; the daemon starts there too)."""
    found: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--cwd":
            next(it, None)
            found += ["--cwd", str(cwd)]
        elif arg.startswith("--cwd="):
            found.append(f"--cwd={cwd}")
        else:
            found.append(arg)
    return [sys.executable, "-m", "pitstop", *found]


def _spawn(state: ProjectState, argv: Sequence[str]) -> tuple[subprocess.Popen[bytes], int]:
    cwd = Path.cwd()
    env = {k: v for k, v in os.environ.items() if k != ANCESTRY_VARIABLE}
    env[DAEMON_VARIABLE] = "1"
    log = os.open(state.daemon_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        log_from = os.fstat(log).st_size
        child = subprocess.Popen(
            daemon_argv(argv, cwd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            close_fds=True,
            start_new_session=True,
        )
    finally:
        os.close(log)
    return child, log_from


class Progress:
    """What `up -d` says while it waits (a first build may take minutes): one line per change
    of a service's state, on stderr with pitstop's other words. Ready and serving are one
    state here: "ready in 3.1 s", counted from the launch."""

    def __init__(self, err: TextIO, launched: float) -> None:
        self.err = err
        self.launched = launched
        self._said: dict[str, str] = {}

    def show(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            name, state = str(row.get("name")), str(row.get("state"))
            if state == "serving":
                state = "ready"
            key = f"{state}: {row.get('reason')}" if state in ("failed", "blocked") else state
            if self._said.get(name, "stopped") == key:  # (stopped: waiting for its turn)
                continue
            self._said[name] = key
            self.err.write(f"{escape(name)}: {self._text(state, row)}\n")
        self.err.flush()

    def _text(self, state: str, row: dict[str, Any]) -> str:
        if state == "ready":
            now = time.time()
            uptime = row.get("uptime_s")
            since = now - (uptime if isinstance(uptime, int | float) else 0.0) - self.launched
            return f"ready in {max(0.0, since):.1f} s"
        if state in ("failed", "blocked"):
            return f"{state}: {escape(str(row.get('reason') or 'no reason given'))}"
        if state in ("building", "starting", "swapping"):
            return f"{state}…"
        return state


def _wait_started(
    state: ProjectState, child: subprocess.Popen[bytes], log_from: int, progress: Progress
) -> dict[str, Any]:
    """Wait for GET /v1/started (which answers once the first start is over; asked on a
    thread, retried until the daemon's socket is up), showing each service's progress
    meanwhile; the daemon's own error if it ends first."""
    client = ControlClient(state.socket_path, state.taskfile)
    answer: list[dict[str, Any]] = []
    asking: threading.Thread | None = None

    def ask() -> None:
        try:
            result = client.get("/v1/started", timeout=None)
        except (NoDaemon, PitstopError):
            return  # not listening yet, or it died meanwhile: asked again
        if isinstance(result, dict):
            answer.append(result)

    while True:
        status = child.poll()
        if answer:
            progress.show(answer[0].get("services", []))
            return answer[0]
        if status is not None:
            raise DaemonFailed(
                "pitstop up -d: the daemon ended before its services were up"
                + _log_excerpt(state.daemon_log, log_from),
                status,
                hint=f"its whole log: {state.daemon_log}",
            )
        if state.running_pid() == child.pid:
            if asking is None or not asking.is_alive():
                asking = threading.Thread(target=ask, name="up-d-started", daemon=True)
                asking.start()
            try:
                rows = client.get("/v1/services", timeout=5.0)
            except (NoDaemon, PitstopError, OSError):
                rows = None
            if isinstance(rows, list):
                progress.show(rows)
        time.sleep(_POLL_S)


def _log_excerpt(path: Path, offset: int, limit: int = 4000) -> str:
    """What the daemon wrote since it was started (its error, usually), cut to `limit`."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    if not text:
        return ""
    if len(text) > limit:
        text = "…" + text[-limit:]
    return ":\n" + text
