"""Where a project's `pitstop up` keeps its state, and the one-daemon-per-project lock.

    <task file's folder>/.pitstop/        the state folder (logs, pid, the socket's path)
        daemon.lock                       flock'ed by the running `up` for its whole life
        daemon.pid                        its pid
        socket                            the control socket's path
        logs/<service>.log                per-service output, rotated by size
        daemon.log                        a detached daemon's own stdout/stderr (its crashes)
    $XDG_RUNTIME_DIR/pitstop/<hash>.sock  the control socket (else /tmp/pitstop-$UID/)

The socket lives outside the project because AF_UNIX paths are limited to 107 bytes; it is
named by a short hash of the task file's absolute path. Its folder is 0700 and must belong
to us: a folder someone else made in /tmp is refused, not used.

The lock is an flock, not a pid check: the kernel drops it when the daemon dies, whatever the
cause (SIGKILL included), so a dead daemon's leftovers never block the next one, and its
socket file, still on disk, is noticed as stale (nobody holds the lock) and replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pitstop.errors import UserError

STATE_FOLDER = ".pitstop"
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class ProjectState:
    """The paths of one project's state; nothing is created until asked."""

    taskfile: Path  # absolute
    folder: Path  # .pitstop beside the task file
    socket_path: Path

    @classmethod
    def for_taskfile(cls, taskfile: Path, runtime_root: Path | None = None) -> ProjectState:
        taskfile = taskfile.resolve()
        root = runtime_root if runtime_root is not None else socket_root()
        digest = hashlib.sha256(os.fsencode(taskfile)).hexdigest()[:16]
        return cls(taskfile, taskfile.parent / STATE_FOLDER, root / f"{digest}.sock")

    @property
    def lock_path(self) -> Path:
        return self.folder / "daemon.lock"

    @property
    def pid_path(self) -> Path:
        return self.folder / "daemon.pid"

    @property
    def socket_record(self) -> Path:
        return self.folder / "socket"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def daemon_log(self) -> Path:
        return self.folder / "daemon.log"

    def prepare(self) -> None:
        """Create the state folder (with a .gitignore, so it is never committed) and logs/."""
        self.logs.mkdir(parents=True, exist_ok=True)
        ignore = self.folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# made by pitstop: the state of `pitstop up`\n*\n")
        private_folder(self.socket_path.parent)
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise UserError(
                f"the control socket's path {self.socket_path} is longer than"
                f" {MAX_SOCKET_PATH} bytes",
                hint="set XDG_RUNTIME_DIR to a shorter folder",
            )

    def running_pid(self) -> int | None:
        """The pid of the `up` that holds this project's lock, or None if none runs."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self.recorded_pid() or -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def recorded_socket(self) -> Path:
        """The socket's path as the running daemon recorded it (else where it would be)."""
        try:
            text = self.socket_record.read_text().strip()
        except OSError:
            return self.socket_path
        return Path(text) if text else self.socket_path


class DaemonLock:
    """This process is the project's one `up`: the lock, the pid file, the socket's record.

    `acquire` raises UserError (exit 2) naming the pid of the `up` that already runs.
    """

    def __init__(self, state: ProjectState) -> None:
        self.state = state
        self._fd: int | None = None

    def acquire(self) -> None:
        state = self.state
        state.prepare()
        fd = os.open(state.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = state.recorded_pid()
            raise UserError(
                f"pitstop up already runs for {state.taskfile}" + (f" (pid {pid})" if pid else ""),
                hint="see it with `pitstop ps`, or stop it with `pitstop down`",
            ) from None
        self._fd = fd
        _write_atomic(state.pid_path, f"{os.getpid()}\n")
        _write_atomic(state.socket_record, f"{state.socket_path}\n")

    def release(self) -> None:
        if self._fd is None:
            return
        for path in (self.state.pid_path, self.state.socket_record):
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def socket_root() -> Path:
    """$XDG_RUNTIME_DIR/pitstop when that is a usable folder, else /tmp/pitstop-$UID."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "pitstop"
    return Path("/tmp") / f"pitstop-{os.getuid()}"


def private_folder(path: Path) -> None:
    """Make `path` (mode 0700), or check that the one there is ours and make it 0700."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UserError(
            f"{path} is not a folder of yours; pitstop keeps its control socket there",
            hint="remove it, or set XDG_RUNTIME_DIR to a private folder",
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file a dead daemon left (the caller holds the lock, so it is stale)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()
        else:
            raise UserError(
                f"{path} exists and is not a socket", hint="remove it, then run pitstop up again"
            )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
