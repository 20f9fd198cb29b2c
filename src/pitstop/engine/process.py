"""The one module that owns child processes.

Every child starts in a session (and so a process group) of its own, so that pitstop can
end it together with everything it started: terminate the group, wait a grace period, then
kill the group. Each group is also registered with the reaper (see `reaper.py`), a tiny
watchdog process that kills the registered groups if pitstop itself dies without cleaning
up (SIGKILL, a crash in C code): no orphan ever keeps a port or a CPU.

Starting a child is on the hot path of a run (one per task), so on Linux this module does
not use asyncio's subprocess transports: it starts the child with `os.posix_spawn` (or
`subprocess.Popen` where that cannot do), learns of its exit through a pidfd, and reads its
output pipes with non-blocking `os.read`; the pidfds and pipes of all running children sit
in one epoll set that the event loop watches as a single reader (`_Watch`). That costs the
parent a fraction of the CPU time per child of `asyncio.create_subprocess_exec`. Where
pidfds are missing (macOS, Linux before 5.3) the same `Child` is backed by asyncio's own
subprocess support.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import select
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pitstop.engine import reaper
from pitstop.engine.events import (
    Stream as Stream,  # defined with the events; re-exported for callers
)

log = logging.getLogger(__name__)

LineSink = Callable[[Stream, str], None]
T = TypeVar("T")

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

    It is settled once the leader has been reaped (`returncode`, negative for death by a
    signal) and each of its `outputs` output pipes reached end-of-file with every line
    handed over. Whoever watches the child reports both (`_exited`, `_output_closed`).
    """

    def __init__(self, argv: tuple[str, ...], pid: int, outputs: int) -> None:
        self.argv = argv
        self._pid = pid
        self._code: int | None = None
        self._open = outputs  # output pipes not yet at end-of-file
        # One future per waiting caller, so that cancelling one wait touches no other.
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"Child(pid={self._pid}, argv={self.argv!r}, returncode={self.returncode})"

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._code

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
                # Not asyncio.wait_for: on Python 3.11 it drops a cancellation that arrives
                # as the child settles, and the caller would go on as if never cancelled.
                async with asyncio.timeout(timeout):
                    await self._settled()
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

    def _exited(self, code: int) -> None:
        """The leader has been reaped with `code`."""
        if self._code is None:
            self._code = code
            self._wake()

    def _output_closed(self) -> None:
        """One output pipe reached end-of-file, and all its lines were handed over."""
        self._open -= 1
        self._wake()

    def _is_settled(self) -> bool:
        return self._code is not None and self._open <= 0

    def _wake(self) -> None:
        if self._is_settled():
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _settled(self) -> int:
        if not self._is_settled():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        assert self._code is not None
        return self._code

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, sig)


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
    try:
        reaper.track(child.pid)
    except BaseException:
        child.kill_now()  # the exit watch still reaps it
        raise
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
    watch = _watch(asyncio.get_running_loop())
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
        watch.close_if_idle()
        raise
    # From here on the child runs: whatever fails must not leave it running, unwatched and
    # unknown to the reaper. Each descriptor is either ours to close or handed over.
    owned = list(pipes)
    pidfd = -1
    try:
        child = Child(tuple(argv), pid, outputs=2 if on_line is not None else 0)
        if on_line is not None:
            for fd in (pipes[1], pipes[3]):  # the child has its own copies
                owned.remove(fd)
                os.close(fd)
            _Output(watch, pipes[0], pipes[2], on_line, child)
        pidfd = os.pidfd_open(pid)
        owned.append(pidfd)
        _ExitWatch(watch, pid, popen, pidfd, child)
    except BaseException:
        _abandon(watch, pid, popen, owned)
        raise
    return child


def _abandon(
    watch: _Watch, pid: int, popen: subprocess.Popen[bytes] | None, fds: Sequence[int]
) -> None:
    """Kill and reap a child whose start could not be completed, and close `fds`."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # at once: SIGKILL cannot be ignored
    if popen is not None:
        popen.returncode = -signal.SIGKILL
    for fd in fds:
        watch.remove(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


def _watch(loop: asyncio.AbstractEventLoop) -> _Watch:
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = _Watch(loop)
    return watch


@contextlib.contextmanager
def keep_watching() -> Iterator[None]:
    """Within this (in a running loop), the children's epoll set stays open between children.

    For a run of many short children: without it, the set would be closed each time the
    last running child ended and made again for the next one.

    Within it, too, where a program was found along PATH is remembered (`_resolve`): for
    this run only, so that a long-lived pitstop (`--watch`, `up`) sees a tool installed or
    removed between runs.
    """
    watch = _watch(asyncio.get_running_loop()) if _pidfds_work() else None
    if watch is not None:
        watch.holders += 1
    # The run's steps are tasks started within this block: they share the run's context.
    resolved = _run_resolved.set({})
    try:
        yield
    finally:
        _run_resolved.reset(resolved)
        if watch is not None:
            watch.holders -= 1
            watch.close_if_idle()


class _Watch:
    """The descriptors of one loop's running children (output pipes, pidfds) in an epoll set
    of their own, which the loop watches as a single reader.

    The loop's own add_reader/remove_reader cost ~9 µs of bookkeeping a pair (three pairs per
    child, and a callback each time one is ready); here adding or removing a descriptor is
    one system call, and whatever is ready is handled in one callback. The set is closed as
    soon as no child is left and no run holds it open (`keep_watching`), so that no
    descriptor outlives the loop.
    """

    __slots__ = ("__weakref__", "callbacks", "epoll", "holders", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.epoll: select.epoll | None = None
        self.callbacks: dict[int, Callable[[], None]] = {}
        self.holders = 0

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        epoll = self.epoll
        if epoll is None:
            loop = self.loop()
            assert loop is not None, "a child is started in a running loop"
            epoll = self.epoll = select.epoll()
            loop.add_reader(epoll.fileno(), self.ready)
        epoll.register(fd, select.EPOLLIN)
        self.callbacks[fd] = callback

    def remove(self, fd: int) -> None:
        """Stop watching `fd` (before it is closed)."""
        if self.callbacks.pop(fd, None) is not None and self.epoll is not None:
            self.epoll.unregister(fd)
        self.close_if_idle()

    def close_if_idle(self) -> None:
        epoll = self.epoll
        if epoll is not None and not self.callbacks and not self.holders:
            self.epoll = None
            loop = self.loop()
            if loop is not None and not loop.is_closed():
                loop.remove_reader(epoll.fileno())
            epoll.close()

    def ready(self) -> None:
        epoll = self.epoll
        if epoll is None:
            return
        for fd, _ in epoll.poll(0):
            # A callback may remove its own descriptor, or close the set: look each one up.
            callback = self.callbacks.get(fd)
            if callback is not None:
                try:
                    callback()
                except Exception:
                    log.exception("watching a child's descriptor %d failed", fd)


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
# Where programs were found along PATH, for the run in progress (`keep_watching`); None
# outside a run, where each child looks afresh.
_run_resolved: contextvars.ContextVar[dict[tuple[str, str | None, str], str | None] | None] = (
    contextvars.ContextVar("pitstop_run_resolved", default=None)
)
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


class _LastEnv:
    """The environment encoded last (a copy of it, its names in order) and its encoding.

    A run's steps pass environments that differ from the previous one in a few values
    (the task's name, its folder): those alone are encoded again, the rest is copied.
    """

    __slots__ = ("encoded", "names", "source")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.source: dict[str, str] = {}
        self.encoded: dict[bytes, bytes] = {}


_last_env = _LastEnv()


def _encoded(env: Mapping[str, str], mark: Mapping[str, str] | None = None) -> dict[bytes, bytes]:
    """`env` (with `mark` on top) as bytes, each distinct name and value encoded once per run.

    Every task's environment differs a little (its own name, its folder), so it is the
    strings that repeat, not whole environments; and consecutive environments mostly agree,
    so only what differs from the last one is looked at (`_LastEnv`). The names keep `env`'s
    order, as the child's environment always did.
    """
    cache = _encoded_strings
    if len(cache) > _STRING_CACHE_LIMIT:
        cache.clear()
    known = cache.get

    def encode(text: str) -> bytes:
        data = cache[text] = os.fsencode(text)
        return data

    last = _last_env
    names = list(env)
    if names == last.names:  # the same names in the same order: only values can differ
        encoded = last.encoded.copy()
        for name, value in env.items() - last.source.items():
            encoded[known(name) or encode(name)] = known(value) or encode(value)
    else:
        encoded = {(known(k) or encode(k)): (known(v) or encode(v)) for k, v in env.items()}
        last.names = names
    last.source = dict(env)
    last.encoded = encoded.copy() if mark else encoded
    if mark:
        for name, value in mark.items():
            encoded[known(name) or encode(name)] = known(value) or encode(value)
    return encoded


def _resolve(program: str, path: str | None, here: str) -> str | None:
    """The file Popen would execute for `program` (searched along the child's PATH), or None.

    Popen tries each PATH entry in turn and skips those that are missing or not executable;
    this picks the first regular executable file the same way, once per distinct command
    and run. None (nothing found) leaves the work, and the error message, to Popen.
    """
    resolved = _run_resolved.get()
    key = (program, path, here)
    if resolved is not None and key in resolved:
        return resolved[key]
    found: str | None = None
    if os.path.dirname(program):
        found = program
    else:
        for folder in os.get_exec_path({} if path is None else {"PATH": path}):
            candidate = os.path.join(folder, program)
            if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
                found = candidate
                break
    if resolved is not None:
        if len(resolved) >= _CACHE_LIMIT:
            resolved.clear()
        resolved[key] = found
    return found


def _stdio(
    files: Files | None, pipes: Sequence[int], stdin_devnull: bool
) -> tuple[int | None, int | None, int | None]:
    if files is not None:
        return files
    stdin = subprocess.DEVNULL if stdin_devnull else None
    return stdin, (pipes[1] if pipes else None), (pipes[3] if pipes else None)


class _ExitWatch:
    """Reaps a child when its pidfd becomes readable and tells the Child."""

    __slots__ = ("child", "pid", "pidfd", "popen", "watch")

    def __init__(
        self,
        watch: _Watch,
        pid: int,
        popen: subprocess.Popen[bytes] | None,
        pidfd: int,
        child: Child,
    ) -> None:
        self.watch = watch
        self.pid = pid
        self.popen = popen
        self.pidfd = pidfd
        self.child = child
        watch.add(pidfd, self.on_exit)

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
        self.watch.remove(self.pidfd)
        os.close(self.pidfd)
        # Popen must know the child is gone, or its finalizer would poll (and warn) for it.
        if self.popen is not None:
            self.popen.returncode = code
        self.child._exited(code)


class _Output:
    """Reads a child's stdout and stderr pipes without blocking and hands over whole lines."""

    __slots__ = ("child", "on_line", "watch")

    def __init__(
        self,
        watch: _Watch,
        stdout: int,
        stderr: int,
        on_line: LineSink,
        child: Child,
    ) -> None:
        self.watch = watch
        self.on_line = on_line
        self.child = child
        os.set_blocking(stdout, False)
        os.set_blocking(stderr, False)
        out, err = bytearray(), bytearray()
        watch.add(stdout, lambda: self.on_readable(stdout, "stdout", out))
        watch.add(stderr, lambda: self.on_readable(stderr, "stderr", err))

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
        self.watch.remove(fd)
        os.close(fd)
        if buffer:
            self.emit(name, bytes(buffer))
        self.child._output_closed()

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
    child = Child(tuple(argv), process.pid, outputs=2 if on_line is not None else 0)
    exited = asyncio.ensure_future(process.wait())
    _keep(exited).add_done_callback(lambda done: child._exited(_code_of(done)))
    if on_line is not None:
        assert process.stdout is not None and process.stderr is not None
        pumps = (_pump(process.stdout, "stdout", on_line), _pump(process.stderr, "stderr", on_line))
        for pump in pumps:
            _keep(asyncio.ensure_future(pump)).add_done_callback(lambda _: child._output_closed())
    return child


_running: set[asyncio.Future[Any]] = set()  # the loop keeps only weak references to tasks


def _keep(task: asyncio.Future[T]) -> asyncio.Future[T]:
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


def _code_of(exited: asyncio.Future[int]) -> int:
    if not exited.cancelled() and exited.exception() is None:
        return exited.result()
    log.warning("waiting for a child failed: %r", exited)  # not expected; do not hang on it
    return 255


async def _pump(stream: asyncio.StreamReader, name: Stream, on_line: LineSink) -> None:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:
            # A line longer than the limit: hand over what is buffered as one piece.
            raw = await stream.read(LINE_LIMIT)
        except Exception:
            log.exception("reading the %s of a child failed", name)
            return
        if not raw:
            return
        try:
            on_line(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        except Exception:
            log.exception("output handler failed on a line of %s", name)
