"""A task's output kept for later, in memory while small, then in an anonymous temporary file.

`--output group` prints each task's output as one block when the task ends, so it must
keep everything the task printed until then. Kept as a list of Python strings, a task
printing 200 MB cost pitstop 468 MiB of memory. A spool keeps the first `memory_limit`
bytes in memory (most tasks print little, and a file would only cost a system call per
line); past that it moves them to a temporary file and appends every later line there.
Memory then stays bounded whatever the task prints.

The file is made with `tempfile.TemporaryFile`: on Linux it has no name at all
(O_TMPFILE), elsewhere its name is removed at once, so nothing is left behind even if
pitstop is killed.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from typing import IO

from pitstop.engine.events import Stream

# Kept in memory before moving to a file. Small enough not to matter beside the
# interpreter itself (~20 MB), large enough that ordinary tasks never touch the disk.
MEMORY_LIMIT = 1 << 20

# A line's record in the file: which stream (0 stdout, 1 stderr), the length of its UTF-8
# bytes, then the bytes. Lengths, not separators, since a line may hold any character.
_HEADER = struct.Struct("<BI")
_STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")
# Rough per-line cost in memory (a tuple and a str object) beside the characters.
_OVERHEAD = 100


class Spool:
    """Lines of one task's stdout and stderr, replayed later in the order they came."""

    def __init__(self, memory_limit: int = MEMORY_LIMIT) -> None:
        self._memory_limit = memory_limit
        self._lines: list[tuple[Stream, str]] = []
        self._size = 0
        self._file: IO[bytes] | None = None

    @property
    def on_disk(self) -> bool:
        """Whether the lines have moved to the temporary file."""
        return self._file is not None

    def append(self, stream: Stream, line: str) -> None:
        if self._file is not None:
            self._write(self._file, stream, line)
            return
        self._lines.append((stream, line))
        self._size += len(line) + _OVERHEAD
        if self._size > self._memory_limit:
            self._spill()

    def replay(self) -> Iterator[tuple[Stream, str]]:
        """Every line, in order; reads the file a buffer at a time, never all of it."""
        if self._file is None:
            yield from self._lines
            return
        file = self._file
        file.flush()
        file.seek(0)
        read = file.read
        try:
            while header := read(_HEADER.size):
                tag, length = _HEADER.unpack(header)
                yield _STREAMS[tag], read(length).decode("utf-8", "surrogatepass")
        finally:
            file.seek(0, 2)  # later lines are appended, even after a replay left early

    def close(self) -> None:
        """Free the memory and the file (the file has no name left to remove)."""
        self._lines = []
        self._size = 0
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _spill(self) -> None:
        file = tempfile.TemporaryFile(prefix="pitstop-output-")  # noqa: SIM115 (kept open)
        for stream, line in self._lines:
            self._write(file, stream, line)
        self._lines = []
        self._size = 0
        self._file = file

    @staticmethod
    def _write(file: IO[bytes], stream: Stream, line: str) -> None:
        data = line.encode("utf-8", "surrogatepass")
        file.write(_HEADER.pack(stream == "stderr", len(data)) + data)
