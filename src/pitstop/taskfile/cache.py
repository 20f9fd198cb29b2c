"""A disk cache of loaded task files, checked against everything the load read.

Loading a task file imports tomllib and parses, locates and validates every key: most of
`pitstop --list`'s own work. The result depends only on what the load read from the file
system and on the code that read it, so a cold load records those as facts (`Inputs`):
each file read (its stat and the CRC-32 of its bytes), each probe for a file that may be
absent (an optional `extend`, a `.git` folder), each path resolved, and the stat of each
pitstop module and data file in use. A later load that finds every fact still true reuses
the result, warnings included (they are part of the model); one changed fact and it loads
afresh. Errors are not cached: a file that fails to load fails the same way every time.

Why stat and CRC both: the stat (device, inode, size, mtime_ns, ctime_ns) is more than
Python's own bytecode cache trusts (mtime and size), but on a file system with coarse
timestamps an edit of the same size within the same tick keeps it; reading a task file and
taking its CRC costs a few microseconds (binascii's CRC-32, which is zlib's, without loading
libz). Code files are checked by stat alone, as Python checks them before running them.
The task file's path, pitstop's folder and the Python version name the entry, so two
installs or two Pythons keep their own. PITSTOP_NO_CACHE=1 turns the caches off.

Cheap to import (pickle and binascii are imported when used): a hit is `--list`'s fast path.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pitstop.taskfile.model import Taskfile

# Bumped when the entry's layout changes.
_FORMAT = 1
# Entries kept; the least recently written beyond these are removed when one is written.
MAX_ENTRIES = 64
# A writer that died between writing and renaming leaves its temporary file; after this
# long (seconds) no writer is still at it.
_STALE_TEMPORARY = 600.0

# One fact: (kind, path, what was observed). See `_OBSERVE` for the kinds.
Fact = tuple[str, str, object]
Signature = tuple[int, int, int, int, int]


def enabled() -> bool:
    """False when PITSTOP_NO_CACHE is set (to anything but 0): load every time."""
    return os.environ.get("PITSTOP_NO_CACHE", "") in ("", "0")


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "pitstop"


# --------------------------------------------------------------------------- facts


def _signature(status: os.stat_result) -> Signature:
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )


def _read(path: str) -> tuple[bytes, object]:
    from binascii import crc32

    with open(path, "rb") as file:
        status = os.fstat(file.fileno())
        data = file.read()
    return data, (*_signature(status), crc32(data))


def _still_read(path: str, observed: object) -> bool:
    """The file's stat first (no read when it changed), then its bytes."""
    from binascii import crc32

    if not isinstance(observed, tuple):
        return False
    with open(path, "rb") as file:
        if _signature(os.fstat(file.fileno())) != observed[:5]:
            return False
        return bool(crc32(file.read()) == observed[5])


def _stat(path: str) -> Signature:
    return _signature(os.stat(path))


# Probes: kind -> how to observe it (again). Besides these, "read" (a file's stat and CRC)
# and "code" (a module's or data file's stat). A check that raises counts as changed.
_OBSERVE: dict[str, Callable[[str], object]] = {
    "is_file": os.path.isfile,
    "exists": os.path.exists,
    "resolve": os.path.realpath,
}

# Code and data files of this process, with their stat when the process first used them:
# a long-running process (watch, up) that reloads after pitstop was upgraded under it still
# describes the code it runs, not the new files, and so never takes the new code's entries.
_CODE_SEEN: dict[str, Signature] = {}


def _code_signature(path: str) -> Signature:
    seen = _CODE_SEEN.get(path)
    if seen is None:
        seen = _CODE_SEEN[path] = _stat(path)
    return seen


def _loaded_code() -> list[str]:
    """The files of the pitstop modules loaded so far, each remembered as it is now."""
    files = []
    for name, module in list(sys.modules.items()):
        if name == "pitstop" or name.startswith("pitstop."):
            file = getattr(module, "__file__", None)
            if isinstance(file, str):
                _code_signature(file)
                files.append(file)
    return files


class Inputs:
    """What one load read from the file system; the loader asks through this for every read."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.data_files: list[str] = []

    def read(self, path: Path) -> bytes:
        """The file's bytes (OSError as from Path.read_bytes)."""
        data, observed = _read(str(path))
        self.facts.append(("read", str(path), observed))
        return data

    def is_file(self, path: Path) -> bool:
        return self._probe("is_file", path) is True

    def exists(self, path: Path) -> bool:
        return self._probe("exists", path) is True

    def resolve(self, path: Path) -> Path:
        """Path.resolve(), which is os.path.realpath (not strict)."""
        resolved = self._probe("resolve", path)
        assert isinstance(resolved, str)
        return Path(resolved)

    def uses(self, path: Path) -> None:
        """A data file of pitstop's own that shaped the result (the built-in tasks): code."""
        _code_signature(str(path))
        self.data_files.append(str(path))

    def _probe(self, kind: str, path: Path) -> object:
        observed = _OBSERVE[kind](str(path))
        self.facts.append((kind, str(path), observed))
        return observed

    def with_code(self) -> tuple[Fact, ...]:
        """The facts, then the code and data files in use (checked as "code")."""
        files = dict.fromkeys([*self.data_files, *_loaded_code()])
        return (*self.facts, *(("code", file, _code_signature(file)) for file in files))


def _holds(fact: Fact) -> bool:
    kind, path, observed = fact
    try:
        if kind == "read":
            return _still_read(path, observed)
        if kind == "code":
            return _code_signature(path) == observed
        return _OBSERVE[kind](path) == observed
    except (OSError, ValueError, KeyError):
        return False


# --------------------------------------------------------------------------- entries


def _entry(path: Path) -> tuple[str, Path]:
    """The entry's identity (stored in it and checked) and its file."""
    from binascii import crc32

    package = os.path.dirname(os.path.dirname(__file__))
    identity = "\0".join((str(path), package, sys.version, sys.platform))
    name = f"taskfile-{crc32(identity.encode('utf-8', 'surrogateescape')):08x}.pickle"
    return identity, cache_dir() / name


def cached_taskfile(path: Path) -> Taskfile | None:
    """The cached load of the task file at `path`, if every fact it rests on still holds."""
    if not enabled():
        return None
    # _pickle, the C half of pickle: importing the pickle module costs ~3 ms more.
    import _pickle

    from pitstop.taskfile.model import Taskfile

    identity, entry = _entry(path)
    try:
        with open(entry, "rb") as file:
            status = os.fstat(file.fileno())
            # Only the user's own entries: unpickling runs what the file names.
            if status.st_uid != os.geteuid() or status.st_mode & 0o022:
                return None
            header = _pickle.load(file)
            if not (isinstance(header, tuple) and header[:2] == (_FORMAT, identity)):
                return None
            _loaded_code()  # this process's code, as it is now, before any fact is checked
            if not all(_holds(fact) for fact in header[2]):
                return None
            value = _pickle.load(file)
    except Exception:  # missing, unreadable, truncated or from other code: load instead
        return None
    return value if isinstance(value, Taskfile) else None


def save_taskfile(path: Path, inputs: Inputs, taskfile: Taskfile) -> None:
    """Write atomically (a reader never sees half an entry); an unwritable cache is skipped."""
    if not enabled():
        return
    import _pickle
    from _thread import get_ident

    identity, entry = _entry(path)
    folder = entry.parent
    # Per process and thread: two writers never share a temporary file.
    temporary = folder / f".{entry.stem}.{os.getpid()}.{get_ident()}.tmp"
    try:
        header = (_FORMAT, identity, inputs.with_code())
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with temporary.open("wb") as file:
            _pickle.dump(header, file, protocol=5)
            _pickle.dump(taskfile, file, protocol=5)
        temporary.replace(entry)
    except Exception:  # unwritable folder, full disk, something that does not pickle
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return
    with contextlib.suppress(OSError):
        _prune(folder)


def _prune(folder: Path) -> None:
    """Keep the MAX_ENTRIES most recently written entries; drop dead writers' leftovers."""
    import time

    now = time.time()
    entries = []
    with os.scandir(folder) as found:
        for item in found:
            if "taskfile-" not in item.name:
                continue
            try:
                written = item.stat().st_mtime
                if item.name.endswith(".tmp"):
                    if now - written > _STALE_TEMPORARY:
                        os.unlink(item.path)
                elif item.name.endswith(".pickle"):
                    entries.append((written, item.path))
            except OSError:
                continue
    entries.sort(reverse=True)
    for _, path in entries[MAX_ENTRIES:]:
        try:
            os.unlink(path)
        except OSError:
            continue


__all__ = ["MAX_ENTRIES", "Inputs", "cache_dir", "cached_taskfile", "enabled", "save_taskfile"]
