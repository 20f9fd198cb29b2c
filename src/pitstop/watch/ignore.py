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
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Within this many seconds an ignore file is not stat-ed again. A watcher batch filters all its
#: paths at once (a ``git checkout`` of 500 files in one directory would otherwise stat the same
#: ignore files 500 times); an edit is still seen by the next batch.
RECHECK_S = 0.02

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


#: Rules and the directory (as parts relative to the root) they are relative to.
_RuleSet = tuple[tuple[str, ...], list[Rule]]


@dataclass
class _CachedFile:
    stamp: tuple[int, int] | None  # (mtime_ns, size); None when the file does not exist
    rules: list[Rule]
    checked: float  # time.monotonic() of the last stat


class GitIgnore:
    """Answers "is this path ignored?" for paths under ``root`` using the ignore files in the tree.

    ``root`` is the top of the tree whose ignore files apply (the git work tree, or the watched
    directory when there is none). Each ignore file is read when first needed and re-read when
    its mtime or size changes, so edits made while watching take effect on the next event.
    """

    def __init__(
        self,
        root: Path,
        extra_rules: list[Rule] | None = None,
        read_files: bool = True,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self.root = root
        self._root = str(root)
        self._extra = extra_rules or []
        self._read_files = read_files  # False: only ``extra_rules`` (for --ignore globs)
        self._files: dict[str, _CachedFile] = {}
        self._recheck_s = recheck_s
        self._paths_memo: dict[tuple[str, ...], list[tuple[tuple[str, ...], str]]] = {}

    def verdict(self, path: Path, is_dir: bool | None = None) -> Verdict:
        """Decide for ``path`` (absolute, under root); ``is_dir`` defaults to asking the disk."""
        parts = relative_parts(str(path), self._root)
        if not parts:  # outside the root, or the root itself
            return Verdict(False)
        # Every ignore file on the way down is looked up (and stat-ed) once per path.
        rule_sets = self._rule_sets(parts[:-1])
        # Walk down: an ignored ancestor directory ignores everything below it.
        for depth in range(1, len(parts) + 1):
            last = depth == len(parts)
            entry_is_dir = (is_dir if is_dir is not None else os.path.isdir(path)) if last else True
            verdict = self._decide(rule_sets, parts[:depth], entry_is_dir)
            if verdict.ignored:
                return verdict
        return verdict

    def is_ignored(self, path: Path, is_dir: bool | None = None) -> bool:
        return self.verdict(path, is_dir).ignored

    @staticmethod
    def _decide(rule_sets: list[_RuleSet], parts: tuple[str, ...], is_dir: bool) -> Verdict:
        """Last matching rule wins among rules whose base directory contains the entry."""
        decided = Verdict(False)
        for base_parts, rules in rule_sets:
            if len(base_parts) >= len(parts):
                continue  # a .gitignore below this entry does not apply to it
            rel = "/".join(parts[len(base_parts) :])
            for rule in rules:
                if rule.matches(rel, is_dir):
                    decided = Verdict(not rule.negated, rule)
        return decided

    def _rule_sets(self, dir_parts: tuple[str, ...]) -> list[_RuleSet]:
        """Rule lists that apply to entries of ``dir_parts``, lowest precedence first."""
        if not self._read_files:
            return [((), self._extra)]
        sets: list[_RuleSet] = [
            (base, self._file_rules(path)) for base, path in self._ignore_files(dir_parts)
        ]
        sets.append(((), self._extra))  # command-line globs have the last word
        return [rule_set for rule_set in sets if rule_set[1]]

    def _ignore_files(self, dir_parts: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
        """(base directory parts, ignore file path) that may apply inside ``dir_parts``; memoized."""
        files = self._paths_memo.get(dir_parts)
        if files is None:
            # Plain strings, not Paths: this runs for every changed path and pathlib is slow.
            files = [((), os.path.join(self._root, ".git", "info", "exclude"))]
            for depth in range(len(dir_parts) + 1):
                directory = os.path.join(self._root, *dir_parts[:depth])
                files += [
                    (dir_parts[:depth], os.path.join(directory, n)) for n in IGNORE_FILE_NAMES
                ]
            self._paths_memo[dir_parts] = files
        return files

    def _file_rules(self, path: str) -> list[Rule]:
        now = time.monotonic()
        cached = self._files.get(path)
        if cached is not None and now - cached.checked < self._recheck_s:
            return cached.rules
        stamp = _stamp(path)
        if cached is None or cached.stamp != stamp:
            rules = _read_rules(path) if stamp is not None else []
            cached = self._files[path] = _CachedFile(stamp, rules, now)
        cached.checked = now
        return cached.rules


def relative_parts(path: str, root: str) -> tuple[str, ...] | None:
    """Components of ``path`` below ``root`` (both absolute strings); None when outside."""
    if path == root:
        return ()
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not path.startswith(prefix):
        return None
    return tuple(part for part in path[len(prefix) :].split(os.sep) if part)


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _read_rules(path: str) -> list[Rule]:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError as exc:  # unreadable: behave as if absent, but say so
        logger.warning("cannot read ignore file %s: %s", path, exc)
        return []
    logger.debug("read ignore file %s", path)
    return parse_lines(text, path)


def find_git_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that contains ``.git`` (dir or file)."""
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
