"""Map TOML key paths to the line and column where they are written.

tomllib gives values but no positions, and every message pitstop prints should point at the
line that caused it. This is a small, lenient scanner of TOML text: it runs only after tomllib
accepted the file, so it does not validate anything; it only records where each table header,
key (bare, quoted, dotted, inside inline tables) and array item starts.

Key paths are tuples like ("tasks", "b", "dependencies", 0): strings for keys, ints for items.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from pathlib import Path

from pitstop.errors import Location
from pitstop.records import field, record

KeyPath = tuple[str | int, ...]

# Runs of characters the scanner skips at once (a char-by-char loop was the slow part of loading).
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]*")
_SCALAR = re.compile(r"[^,\]}\n#]*")
_BLANK = re.compile(r"(?:[ \t\r]+|#[^\n]*)*")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")


@record(frozen=False)
class Locator:
    """Positions of key paths in one file; `at` falls back to the nearest written ancestor."""

    path: Path
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def at(self, key_path: KeyPath) -> Location:
        """The location of `key_path`, or of its closest ancestor that was written."""
        for end in range(len(key_path), 0, -1):
            found = self.positions.get(key_path[:end])
            if found is not None:
                return Location(self.path, found[0], found[1])
        return Location(self.path)

    def has(self, key_path: KeyPath) -> bool:
        return key_path in self.positions


def locate(text: str, path: Path) -> Locator:
    """Scan `text` (a valid TOML document) and record the position of every key path."""
    locator = Locator(path)
    # The scanner is lenient; if it ever trips, positions found so far are still useful.
    with contextlib.suppress(IndexError):
        _Scanner(text, locator.positions).document()
    return locator


class _Scanner:
    def __init__(self, text: str, positions: dict[KeyPath, tuple[int, int]]) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.positions = positions
        # How many [[array.of.tables]] entries have been seen per path.
        self.array_tables: dict[KeyPath, int] = {}

    # ------------------------------------------------------------------ low level

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        self.jump(self.pos + count)

    def jump(self, end: int) -> None:
        """Move to `end`, counting the line breaks passed over."""
        breaks = self.text.count("\n", self.pos, end)
        if breaks:
            self.line += breaks
            self.line_start = self.text.rindex("\n", self.pos, end) + 1
        self.pos = end

    def here(self) -> tuple[int, int]:
        return (self.line, self.pos - self.line_start + 1)

    def record(self, key_path: KeyPath, position: tuple[int, int]) -> None:
        # The first mention wins: a dotted key `a.b = 1` followed by `a.c = 2` keeps a's line.
        self.positions.setdefault(key_path, position)

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces, tabs, comments and, if `newlines`, line breaks."""
        pattern = _BLANK_LINES if newlines else _BLANK
        match = pattern.match(self.text, self.pos)
        # Mostly there is nothing to skip: then no jump (it counts line breaks).
        if match is not None and match.end() != self.pos:
            self.jump(match.end())

    # ------------------------------------------------------------------ structure

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)

    def header(self) -> KeyPath:
        start = self.here()
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        key = self.key()
        self.advance(2 if is_array else 1)
        if is_array:
            index = self.array_tables.get(key, 0)
            self.array_tables[key] = index + 1
            self.record(key, start)
            key = (*key, index)
        for end in range(1, len(key) + 1):
            self.record(key[:end], start)
        return key

    def key_value(self, table: KeyPath) -> None:
        start = self.here()
        key = self.key()
        full = (*table, *key)
        for end in range(len(table) + 1, len(full) + 1):
            self.record(full[:end], start)
        self.skip_blank(newlines=False)
        if self.peek() == "=":
            self.advance()
        self.skip_blank(newlines=False)
        self.value(full)

    def key(self) -> KeyPath:
        """A dotted key: bare or quoted parts separated by dots."""
        parts: list[str | int] = []
        while True:
            self.skip_blank(newlines=False)
            char = self.peek()
            if char in "\"'":
                parts.append(self.string())
            else:
                begin = self.pos
                match = _BARE_KEY.match(self.text, begin)
                self.pos = match.end() if match is not None else begin
                parts.append(self.text[begin : self.pos])
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.advance()

    def value(self, key_path: KeyPath) -> None:
        char = self.peek()
        if char in "\"'":
            self.string()
        elif char == "[":
            self.array(key_path)
        elif char == "{":
            self.inline_table(key_path)
        else:
            match = _SCALAR.match(self.text, self.pos)
            if match is not None:
                self.pos = match.end()

    def array(self, key_path: KeyPath) -> None:
        self.advance()
        index = 0
        while True:
            self.skip_blank(newlines=True)
            if self.peek() in ("]", ""):
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            self.record((*key_path, index), self.here())
            self.value((*key_path, index))
            index += 1

    def inline_table(self, key_path: KeyPath) -> None:
        self.advance()
        while True:
            self.skip_blank(newlines=True)
            if self.peek() in ("}", ""):
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            self.key_value(key_path)

    def string(self) -> str:
        """Skip a string of any of the four kinds and return its (roughly decoded) text."""
        quote = self.peek()
        triple = self.text.startswith(quote * 3, self.pos)
        delimiter = quote * 3 if triple else quote
        self.advance(len(delimiter))
        begin = self.pos
        while self.pos < len(self.text):
            end = self.text.find(delimiter, self.pos)
            if quote == '"':
                escape = self.text.find("\\", self.pos, end if end >= 0 else len(self.text))
                if escape >= 0:
                    self.jump(min(escape + 2, len(self.text)))
                    continue
            if end < 0:
                break
            self.jump(end)
            # A triple-quoted string may end with up to two extra quotes inside it.
            while triple and self.text.startswith(delimiter + quote, self.pos):
                self.advance()
            content = self.text[begin : self.pos]
            self.advance(len(delimiter))
            return _unescape(content) if quote == '"' else content
        self.jump(len(self.text))
        return self.text[begin:]


def _unescape(content: str) -> str:
    """Decode a basic string's escapes exactly as TOML does (quoted keys may use them)."""
    if "\\" not in content:
        return content
    try:
        value = tomllib.loads(f'k = "{content}"')["k"]
    except tomllib.TOMLDecodeError:
        return content
    return value if isinstance(value, str) else content
