"""Errors as data: every user mistake carries a Location; only `cli` turns errors into text.

Exit codes: 2 for a user's mistake (bad file, unknown task, cycle, bad flag), a failed
task's own exit code for a failed run, 128+N for death by signal N.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs ~2 ms; mypy honours any name spelled so.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

USAGE_EXIT_CODE = 2


class Location:
    """Where something was declared: a file and a 1-based line (and column, 0 if unknown).

    Immutable and compared by value, like a frozen dataclass, but written out by hand: this
    module is imported at every start (`pitstop --version` too), and `dataclasses` pulls in
    `inspect`, `ast` and `dis` (~5 ms) and compiles six methods per class at import.
    """

    __slots__ = ("col", "line", "path")
    __match_args__ = ("path", "line", "col")

    path: Path
    line: int
    col: int

    def __init__(self, path: Path, line: int = 0, col: int = 0) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "col", col)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Location is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Location is immutable")

    def __reduce__(self) -> tuple[type[Location], tuple[Path, int, int]]:
        # Pickle through __init__: the default sets the slots with setattr, which is refused,
        # and builtins' core-task cache pickles every task's Location.
        return (Location, (self.path, self.line, self.col))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location) or other.__class__ is not self.__class__:
            return NotImplemented
        return (self.path, self.line, self.col) == (other.path, other.line, other.col)

    def __hash__(self) -> int:
        return hash((self.path, self.line, self.col))

    def __repr__(self) -> str:
        return f"Location(path={self.path!r}, line={self.line!r}, col={self.col!r})"

    def __str__(self) -> str:
        if self.line <= 0:
            return str(self.path)
        if self.col > 0:
            return f"{self.path}:{self.line}:{self.col}"
        return f"{self.path}:{self.line}"

    def source_line(self) -> str | None:
        """The text of the line this location points at, if it can be read."""
        if self.line <= 0:
            return None
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        if self.line > len(lines):
            return None
        return lines[self.line - 1]


class PitstopError(Exception):
    """Base of every error pitstop reports to a person. `exit_code` is what the CLI exits with."""

    exit_code: int = 1

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint


class UserError(PitstopError):
    """A mistake in the task file or on the command line: exit code 2, never a traceback."""

    exit_code = USAGE_EXIT_CODE


class TaskFileError(UserError):
    """The task file cannot be read, parsed or validated."""


class PlanError(UserError):
    """The plan cannot be built: unknown task, cycle, private task, alias cycle."""


class RunFailed(PitstopError):
    """A task failed while running; exit code is the command's own."""

    def __init__(self, task: str, exit_code: int, not_run: tuple[str, ...] = ()):
        super().__init__(f'task "{task}" failed with exit code {exit_code}')
        self.task = task
        self.exit_code = exit_code
        self.not_run = not_run


class Interrupted(PitstopError):
    """pitstop was told to stop by a signal; exit code 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum
