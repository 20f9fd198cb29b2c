"""The verbs that ask a project's running `pitstop up` through its control socket:
ps, logs, restart, stop, start, down, events, rollback.

No event loop and no task file loading: the task file is only located, to find the project's
state folder and so its socket.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlencode

from pitstop.errors import PitstopError, UserError
from pitstop.manager.client import ControlClient, NoDaemon
from pitstop.manager.state import ProjectState
from pitstop.manager.table import status_table
from pitstop.request import ControlFlags, UserRequest
from pitstop.taskfile.loader import find_taskfile

# `down` waits this long for the daemon to exit once its services are stopped.
DOWN_EXIT_S = 30.0


def project_state(makefile: str | None, cwd: Path) -> ProjectState:
    found = find_taskfile(makefile, cwd)
    if found is None:
        raise UserError(
            f"no pitstop.toml or Makefile.toml in {cwd}",
            hint="run the command in the project's folder, or name its task file with -f",
        )
    return ProjectState.for_taskfile(found)


def run_verb(request: UserRequest, cwd: Path, out: TextIO, err: TextIO) -> int:
    flags = request.control
    state = project_state(request.file.makefile, cwd)
    # `ps` answers "is it running?": no daemon is an answer (1), not a mistake (2).
    client = ControlClient(
        state.recorded_socket(), state.taskfile, no_daemon_exit=1 if flags.verb == "ps" else 2
    )
    match flags.verb:
        case "ps":
            return _ps(client, flags, out)
        case "logs":
            return _logs(client, flags, out)
        case "restart" | "stop" | "start":
            return _act(client, flags, out)
        case "down":
            return _down(client, state, out)
        case "rollback":
            return _rollback(client, flags, out)
        case "events":
            return _events(client, flags, out)
    raise AssertionError(flags.verb)


def _ps(client: ControlClient, flags: ControlFlags, out: TextIO) -> int:
    rows = client.get("/v1/services")
    out.write(json.dumps(rows, indent=2) + "\n" if flags.json else status_table(rows, time.time()))
    out.flush()
    return 0


def _logs(client: ControlClient, flags: ControlFlags, out: TextIO) -> int:
    query: list[tuple[str, str]] = [("service", name) for name in flags.services]
    query += [("n", str(flags.lines)), ("follow", "1" if flags.follow else "0")]
    for line in client.stream("/v1/logs?" + urlencode(query)):
        if "error" in line:
            raise StreamCut(f"the daemon cut the stream: {line['error']}")
        # Not padded: the names are not all known before the lines come, and `name | ` greps.
        out.write(f"{line.get('service', '')} | {line.get('text', '')}\n")
        out.flush()
    return 0


class StreamCut(PitstopError):
    """The daemon cut the stream: the reader fell too far behind."""


def _act(client: ControlClient, flags: ControlFlags, out: TextIO) -> int:
    done = {"restart": "restarted", "stop": "stopped", "start": "started"}[flags.verb]
    for name in flags.services:
        client.post(f"/v1/services/{quote(name, safe='')}/{flags.verb}")
        out.write(f"{name}: {done}\n")
        out.flush()
    return 0


def _rollback(client: ControlClient, flags: ControlFlags, out: TextIO) -> int:
    (name,) = flags.services
    query = f"?version={flags.version}" if flags.version is not None else ""
    try:
        answer = client.post(f"/v1/services/{quote(name, safe='')}/rollback{query}")
    except NoDaemon as error:
        # A single `pitstop SERVICE` (serve) has no control socket to ask.
        error.hint = (
            "rollback reaches services run by `pitstop up` (or `up -d`), not a single "
            f"`pitstop {name}`: run it with `pitstop up {name}`"
        )
        raise
    out.write(f"{name}: #{answer.get('version')} serves again (no build)\n")
    out.flush()
    return 0


def _down(client: ControlClient, state: ProjectState, out: TextIO) -> int:
    try:
        answer = client.post("/v1/down")
    except NoDaemon:
        # `down` asks for a state (nothing running), and it holds already: like `docker
        # compose down` or `pm2 kill`, that is success, said in one line.
        out.write(f"nothing to stop: no pitstop up runs for {state.taskfile}\n")
        out.flush()
        return 0
    pid = answer.get("pid") if isinstance(answer, dict) else None
    # The services are stopped; wait for the daemon itself, so its socket and lock are gone.
    deadline = time.monotonic() + DOWN_EXIT_S
    while state.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    if state.running_pid() is not None:
        raise UserError(f"the services are stopped but the daemon (pid {pid}) did not exit")
    # Its lock is released just before the interpreter's own exit: wait for the process too,
    # so that "exited" is true when printed (a `ps` right after shows no pitstop).
    while isinstance(pid, int) and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The same words for `up -d` and a foreground `up` in another terminal: both exited.
    who = f"pitstop up (pid {pid})" if isinstance(pid, int) else "pitstop up"
    out.write(f"every service stopped; {who} exited\n")
    out.flush()
    return 0


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _events(client: ControlClient, flags: ControlFlags, out: TextIO) -> int:
    for event in client.stream("/v1/events"):
        out.write(json.dumps(event) + "\n" if flags.json else _event_line(event))
        out.flush()
    return 0


def _event_line(event: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time", 0))))
    who = event.get("service") or "pitstop"
    if event.get("instance") is not None:
        who = f"{who}#{event['instance']}"
    rest = " ".join(
        f"{k}={v}"
        for k, v in event.items()
        if k not in ("time", "service", "instance", "type") and v is not None
    )
    return f"{stamp} {who} {event.get('type')} {rest}".rstrip() + "\n"


__all__ = ["NoDaemon", "project_state", "run_verb"]
