"""The one module that owns child processes.

Every child starts in a session (and so a process group) of its own, so that pitstop can
end it together with everything it started: terminate the group, wait a grace period, then
kill the group. Each group is also registered with the reaper (see `reaper.py`), a tiny
watchdog process that kills the registered groups if pitstop itself dies without cleaning
up (SIGKILL, a crash in C code): no orphan ever keeps a port or a CPU.

Starting a child is on the hot path of a run (one per task), so on Linux this module does
not use asyncio's subprocess transports: it starts the child with `subprocess.Popen` (which
uses vfork there), learns of its exit through a pidfd watched by the event loop, and reads
its output pipes with non-blocking `os.read` in loop callbacks. That costs the parent about
half the CPU time per child of `asyncio.create_subprocess_exec`. Where pidfds are missing
(macOS, Linux before 5.3) the same `Child` is backed by asyncio's own subprocess support.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pitstop.engine import reaper
from pitstop.engine.events import (
    Stream as Stream,  # defined with the events; re-exported for callers
)

log = logging.getLogger(__name__)

LineSink = Callable[[Stream, str], None]

# A line longer than this is handed to `on_line` in pieces of at most this many bytes.
LINE_LIMIT = 1 << 20
_READ_SIZE = 1 << 16


def exit_status(returncode: int) -> int:
    """A shell-style exit status: death by signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class Files(NamedTuple):
    """Open file descriptors a child gets as its stdin, stdout and stderr."""

    stdin: int
    stdout: int
    stderr: int


class Child:
    """A running child process that leads its own process group.

    `_exited` resolves to the leader's return code (negative for death by a signal) once it
    has been reaped; `_drained` (None without `on_line`) resolves once both output pipes
    reached end-of-file and every line was handed over.
    """

    def __init__(
        self,
        argv: tuple[str, ...],
        pid: int,
        exited: asyncio.Future[int],
        drained: asyncio.Future[None] | None,
    ) -> None:
        self.argv = argv
        self._pid = pid
        self._exited = exited
        self._drained = drained
        self._both: asyncio.Future[int] | None = None  # made by the first wait that needs it

    def __repr__(self) -> str:
        return f"Child(pid={self._pid}, argv={self.argv!r}, returncode={self.returncode})"

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        exited = self._exited
        if exited.done() and not exited.cancelled() and exited.exception() is None:
            return exited.result()
        return None

    async def wait(self) -> int:
        """Wait for the child to exit and its output to be read; returns the exit status."""
        code = await self._settled()
        # The leader is gone; anything it left in its group goes with it.
        self._signal_group(signal.SIGKILL)
        reaper.untrack(self._pid)
        return exit_status(code)

    def send_signal(self, sig: int) -> None:
        """Deliver `sig` to the whole process group."""
        self._signal_group(sig)

    async def terminate(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the group, wait up to `timeout` seconds, then kill the group; returns the status.

        The grace period covers the leader's exit and the end of its output (a leftover
        member of the group may hold the pipes open). If the caller is cancelled during the
        grace period, the group is killed at once before the cancellation goes on.
        """
        if not self._is_settled():
            self._signal_group(sig)
            try:
                await asyncio.wait_for(self._settled(), timeout)
            except TimeoutError:
                log.debug("pid %d ignored %s for %.1fs; killing its group", self._pid, sig, timeout)
                self._signal_group(signal.SIGKILL)
            except asyncio.CancelledError:
                self._signal_group(signal.SIGKILL)
                raise
        return await self.wait()

    def kill_now(self) -> None:
        """Kill the group at once, without waiting (for use in finalizers)."""
        self._signal_group(signal.SIGKILL)

    def _is_settled(self) -> bool:
        return self._exited.done() and (self._drained is None or self._drained.done())

    async def _settled(self) -> int:
        # shield: cancelling one waiter must not cancel the shared futures.
        exited = self._exited
        drained = self._drained
        if drained is None or drained.done():
            code = exited.result() if exited.done() else await asyncio.shield(exited)
            if drained is not None:
                drained.result()
            return code
        if exited.done():
            await asyncio.shield(drained)
            return exited.result()
        # Neither is in yet (the common case): one wake-up for both, not one for each.
        if self._both is None:
            self._both = _when_both(exited, drained)
        return await asyncio.shield(self._both)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, sig)


def _when_both(exited: asyncio.Future[int], drained: asyncio.Future[None]) -> asyncio.Future[int]:
    """A future that ends when `exited` and `drained` both have, with `exited`'s outcome
    (or `drained`'s error)."""
    both: asyncio.Future[int] = exited.get_loop().create_future()

    def settle(_: object) -> None:
        if both.done() or not (exited.done() and drained.done()):
            return
        for part in (exited, drained):
            if part.cancelled():
                both.cancel()
                return
            error = part.exception()
            if error is not None:
                both.set_exception(error)
                return
        both.set_result(exited.result())

    exited.add_done_callback(settle)
    drained.add_done_callback(settle)
    return both


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    on_line: LineSink | None = None,
    pass_fds: Sequence[int] = (),
    stdin_devnull: bool = False,
    files: Files | None = None,
) -> Child:
    """Start `argv` in a new session.

    With `on_line`, stdout and stderr are read line by line and handed to it; with `files`,
    the child reads and writes those descriptors; without either, the child writes straight
    to pitstop's own stdout and stderr (so colours and progress bars of a sequential run
    look as they would in a terminal).
    Raises FileNotFoundError / PermissionError if the program cannot be started.
    """
    assert on_line is None or files is None, "on_line and files exclude each other"
    # `env` is read, never kept or changed: the run's own environment can be passed as it is
    # (no copy per child). The reaper's mark goes on top of it.
    base: Mapping[str, str] = env if env is not None else os.environ
    mark = reaper.child_variables(base)
    reaper.ensure_started()
    if _pidfds_work():
        child = _spawn_pidfd(argv, cwd, base, mark, on_line, pass_fds, stdin_devnull, files)
    else:
        child = await _spawn_asyncio(
            argv, cwd, {**base, **mark}, on_line, pass_fds, stdin_devnull, files
        )
    reaper.track(child.pid)
    return child


# --------------------------------------------------------------------------- to the end


@dataclass(frozen=True)
class Captured:
    """What a child printed, whole, and how it ended (`status` as `exit_status` gives it)."""

    status: int
    stdout: str
    stderr: str


async def run_to_end(
    child: Child, *, stop_signal: int = signal.SIGTERM, stop_timeout: float = 5.0
) -> int:
    """Wait for `child`; if the waiter is cancelled, end its group first (signal, grace, kill)."""
    try:
        return await child.wait()
    except asyncio.CancelledError:
        await child.terminate(stop_signal, stop_timeout)
        raise
    finally:
        if child.returncode is None:
            child.kill_now()


async def capture(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    stop_signal: int = signal.SIGTERM,
    stop_timeout: float = 5.0,
) -> Captured:
    """Run `argv` to the end with `stdin` as its input and its output captured whole.

    The asynchronous `subprocess.run(capture_output=True, text=True)`: the loop goes on
    while the child runs. Output goes to unlinked temporary files, not pipes, so that it
    keeps its exact bytes (a last line without newline, carriage returns) and a child
    cannot stall on a full pipe; it is decoded as UTF-8 with universal newlines, as
    `text=True` does. Raises what `spawn` raises when the program cannot be started.
    """
    with (
        tempfile.TemporaryFile(prefix="pitstop-in-") as given,
        tempfile.TemporaryFile(prefix="pitstop-out-") as out,
        tempfile.TemporaryFile(prefix="pitstop-err-") as err,
    ):
        if stdin:
            given.write(stdin)
            given.seek(0)
        child = await spawn(
            argv, cwd=cwd, env=env, files=Files(given.fileno(), out.fileno(), err.fileno())
        )
        status = await run_to_end(child, stop_signal=stop_signal, stop_timeout=stop_timeout)
        return Captured(status, _text(out.fileno()), _text(err.fileno()))


def _text(fd: int) -> str:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, _READ_SIZE, offset):
        chunks.append(chunk)
        offset += len(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- pidfd (Linux)

_pidfd_support: bool | None = None


def _pidfds_work() -> bool:
    """Whether `os.pidfd_open` exists and the kernel supports it (checked once)."""
    global _pidfd_support
    if _pidfd_support is None:
        _pidfd_support = False
        if hasattr(os, "pidfd_open"):
            try:
                os.close(os.pidfd_open(os.getpid()))
                _pidfd_support = True
            except OSError:
                pass
    return _pidfd_support


def _spawn_pidfd(
    argv: Sequence[str],
    cwd: Path | str | None,
    env: Mapping[str, str],
    mark: Mapping[str, str],
    on_line: LineSink | None,
    pass_fds: Sequence[int],
    stdin_devnull: bool,
    files: Files | None,
) -> Child:
    loop = asyncio.get_running_loop()
    pipes: list[int] = []  # read end, write end, read end, write end
    try:
        if on_line is not None:
            pipes.extend(os.pipe())
            pipes.extend(os.pipe())
        stdin, stdout, stderr = _stdio(files, pipes, stdin_devnull)
        pid, popen = _start(argv, cwd, env, mark, stdin, stdout, stderr, pass_fds)
    except BaseException:
        for fd in pipes:
            os.close(fd)
        raise
    drained: asyncio.Future[None] | None = None
    if on_line is not None:
        os.close(pipes[1])
        os.close(pipes[3])
        drained = loop.create_future()
        _Output(loop, pipes[0], pipes[2], on_line, drained)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # cannot happen for our own unreaped child; do not leave it running
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if popen is not None:
            popen.returncode = -signal.SIGKILL
        raise
    exited: asyncio.Future[int] = loop.create_future()
    _ExitWatch(loop, pid, popen, pidfd, exited)
    return Child(tuple(argv), pid, exited, drained)


# The common case (no fds to pass, the current directory) starts children with posix_spawn:
# half the parent's CPU time of subprocess.Popen, which re-encodes the whole environment in
# Python and resolves the program along PATH for every child (docs/benchmarks.md).
_CAN_POSIX_SPAWN = hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2")
# What subprocess.Popen's restore_signals resets: Python ignores SIGPIPE (and SIGXFSZ), and an
# ignored signal stays ignored across exec.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)
_encoded_strings: dict[str, bytes] = {}
_resolved: dict[tuple[str, str | None, str], str | None] = {}
_CACHE_LIMIT = 64
_STRING_CACHE_LIMIT = 4096


def _start(
    argv: Sequence[str],
    cwd: Path | str | None,
    env: Mapping[str, str],
    mark: Mapping[str, str],
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    pass_fds: Sequence[int],
) -> tuple[int, subprocess.Popen[bytes] | None]:
    """Start `argv` in a new session: posix_spawn where it can, else subprocess.Popen.

    `stdin` is None (inherit), subprocess.DEVNULL or a descriptor; `stdout`/`stderr` None or a
    descriptor, as for Popen. The child's environment is `env` with `mark` on top.
    """
    if _CAN_POSIX_SPAWN and not pass_fds and argv:
        actions = _file_actions(stdin, stdout, stderr)
        here = os.getcwd()
        if actions is not None and (cwd is None or os.fspath(cwd) == here):
            executable = _resolve(argv[0], env.get("PATH"), here)
            if executable is not None:
                try:
                    pid = os.posix_spawn(
                        executable,
                        list(argv),
                        _encoded(env, mark),
                        file_actions=actions,
                        setsigdef=_DEFAULT_SIGNALS,
                        setsid=True,
                    )
                except (OSError, NotImplementedError):
                    pass  # Popen below tries again, and raises the error it always raised
                else:
                    return pid, None
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**env, **mark},
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )
    return popen.pid, popen


def _file_actions(
    stdin: int | None, stdout: int | None, stderr: int | None
) -> list[tuple[int, ...] | tuple[int, int, str, int, int]] | None:
    """posix_spawn's file actions for the three streams; None where Popen must do it.

    A standard descriptor (0-2) given as a stream is left to Popen: dup2 onto itself does not
    clear close-on-exec everywhere, and swapped streams need Popen's ordering.
    """
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = []
    if stdin == subprocess.DEVNULL:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    elif stdin is not None:
        if stdin < 3:
            return None
        actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
    for fd, target in ((stdout, 1), (stderr, 2)):
        if fd is not None:
            if fd < 3:
                return None
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
    return actions


def _encoded(env: Mapping[str, str], mark: Mapping[str, str] | None = None) -> dict[bytes, bytes]:
    """`env` (with `mark` on top) as bytes, each distinct name and value encoded once per run.

    Every task's environment differs a little (its own name, its folder), so it is the
    strings that repeat, not whole environments.
    """
    cache = _encoded_strings
    if len(cache) > _STRING_CACHE_LIMIT:
        cache.clear()
    known = cache.get

    def encode(text: str) -> bytes:
        data = cache[text] = os.fsencode(text)
        return data

    encoded = {(known(k) or encode(k)): (known(v) or encode(v)) for k, v in env.items()}
    if mark:
        for name, value in mark.items():
            encoded[known(name) or encode(name)] = known(value) or encode(value)
    return encoded


def _resolve(program: str, path: str | None, here: str) -> str | None:
    """The file Popen would execute for `program` (searched along the child's PATH), or None.

    Popen tries each PATH entry in turn and skips those that are missing or not executable;
    this picks the first regular executable file the same way, once per distinct command.
    None (nothing found) leaves the work, and the error message, to Popen.
    """
    key = (program, path, here)
    if key in _resolved:
        return _resolved[key]
    found: str | None = None
    if os.path.dirname(program):
        found = program
    else:
        for folder in os.get_exec_path({} if path is None else {"PATH": path}):
            candidate = os.path.join(folder, program)
            if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
                found = candidate
                break
    if len(_resolved) >= _CACHE_LIMIT:
        _resolved.clear()
    _resolved[key] = found
    return found


def _stdio(
    files: Files | None, pipes: Sequence[int], stdin_devnull: bool
) -> tuple[int | None, int | None, int | None]:
    if files is not None:
        return files
    stdin = subprocess.DEVNULL if stdin_devnull else None
    return stdin, (pipes[1] if pipes else None), (pipes[3] if pipes else None)


class _ExitWatch:
    """Reaps a child when its pidfd becomes readable and resolves `exited`."""

    __slots__ = ("exited", "loop", "pid", "pidfd", "popen")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        popen: subprocess.Popen[bytes] | None,
        pidfd: int,
        exited: asyncio.Future[int],
    ) -> None:
        self.loop = loop
        self.pid = pid
        self.popen = popen
        self.pidfd = pidfd
        self.exited = exited
        loop.add_reader(pidfd, self.on_exit)

    def on_exit(self) -> None:
        pid = self.pid
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            log.warning("pid %d was reaped by someone else; exit status unknown", pid)
            done, code = pid, 255
        else:
            if done == 0:  # not exited yet (should not happen once the pidfd is readable)
                return
            code = os.waitstatus_to_exitcode(status)
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        # Popen must know the child is gone, or its finalizer would poll (and warn) for it.
        if self.popen is not None:
            self.popen.returncode = code
        if not self.exited.done():
            self.exited.set_result(code)


class _Output:
    """Reads a child's stdout and stderr pipes without blocking and hands over whole lines."""

    __slots__ = ("drained", "loop", "on_line", "open")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stdout: int,
        stderr: int,
        on_line: LineSink,
        drained: asyncio.Future[None],
    ) -> None:
        self.loop = loop
        self.on_line = on_line
        self.drained = drained
        self.open = 2
        os.set_blocking(stdout, False)
        os.set_blocking(stderr, False)
        loop.add_reader(stdout, self.on_readable, stdout, "stdout", bytearray())
        loop.add_reader(stderr, self.on_readable, stderr, "stderr", bytearray())

    def on_readable(self, fd: int, name: Stream, buffer: bytearray) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            scanned = len(buffer)  # no newline before this
            buffer += data
            self.deliver(name, buffer, scanned)
            return
        # End of file: what is left is the last line, without its newline.
        self.loop.remove_reader(fd)
        os.close(fd)
        if buffer:
            self.emit(name, bytes(buffer))
        self.open -= 1
        if self.open == 0 and not self.drained.done():
            self.drained.set_result(None)

    def deliver(self, name: Stream, buffer: bytearray, scanned: int) -> None:
        start = 0
        while (end := buffer.find(b"\n", scanned)) >= 0:
            self.emit(name, bytes(buffer[start : end + 1]))
            start = scanned = end + 1
        while len(buffer) - start > LINE_LIMIT:
            end = _piece_end(buffer, start)
            self.emit(name, bytes(buffer[start:end]))
            start = end
        if start:
            del buffer[:start]

    def emit(self, name: Stream, raw: bytes) -> None:
        try:
            self.on_line(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        except Exception:
            log.exception("output handler failed on a line of %s", name)


def _piece_end(buffer: bytearray, start: int) -> int:
    """Where to cut a piece of about LINE_LIMIT bytes so that no UTF-8 character is split.

    The caller guarantees `buffer[start + LINE_LIMIT]` exists.
    """
    end = start + LINE_LIMIT
    for cut in range(end, end - 4, -1):
        if buffer[cut] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return cut
    return end


# --------------------------------------------------------------------------- fallback


async def _spawn_asyncio(
    argv: Sequence[str],
    cwd: Path | str | None,
    env: dict[str, str],
    on_line: LineSink | None,
    pass_fds: Sequence[int],
    stdin_devnull: bool,
    files: Files | None,
) -> Child:
    """asyncio's subprocess support, where pidfds are missing (macOS, old Linux kernels)."""
    pipe = asyncio.subprocess.PIPE if on_line else None
    stdin, stdout, stderr = files or (
        asyncio.subprocess.DEVNULL if stdin_devnull else None,
        pipe,
        pipe,
    )
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        limit=LINE_LIMIT,
    )
    exited: asyncio.Future[int] = asyncio.ensure_future(process.wait())
    drained: asyncio.Future[None] | None = None
    if on_line is not None:
        assert process.stdout is not None and process.stderr is not None
        drained = asyncio.ensure_future(
            _pump_both(
                _pump(process.stdout, "stdout", on_line), _pump(process.stderr, "stderr", on_line)
            )
        )
    return Child(tuple(argv), process.pid, exited, drained)


async def _pump_both(*pumps: Awaitable[None]) -> None:
    await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(stream: asyncio.StreamReader, name: Stream, on_line: LineSink) -> None:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:
            # A line longer than the limit: hand over what is buffered as one piece.
            raw = await stream.read(LINE_LIMIT)
        if not raw:
            return
        try:
            on_line(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        except Exception:
            log.exception("output handler failed on a line of %s", name)
