"""Which changed paths matter: built-in ignores, editor temp files, ignore files, globs, extensions.

One `PathFilter` answers for every watched root. It doubles as a `watchfiles` ``watch_filter``
(``filter(change, path) -> bool``) so rejected paths never leave the watcher, and it can
``explain`` why a path was dropped, which is what ``--why`` wants to show.

Files a run writes into ignored places (``target/``, ``__pycache__/``, anything gitignored)
never reach the loop, which is why a build does not retrigger itself.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pitstop.watch.ignore import GitIgnore, Rule, compile_rule, find_git_root, relative_parts

#: Directory names ignored at any depth unless ``default_ignores`` is off: VCS metadata,
#: caches and build outputs that tools rewrite on every run.
DEFAULT_IGNORED_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "target",
        "node_modules",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
    }
)

#: File names editors create while saving (vim swap and its 4913 probe, emacs lock and autosave,
#: JetBrains safe-write, generic temp files); a save should count once, as the real file.
#: `sed -i` writes its new file as `sedXXXXXX` (six random letters and digits) beside the file
#: and renames it over; a nine-letter file name starting with "sed" and no extension is the
#: price of ignoring it.
EDITOR_TEMP_GLOBS: tuple[str, ...] = (
    "*.sw[a-px]",
    ".*.kate-swp",
    ".goutputstream-*",
    ".~lock.*#",
    "sed[A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9]",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
    "*___jb_tmp___",
    "*___jb_old___",
    ".DS_Store",
)

_EDITOR_TEMP_RE = re.compile("|".join(fnmatch.translate(glob) for glob in EDITOR_TEMP_GLOBS))


@dataclass(frozen=True)
class FilterOptions:
    """How to filter. Maps to the CLI: ``--no-git-ignore``, ``--ignore GLOB``, ``--exts``."""

    git_ignore: bool = True  # read .gitignore, .ignore and .git/info/exclude
    ignore_globs: tuple[str, ...] = ()  # gitignore-syntax patterns, relative to ``base``
    exts: tuple[str, ...] = ()  # keep only these extensions ("py" or ".py"); empty keeps all
    default_ignores: bool = True  # DEFAULT_IGNORED_DIRS and EDITOR_TEMP_GLOBS


class PathFilter:
    """Accept or reject changed paths under one or more watched ``roots``.

    ``base`` anchors ``ignore_globs`` that contain a slash (default: the first root); globs
    without one match a name at any depth, as in a .gitignore.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        options: FilterOptions | None = None,
        base: Path | None = None,
    ) -> None:
        self.options = options or FilterOptions()
        self.roots = tuple(sorted((r.absolute() for r in roots), key=_depth, reverse=True))
        self._root_strs = tuple(map(str, self.roots))
        self._exts = tuple("." + e.lstrip(".") for e in self.options.exts)
        self._ignores = self._git_ignores(self.roots) if self.options.git_ignore else {}
        base_dir = (base or (self.roots[-1] if self.roots else Path.cwd())).absolute()
        self._globs = GitIgnore(
            base_dir, _compile_globs(self.options.ignore_globs), read_files=False
        )

    def __call__(self, change: object, path: str) -> bool:
        """The ``watchfiles`` ``watch_filter`` protocol; the kind of change does not matter."""
        return self.accepts(Path(path))

    def accepts(self, path: Path) -> bool:
        return self.explain(path) is None

    def explain(self, path: Path) -> str | None:
        """None when ``path`` is accepted, otherwise a short reason it is ignored."""
        path = path.absolute()
        root, parts = self._locate(str(path))
        if self.options.default_ignores:
            reason = _default_reason(path.name, parts)
            if reason is not None:
                return reason
        glob = self._globs.verdict(path)
        if glob.ignored and glob.rule is not None:
            return f"matches --ignore {glob.rule.pattern!r}"
        reason = self._git_reason(path, root)
        if reason is not None:
            return reason
        if self._exts and not path.name.endswith(self._exts):
            return f"extension not in {', '.join(self._exts)}"
        return None

    def _git_reason(self, path: Path, root: Path | None) -> str | None:
        ignore = self._ignores.get(root) if root is not None else None
        if ignore is None:
            return None
        verdict = ignore.verdict(path)
        if verdict.ignored and verdict.rule is not None:
            return f"ignored by {verdict.rule.source}: {verdict.rule.pattern}"
        return None

    def _locate(self, path: str) -> tuple[Path | None, tuple[str, ...]]:
        """The watched root holding ``path`` and the components below it."""
        # Roots are sorted deepest first, so a nested watch path wins over its parent.
        for root, root_str in zip(self.roots, self._root_strs, strict=True):
            parts = relative_parts(path, root_str)
            if parts is not None:
                return root, parts
        return None, (os.path.basename(path),)

    @staticmethod
    def _git_ignores(roots: Iterable[Path]) -> dict[Path, GitIgnore]:
        """One matcher per work tree, shared by the roots inside it (so its cache is too)."""
        by_top: dict[Path, GitIgnore] = {}
        per_root: dict[Path, GitIgnore] = {}
        for root in roots:
            top = find_git_root(root) or root
            per_root[root] = by_top.setdefault(top, GitIgnore(top))
        return per_root


def _depth(path: Path) -> int:
    return len(path.parts)


def _compile_globs(globs: Iterable[str]) -> list[Rule]:
    rules = (compile_rule(glob, "--ignore") for glob in globs)
    return [rule for rule in rules if rule is not None]


def _default_reason(name: str, parts: tuple[str, ...]) -> str | None:
    # Only components below the watched root count: watching ~/target/app must still work.
    for part in parts:
        if part in DEFAULT_IGNORED_DIRS:
            return f"inside {part}/ (ignored by default)"
    if _EDITOR_TEMP_RE.match(name):
        return "editor temporary file"
    return None
