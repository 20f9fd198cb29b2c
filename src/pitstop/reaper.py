"""A watchdog that ends pitstop's children if pitstop dies without ending them itself.

pitstop ends every child group it started on success, failure, Ctrl-C and SIGTERM. Only a
death it cannot catch (SIGKILL, an abort in C code, the OOM killer) would leave children
behind, still holding ports. For that case pitstop starts, on its first child, a tiny
watchdog process connected by a pipe: pitstop writes `+PGID` / `-PGID` lines as groups
come and go; when the pipe reaches end-of-file (pitstop is gone, whatever the cause) the
watchdog terminates every group still registered, then kills them after a grace period.

PR_SET_PDEATHSIG alone would not do: it reaches only the direct child, not the programs a
shell script started, and it needs a Python `preexec_fn`, which makes every spawn slower.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# The watchdog program. It ignores SIGINT/SIGTERM/SIGHUP so that a Ctrl-C aimed at pitstop's
# process group does not take it down before pitstop has finished its own cleanup.
_WATCHDOG = r"""
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
def alive(g):
    try:
        os.killpg(g, 0)
        return True
    except OSError:
        return False
for g in groups:
    try:
        os.killpg(g, signal.SIGTERM)
    except OSError:
        pass
deadline = time.monotonic() + float(sys.argv[1])
while groups and time.monotonic() < deadline:
    groups = {g for g in groups if alive(g)}
    time.sleep(0.05)
for g in groups:
    try:
        os.killpg(g, signal.SIGKILL)
    except OSError:
        pass
"""

GRACE_SECONDS = 3.0

_watchdog: subprocess.Popen[bytes] | None = None


def _pipe() -> int | None:
    global _watchdog
    if _watchdog is None:
        if os.environ.get("PITSTOP_NO_REAPER") == "1":
            return None
        try:
            _watchdog = subprocess.Popen(
                [sys.executable, "-S", "-c", _WATCHDOG, str(GRACE_SECONDS)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
            )
        except OSError:
            return None
    if _watchdog.stdin is None:
        return None
    return _watchdog.stdin.fileno()


def _send(line: str) -> None:
    fd = _pipe()
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, line.encode())


def track(pgid: int) -> None:
    """Register a process group to end if pitstop dies."""
    _send(f"+{pgid}\n")


def untrack(pgid: int) -> None:
    """Forget a process group that has been ended."""
    if _watchdog is not None:
        _send(f"-{pgid}\n")


def watchdog_pid() -> int | None:
    """The watchdog's pid, for tests."""
    return _watchdog.pid if _watchdog is not None else None
