"""Linux file events straight from inotify, with the event loop waiting on its descriptor.

watchfiles' Rust thread sleeps ``step`` ms, then takes the GIL to look at what the OS reported;
with the short step quick reruns need, that is 100 wake-ups a second even when nothing
changes (~0.6 % of a CPU on 20,000 files; docs/benchmarks.md). Here the event loop waits on
the inotify descriptor (``loop.add_reader``): an idle watcher does no work at all, and a change
is handed over as soon as the kernel reports it. The caller (`changes.watch_changes`) debounces.

`inotify_awatch` speaks watchfiles' ``awatch`` protocol (an async iterator of
``{(change, path)}`` sets, ``watch_filter(change, path)``), so the rest of the watcher does not
know which one runs. It watches every folder under each root (like watchfiles), adds folders as
they appear (reporting what was already written in them), and answers a queue overflow
(``IN_Q_OVERFLOW``: the kernel dropped events) by a rescan that reports every file as modified:
a spurious rerun rather than a missed one. Reaching the system's watch limit is an OSError that
names the limit and how to raise it; the caller then falls back to polling.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

# watchfiles' Change values, so a watch_filter written for watchfiles reads them alike.
ADDED, MODIFIED, DELETED = 1, 2, 3

_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_EXCL_UNLINK = 0x04000000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_EXCL_UNLINK
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of NUL-padded name
_READ_SIZE = 256 * 1024

WatchFilter = Callable[[int, str], bool]


class StopSignal(Protocol):
    """What `inotify_awatch` waits on besides the descriptor (`changes._StopFlag` fits)."""

    def is_set(self) -> bool: ...

    def on_set(self, callback: Callable[[], None]) -> None: ...


def available() -> bool:
    """True where inotify can be used (Linux with a C library that exports it)."""
    return _libc() is not None


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1  # noqa: B018 - raises AttributeError where it is missing
    except (OSError, AttributeError):
        return None
    return libc


class Inotify:
    """One inotify descriptor watching every folder under some roots; events → pending changes."""

    def __init__(self, roots: list[Path]) -> None:
        self._libc = _libc()
        if self._libc is None:
            raise OSError(errno.ENOSYS, "inotify is not available on this system")
        self._libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            if code == errno.EMFILE:
                raise OSError(code, _limit_message("max_user_instances", "inotify instances"))
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd: int = fd
        self._roots = roots
        self._dirs: dict[int, bytes] = {}  # wd → folder (or watched file) path
        self._wds: dict[bytes, int] = {}
        self.pending: dict[str, int] = {}  # path → change, in arrival order
        try:
            for root in roots:
                self._add_tree(os.fsencode(root), report=False)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def watch_count(self) -> int:
        return len(self._dirs)

    # -------------------------------------------------------------------------- watches

    def _add_watch(self, path: bytes) -> bool:
        """Watch ``path``; False when it is gone already. Other failures raise OSError."""
        wd = self._libc.inotify_add_watch(self.fd, path, _MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                return False  # removed (or unreadable) before we got to it, as watchfiles
            if code == errno.ENOSPC:
                raise OSError(code, _limit_message("max_user_watches", "inotify watches"))
            raise OSError(code, f"inotify_add_watch {os.fsdecode(path)}: {os.strerror(code)}")
        self._dirs[wd] = path
        self._wds[path] = wd
        return True

    def _add_tree(self, top: bytes, *, report: bool) -> None:
        """Watch ``top`` and every folder below it; if ``report``, what is in them is added."""
        if not self._add_watch(top):
            return
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = os.scandir(folder)
            except (NotADirectoryError, FileNotFoundError, PermissionError):
                continue  # a watched file, or a folder that went away
            with entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir:
                        if entry.path not in self._wds and self._add_watch(entry.path):
                            stack.append(entry.path)
                    elif report:
                        self._note(entry.path, ADDED)
            if report and folder != top:
                self._note(folder, ADDED)

    def _rescan(self) -> None:
        """After an overflow: watch folders we missed, report every file as modified."""
        for root in self._roots:
            top = os.fsencode(root)
            if top not in self._wds:
                self._add_tree(top, report=True)
                continue
            for folder, dirs, files in os.walk(top):
                for name in dirs:
                    path = os.path.join(folder, name)
                    if path not in self._wds:
                        self._add_tree(path, report=True)
                for name in files:
                    self._note(os.path.join(folder, name), MODIFIED)
            if os.path.isfile(top):
                self._note(top, MODIFIED)

    # -------------------------------------------------------------------------- events

    def _note(self, raw_path: bytes, change: int) -> None:
        path = os.fsdecode(raw_path)
        previous = self.pending.get(path)
        if change == MODIFIED and previous in (ADDED, DELETED):
            return  # as watchfiles: a file added (or deleted) in this batch stays so
        self.pending[path] = change

    def read_events(self) -> None:
        """Read everything the kernel has queued into ``pending`` (non-blocking)."""
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                return
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        offset, end = 0, len(data)
        while offset < end:
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            if mask & _IN_Q_OVERFLOW:
                self._rescan()
                continue
            folder = self._dirs.get(wd)
            if mask & _IN_IGNORED:
                if folder is not None:
                    del self._dirs[wd]
                    if self._wds.get(folder) == wd:
                        del self._wds[folder]
                continue
            if folder is None:
                continue
            path = os.path.join(folder, name) if name else folder
            if mask & (_IN_CREATE | _IN_MOVED_TO):
                if mask & _IN_ISDIR:
                    self._add_tree(path, report=True)
                self._note(path, ADDED)
            elif mask & (_IN_DELETE | _IN_MOVED_FROM):
                self._note(path, DELETED)
                if mask & _IN_ISDIR:
                    self._forget(path)
            elif mask & (_IN_DELETE_SELF | _IN_MOVE_SELF):
                if not name and folder in (os.fsencode(r) for r in self._roots):
                    self._note(path, DELETED)
            elif mask & (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE) and not mask & _IN_ISDIR:
                self._note(path, MODIFIED)

    def _forget(self, folder: bytes) -> None:
        """A folder moved away: its path no longer names it (a move keeps the watch alive)."""
        prefix = folder + b"/"
        for path in [p for p in self._wds if p == folder or p.startswith(prefix)]:
            wd = self._wds.pop(path)
            self._dirs.pop(wd, None)
            self._libc.inotify_rm_watch(self.fd, wd)

    def take(self) -> dict[str, int]:
        taken, self.pending = self.pending, {}
        return taken


def _limit_message(setting: str, what: str) -> str:
    try:
        current = Path(f"/proc/sys/fs/inotify/{setting}").read_text().strip()
    except OSError:
        current = "?"
    return (
        f"the system limit on {what} is reached (fs.inotify.{setting} = {current}); raise it "
        f"(`sudo sysctl fs.inotify.{setting}=524288`), watch fewer folders, or use --poll"
    )


async def inotify_awatch(
    *paths: Path | str,
    watch_filter: WatchFilter | None = None,
    stop_event: StopSignal | None = None,
    **_watchfiles_options: Any,
) -> AsyncIterator[set[tuple[int, str]]]:
    """Sets of ``(change, path)`` as the kernel reports them, until ``stop_event`` is set.

    watchfiles' step, debounce and timeout options do not apply (nothing is polled) and are
    accepted so callers can pass the same keywords to either.
    """
    loop = asyncio.get_running_loop()
    watcher = Inotify([Path(p) for p in paths])
    failure: list[OSError] = []
    # One future at a time, resolved by the descriptor or the stop signal: no helper tasks.
    wake: asyncio.Future[None] | None = None

    def poke() -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    def on_readable() -> None:
        try:
            watcher.read_events()
        except OSError as exc:  # the watch limit reached by a new folder, most likely
            failure.append(exc)
        if watcher.pending or failure:
            poke()

    loop.add_reader(watcher.fd, on_readable)
    if stop_event is not None:
        stop_event.on_set(poke)
    try:
        while stop_event is None or not stop_event.is_set():
            if failure:
                raise failure[0]
            if not watcher.pending:
                wake = loop.create_future()
                await wake
                wake = None
                continue
            changes = {
                (change, path)
                for path, change in watcher.take().items()
                if watch_filter is None or watch_filter(change, path)
            }
            if changes:
                yield changes
    finally:
        loop.remove_reader(watcher.fd)
        watcher.close()


#: Read by `changes`: this source hands each change over at once, with no quiet step of its own.
inotify_awatch.hands_over_at_once = True  # type: ignore[attr-defined]
