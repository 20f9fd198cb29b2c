"""Per-service log files: every line stamped with the time, rotated by size, read back as one
stream interleaved by time (`pitstop logs`), then followed.

One line in a file: `2026-12-02T01:06:46.123456Z out text` (the stream is `out`, `err`, or
`pit` for what pitstop says about the service). UTC stamps of fixed width sort as text, so
interleaving several files is a merge on the first field.

A file that reaches `max_bytes` becomes `<name>.log.1` (the previous `.1` is dropped): at most
twice `max_bytes` per service on disk, whatever runs for however long.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
# A longer line is cut: a log line is for reading, and the tail must stay bounded.
MAX_LINE = 16 * 1024
STREAMS = {"stdout": "out", "stderr": "err", "pitstop": "pit"}
_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_BLOCK = 64 * 1024


@dataclass(frozen=True)
class LogLine:
    stamp: str  # ISO 8601 UTC, microseconds: sorts as text
    service: str
    stream: str  # out, err, pit
    text: str

    def render(self) -> str:
        return f"{self.stamp} {self.stream} {self.text}"


Follower = Callable[[LogLine], None]


def stamp(now: float | None = None) -> str:
    t = time.time() if now is None else now
    seconds = int(t)
    micros = int((t - seconds) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def file_name(service: str) -> str:
    """A service's log file name; names that are not plain file names are hex-encoded."""
    if _NAME.match(service) and not service.startswith("."):
        return f"{service}.log"
    return f"x-{service.encode().hex()}.log"


class LogBook:
    """The log files of one project's services, and the live followers of them."""

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._files: dict[str, tuple[int, int]] = {}  # service -> (fd, size)
        self._followers: set[Follower] = set()

    def names(self) -> list[str]:
        """Every name written to since this book was opened (services and build steps)."""
        return list(self._files)

    def path(self, service: str) -> Path:
        return self.folder / file_name(service)

    def write(self, service: str, stream: str, text: str, now: float | None = None) -> None:
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + " [cut]"
        # One line per record, whatever the text holds.
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        line = LogLine(stamp(now), service, STREAMS.get(stream, stream), text)
        data = (line.render() + "\n").encode("utf-8", "replace")
        fd, size = self._open(service)
        if size + len(data) > self.max_bytes and size > 0:
            fd, size = self._rotate(service, fd)
        with contextlib.suppress(OSError):  # a full disk must not take the services down
            os.write(fd, data)
            size += len(data)
        self._files[service] = (fd, size)
        for follower in list(self._followers):
            follower(line)

    def follow(self, follower: Follower) -> Callable[[], None]:
        """Call `follower` with every line written from now on; returns the unfollow."""
        self._followers.add(follower)
        return lambda: self._followers.discard(follower)

    def snapshot(self, services: Iterable[str]) -> dict[str, tuple[int, int]]:
        """For `tail` in a worker thread: each service's current file (opened now, so a
        rotation meanwhile does not matter) and its size now. Lines written after this are
        the followers'. The caller closes the fds (`tail` does)."""
        found: dict[str, tuple[int, int]] = {}
        for service in services:
            with contextlib.suppress(OSError):
                fd = os.open(self.path(service), os.O_RDONLY | os.O_CLOEXEC)
                entry = self._files.get(service)
                found[service] = (fd, entry[1] if entry is not None else os.fstat(fd).st_size)
        return found

    def close(self) -> None:
        for fd, _ in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()

    def _open(self, service: str) -> tuple[int, int]:
        entry = self._files.get(service)
        if entry is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self.path(service), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            entry = (fd, os.fstat(fd).st_size)
            self._files[service] = entry
        return entry

    def _rotate(self, service: str, fd: int) -> tuple[int, int]:
        os.close(fd)
        path = self.path(service)
        with contextlib.suppress(OSError):
            os.replace(path, path.with_name(path.name + ".1"))
        del self._files[service]
        return self._open(service)


def tail(folder: Path, snapshot: dict[str, tuple[int, int]], n: int) -> list[LogLine]:
    """The last `n` lines of the services in `snapshot`, interleaved by time; closes the fds.

    Reads each file backwards in blocks (and its `.1` if the file has fewer than `n`
    lines), so the memory is about `n` lines whatever the files' size.
    """
    per_service: list[list[LogLine]] = []
    try:
        for service, (fd, size) in snapshot.items():
            lines = _last_lines(fd, size, n)
            if len(lines) < n:
                older = folder / (file_name(service) + ".1")
                with contextlib.suppress(OSError):
                    old_fd = os.open(older, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        lines = (
                            _last_lines(old_fd, os.fstat(old_fd).st_size, n - len(lines)) + lines
                        )
                    finally:
                        os.close(old_fd)
            per_service.append([line for text in lines if (line := parse(service, text))])
    finally:
        for fd, _ in snapshot.values():
            with contextlib.suppress(OSError):
                os.close(fd)
    merged = list(heapq.merge(*per_service, key=lambda line: line.stamp))
    return merged[-n:] if n > 0 else []


def parse(service: str, text: str) -> LogLine | None:
    stamp_, _, rest = text.partition(" ")
    stream, _, body = rest.partition(" ")
    if len(stamp_) != 27 or not stamp_.endswith("Z"):
        return None
    return LogLine(stamp_, service, stream, body)


def _last_lines(fd: int, size: int, n: int) -> list[str]:
    """The last `n` complete lines before byte `size` of an open file."""
    if n <= 0:
        return []
    pieces: list[bytes] = []
    end = size
    count = 0
    while end > 0 and count <= n:
        start = max(0, end - _BLOCK)
        block = os.pread(fd, end - start, start)
        pieces.append(block)
        count += block.count(b"\n")
        end = start
    data = b"".join(reversed(pieces))
    lines = data.decode("utf-8", "replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if end > 0 and lines:
        lines.pop(0)  # cut by the block boundary
    return lines[-n:]
