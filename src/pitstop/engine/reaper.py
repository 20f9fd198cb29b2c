"""A watchdog that ends pitstop's children if pitstop dies without ending them itself.

pitstop ends every child group it started on success, failure, Ctrl-C and SIGTERM. Only a
death it cannot catch (SIGKILL, an abort in C code, the OOM killer) would leave children
behind, still holding ports. For that case pitstop starts, before its first child, a tiny
watchdog process connected by a pipe. When the pipe reaches end-of-file (pitstop is gone,
whatever the cause) the watchdog terminates, then after a grace period kills:

- every process group pitstop registered (`+PGID` / `-PGID` lines on the pipe), and
- every process whose environment carries this pitstop's token in PITSTOP_ANCESTRY. Each
  child gets the token in its environment, and so does everything it starts, even before
  pitstop had a chance to register its group, and even if it left the group (setsid).

Once they are gone it removes every temporary folder pitstop registered (`D<hex path>` /
`d<hex path>` lines): script files, the service's runtime folder, changed-path lists. So
pitstop makes its temporary folders only through `mkdtemp` / `temporary_directory` here.

PR_SET_PDEATHSIG alone would not do: it reaches only the direct child, not the programs a
shell script started, and it needs a Python `preexec_fn`, which makes every spawn slower.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ANCESTRY_VARIABLE = "PITSTOP_ANCESTRY"

# The watchdog program. It ignores SIGINT/SIGTERM/SIGHUP so that a Ctrl-C aimed at pitstop's
# process group does not take it down before pitstop has finished its own cleanup.
_WATCHDOG = r"""
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
token = sys.argv[2].encode()
groups = set()
folders = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
    elif line[:1] == "D":
        folders.add(bytes.fromhex(line[1:]))
    elif line[:1] == "d":
        folders.discard(bytes.fromhex(line[1:]))
me = os.getpid()
def marked():
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/" + entry + "/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for var in env.split(b"\0"):
            if var.startswith(b"PITSTOP_ANCESTRY=") and token in var[17:].split(b":"):
                found.add(int(entry))
    return found
def signal_all(sig, pids):
    for g in groups:
        try:
            os.killpg(g, sig)
        except OSError:
            pass
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass
def alive(g):
    try:
        os.killpg(g, 0)
        return True
    except OSError:
        return False
signal_all(signal.SIGTERM, marked())
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    groups = {g for g in groups if alive(g)}
    left = marked()
    if not groups and not left:
        break
    time.sleep(0.05)
signal_all(signal.SIGKILL, marked())
if folders:
    # After the children, who may still be writing into them; a killed process can finish
    # the system call it was in, so wait (briefly) until they are really gone.
    deadline = time.monotonic() + 1.0
    while (marked() or any(alive(g) for g in groups)) and time.monotonic() < deadline:
        time.sleep(0.02)
    import shutil
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
"""

GRACE_SECONDS = 3.0

_watchdog: subprocess.Popen[bytes] | None = None
_token: str | None = None


def token() -> str:
    """This pitstop's mark in its children's environment."""
    global _token
    if _token is None:
        _token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return _token


def child_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The variable that marks a child's environment `env` with this pitstop's token, to set on
    top of it (the token goes after the outer pitstops' ones)."""
    inherited = env.get(ANCESTRY_VARIABLE)
    return {ANCESTRY_VARIABLE: f"{inherited}:{token()}" if inherited else token()}


def ensure_started() -> None:
    """Start the watchdog if it is not running: call before starting a child."""
    _pipe()


def _pipe() -> int | None:
    global _watchdog
    if _watchdog is None:
        if os.environ.get("PITSTOP_NO_REAPER") == "1":
            return None
        try:
            _watchdog = subprocess.Popen(
                [sys.executable, "-S", "-c", _WATCHDOG, str(GRACE_SECONDS), token()],
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


#: Inside an event loop, registrations wait this long and go out in one write. Each write wakes
#: the watchdog, and that (a context switch or two, often preempting pitstop) cost more than
#: starting a short task; a group that starts and ends within the window is never sent at all.
#: Until it is sent, the group's processes are still found by the ancestry mark.
BATCH_SECONDS = 0.02

_pending: dict[int, bool] = {}  # pgid -> True: register, False: forget (in order)
_flush_timer: asyncio.TimerHandle | None = None
_flush_loop: asyncio.AbstractEventLoop | None = None
_pending_at_exit: list[object] = []  # non-empty once _flush is registered with atexit


def _send_group(pgid: int, register: bool) -> None:
    global _flush_timer, _flush_loop
    if not register and _pending.get(pgid) is True:
        del _pending[pgid]  # never sent: nothing to take back
    else:
        _pending[pgid] = register
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _flush()
        return
    if _flush_timer is not None:
        if _flush_loop is loop:
            return
        _flush_timer.cancel()  # armed in a loop that has ended: this one takes over
    elif not _pending_at_exit:
        _pending_at_exit.append(atexit.register(_flush))
    _flush_loop = loop
    _flush_timer = loop.call_later(BATCH_SECONDS, _flush)


def _send(line: str) -> None:
    """Write `line` now (after the pending group lines)."""
    _flush()
    fd = _pipe()
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, line.encode())


def _flush() -> None:
    """Write what is pending now (also at exit, and when a timer's loop has gone)."""
    global _flush_timer, _flush_loop
    if _flush_timer is not None:
        _flush_timer.cancel()
        _flush_timer = _flush_loop = None
    if not _pending:
        return
    lines = "".join(f"{'+' if register else '-'}{pgid}\n" for pgid, register in _pending.items())
    _pending.clear()
    fd = _pipe()
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, lines.encode())


def track(pgid: int) -> None:
    """Register a process group to end if pitstop dies."""
    if _pipe() is not None:
        _send_group(pgid, True)


def untrack(pgid: int) -> None:
    """Forget a process group that has been ended."""
    if _watchdog is not None:
        _send_group(pgid, False)


def watchdog_pid() -> int | None:
    """The watchdog's pid, for tests."""
    return _watchdog.pid if _watchdog is not None else None


def mkdtemp(prefix: str = "pitstop-") -> Path:
    """A private (0700) temporary folder that the watchdog removes if pitstop dies.

    Remove it with `remove_tempdir` (which also tells the watchdog to forget it).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _send(f"D{os.fsencode(path).hex()}\n")
    return path


def remove_tempdir(path: Path | str) -> None:
    """Remove a folder made by `mkdtemp`, and forget it."""
    shutil.rmtree(path, ignore_errors=True)
    if _watchdog is not None:
        _send(f"d{os.fsencode(path).hex()}\n")


@contextlib.contextmanager
def temporary_directory(prefix: str = "pitstop-") -> Iterator[Path]:
    """`tempfile.TemporaryDirectory`, but removed by the watchdog too if pitstop dies."""
    path = mkdtemp(prefix)
    try:
        yield path
    finally:
        remove_tempdir(path)
