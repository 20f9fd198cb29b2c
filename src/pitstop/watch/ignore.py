"""A gitignore matcher: `.gitignore`, `.ignore` and `.git/info/exclude`, nested, cached per directory.

Written here rather than pulled in as a dependency because the subset git documents is small
and we need two things libraries rarely give: rules read lazily per directory (a watcher sees
paths one at a time, deep in the tree) and re-read when the ignore file is edited while watching.

Semantics follow gitignore(5):
- blank lines and ``#`` comments are skipped; ``\\#`` and ``\\!`` escape; trailing spaces are
  stripped unless escaped;
- ``!pattern`` re-includes; the last matching rule wins, deeper files win over shallower ones,
  and ``.ignore`` wins over ``.gitignore`` in the same directory (as ripgrep does);
- ``pattern/`` only matches directories;
- a pattern with a ``/`` at the start or in the middle is anchored to its file's directory,
  otherwise it matches a name at any depth below it;
- ``*``, ``?`` and ``[...]`` never match ``/``; ``**/x``, ``x/**`` and ``a/**/b`` span directories;
- a path inside an ignored directory is ignored, whatever a later ``!`` says (git does not
  descend into ignored directories, so it cannot re-include files there).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Per-directory ignore files, lowest precedence first.
IGNORE_FILE_NAMES: tuple[str, ...] = (".gitignore", ".ignore")


@dataclass(frozen=True)
class Rule:
    """One compiled line of an ignore file."""

    pattern: str  # the line as written, for explanations
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    source: str  # "path:line", or a label such as "--ignore"

    def matches(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` (posix, relative to this rule's base directory) matches."""
        if self.dir_only and not is_dir:
            return False
        return self.regex.fullmatch(rel) is not None


def compile_rule(line: str, source: str = "<pattern>") -> Rule | None:
    """Compile one gitignore line; None for blanks and comments."""
    line = line.rstrip("\n").rstrip("\r")
    line = _strip_trailing_spaces(line)
    if not line or line.startswith("#"):
        return None
    text = line
    negated = text.startswith("!")
    if negated or text.startswith(("\\!", "\\#")):
        text = text[1:]  # drop the "!" or the escaping backslash
    dir_only = text.endswith("/")
    text = text.rstrip("/")
    if not text:
        return None
    # A slash anywhere but the end anchors the pattern to the ignore file's directory.
    anchored = "/" in text
    text = text.lstrip("/")
    body = _translate(text)
    regex = body if anchored or body.startswith("(?:.*/)?") else f"(?:.*/)?{body}"
    return Rule(line, re.compile(regex, re.DOTALL), negated, dir_only, source)


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped[:-1] + " "  # "foo\ " keeps one escaped space
    return stripped


def _translate(glob: str) -> str:
    """Translate a gitignore glob (without leading/trailing slash) to a regex body."""
    parts = glob.split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            if last:
                out.append(".*")  # "x/**": everything inside x
            else:
                out.append("(?:.*/)?")  # "**/" : zero or more directories
            continue
        out.append(_translate_segment(part))
        if not last:
            out.append("/")
    return "".join(out)


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1  # "**" inside a name is just "*"
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif char == "[":
            end, cls = _translate_class(segment, i)
            out.append(cls)
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _translate_class(segment: str, start: int) -> tuple[int, str]:
    """Translate ``[...]`` starting at ``start``; returns (index of ``]``, regex)."""
    i = start + 1
    negate = i < len(segment) and segment[i] in "!^"
    if negate:
        i += 1
    first = i
    while i < len(segment) and (segment[i] != "]" or i == first):
        i += 1
    if i >= len(segment):
        return start, re.escape("[")  # unterminated: a literal bracket
    # Escape everything but ranges so "[[]" or "[a&&b]" stay plain sets to `re`.
    body = "".join(c if c == "-" else re.escape(c) for c in segment[first:i])
    return i, f"[^/{body}]" if negate else f"[{body}]"


def parse_lines(text: str, source: str) -> list[Rule]:
    """Compile every rule of an ignore file's text; ``source`` names the file for explanations."""
    rules: list[Rule] = []
    for number, line in enumerate(text.splitlines(), start=1):
        rule = compile_rule(line, f"{source}:{number}")
        if rule is not None:
            rules.append(rule)
    return rules


@dataclass(frozen=True)
class Verdict:
    """The outcome for one path: ignored or not, and the rule that decided (None: no rule)."""

    ignored: bool
    rule: Rule | None = None


@dataclass
class _CachedFile:
    stamp: tuple[int, int] | None  # (mtime_ns, size); None when the file does not exist
    rules: list[Rule]


class GitIgnore:
    """Answers "is this path ignored?" for paths under ``root`` using the ignore files in the tree.

    ``root`` is the top of the tree whose ignore files apply (the git work tree, or the watched
    directory when there is none). Each ignore file is read when first needed and re-read when
    its mtime or size changes, so edits made while watching take effect on the next event.
    """

    def __init__(
        self, root: Path, extra_rules: list[Rule] | None = None, read_files: bool = True
    ) -> None:
        self.root = root
        self._extra = extra_rules or []
        self._read_files = read_files  # False: only ``extra_rules`` (for --ignore globs)
        self._files: dict[Path, _CachedFile] = {}

    def verdict(self, path: Path, is_dir: bool | None = None) -> Verdict:
        """Decide for ``path`` (absolute, under root); ``is_dir`` defaults to asking the disk."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return Verdict(False)
        if not parts:
            return Verdict(False)
        # Walk down: an ignored ancestor directory ignores everything below it.
        for depth in range(1, len(parts) + 1):
            last = depth == len(parts)
            entry_is_dir = (is_dir if is_dir is not None else path.is_dir()) if last else True
            verdict = self._decide(parts[:depth], entry_is_dir)
            if verdict.ignored:
                return verdict
        return verdict

    def is_ignored(self, path: Path, is_dir: bool | None = None) -> bool:
        return self.verdict(path, is_dir).ignored

    def _decide(self, parts: tuple[str, ...], is_dir: bool) -> Verdict:
        """Last matching rule wins among rules whose base directory contains the entry."""
        decided = Verdict(False)
        for base_parts, rules in self._rule_sets(parts[:-1]):
            rel = "/".join(parts[len(base_parts) :])
            for rule in rules:
                if rule.matches(rel, is_dir):
                    decided = Verdict(not rule.negated, rule)
        return decided

    def _rule_sets(self, dir_parts: tuple[str, ...]) -> list[tuple[tuple[str, ...], list[Rule]]]:
        """Rule lists that apply to entries of ``dir_parts``, lowest precedence first."""
        if not self._read_files:
            return [((), self._extra)]
        sets: list[tuple[tuple[str, ...], list[Rule]]] = [
            ((), self._file_rules(self.root / ".git" / "info" / "exclude"))
        ]
        for depth in range(len(dir_parts) + 1):
            directory = self.root.joinpath(*dir_parts[:depth])
            for name in IGNORE_FILE_NAMES:
                sets.append((dir_parts[:depth], self._file_rules(directory / name)))
        sets.append(((), self._extra))  # command-line globs have the last word
        return sets

    def _file_rules(self, path: Path) -> list[Rule]:
        stamp = _stamp(path)
        cached = self._files.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached.rules
        rules = _read_rules(path) if stamp is not None else []
        self._files[path] = _CachedFile(stamp, rules)
        return rules


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _read_rules(path: Path) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:  # unreadable: behave as if absent, but say so
        logger.warning("cannot read ignore file %s: %s", path, exc)
        return []
    logger.debug("read ignore file %s", path)
    return parse_lines(text, str(path))


def find_git_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that contains ``.git`` (dir or file)."""
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
