"""Watch mode: file events → filtered, debounced batches → runs, one at a time.

The pieces, each usable alone::

    PathFilter (filters.py, ignore.py)   which paths matter
    watch_changes (changes.py)           watchfiles → async iterator of frozenset[Path] batches
    WatchLoop / watch_loop (loop.py)     batches + key presses → run_once calls, WatchEvents out
    terminal_keys (keys.py)              Enter/r → trigger_now, q → stop
    changed_paths_env (changes.py)       the batch → PITSTOP_CHANGED_PATHS(_FILE) for the child

`WatchOptions` collects the command-line settings and `change_source` wires the first two.
Nothing here imports watchfiles until a change source is iterated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pitstop.watch.changes import (
    DEFAULT_DEBOUNCE_MS,
    ENV_CHANGED_PATHS,
    ENV_CHANGED_PATHS_FILE,
    changed_paths_env,
    watch_changes,
)
from pitstop.watch.filters import FilterOptions, PathFilter
from pitstop.watch.keys import terminal_keys
from pitstop.watch.loop import (
    ChangesIgnored,
    OnBusy,
    RunCancelled,
    RunFinished,
    RunStarting,
    Waiting,
    WatchEvent,
    WatchLoop,
    watch_loop,
)

__all__ = [
    "DEFAULT_DEBOUNCE_MS",
    "ENV_CHANGED_PATHS",
    "ENV_CHANGED_PATHS_FILE",
    "ChangesIgnored",
    "FilterOptions",
    "OnBusy",
    "PathFilter",
    "RunCancelled",
    "RunFinished",
    "RunStarting",
    "Waiting",
    "WatchEvent",
    "WatchLoop",
    "WatchOptions",
    "change_source",
    "changed_paths_env",
    "terminal_keys",
    "watch_changes",
    "watch_loop",
]


@dataclass(frozen=True)
class WatchOptions:
    """Resolved watch settings (command line > environment > task file > these defaults)."""

    paths: tuple[Path, ...] = (Path("."),)  # --watch-path (repeatable)
    poll: bool = False  # --poll
    git_ignore: bool = True  # --no-git-ignore sets False
    ignore_globs: tuple[str, ...] = ()  # --ignore GLOB (repeatable)
    exts: tuple[str, ...] = ()  # --exts py,rs
    debounce_ms: int = DEFAULT_DEBOUNCE_MS  # --debounce
    on_busy: OnBusy = OnBusy.RESTART  # --on-busy restart|queue|ignore
    postpone: bool = False  # --postpone

    def filter_options(self) -> FilterOptions:
        return FilterOptions(
            git_ignore=self.git_ignore, ignore_globs=self.ignore_globs, exts=self.exts
        )


def change_source(
    options: WatchOptions, *, base: Path | None = None, stop_event: asyncio.Event | None = None
) -> AsyncIterator[frozenset[Path]]:
    """Filtered, debounced batches for ``options``; ``base`` anchors ``--ignore`` globs (cwd)."""
    roots = [p.absolute() for p in options.paths]
    path_filter = PathFilter(roots, options.filter_options(), base=base or Path.cwd())
    return watch_changes(
        roots,
        watch_filter=path_filter,
        debounce_ms=options.debounce_ms,
        poll=options.poll,
        stop_event=stop_event,
    )
