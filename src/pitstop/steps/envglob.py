"""`{ glob = ... }` env values: the matching paths, the way cargo-make lists them.

Listing runs in a worker thread (a recursive glob over a big tree takes a while) and the
`git check-ignore` child through the engine's process path, so the event loop goes on.
"""

from __future__ import annotations

import asyncio
import glob as globlib
import os
from collections.abc import Sequence
from pathlib import Path

from pitstop.engine import process
from pitstop.taskfile.model import EnvGlob


async def glob_paths(value: EnvGlob, cwd: Path) -> list[str]:
    """Paths matching the glob, relative to cwd, each `./`-prefixed (cargo-make io.rs).

    The pattern is not `${}`-expanded, as in cargo-make. Dotfiles match `*` (the Rust glob
    crate's default). `ignore_type = "git"` drops paths git ignores.
    """
    out = await asyncio.to_thread(_matches, value, cwd)
    if value.ignore_type == "git" and out:
        ignored = await _git_ignored(out, cwd)
        out = [p for p in out if p not in ignored]
    return out


def _matches(value: EnvGlob, cwd: Path) -> list[str]:
    absolute = os.path.isabs(value.glob)
    found = sorted(
        globlib.glob(
            value.glob, root_dir=None if absolute else cwd, recursive=True, include_hidden=True
        )
    )
    out: list[str] = []
    for match in found:
        full = Path(match) if absolute else cwd / match
        if (value.include_dirs and full.is_dir()) or (value.include_files and full.is_file()):
            text = match.replace("\\", "/")
            out.append(text if absolute or text.startswith("./") else "./" + text)
    return out


async def _git_ignored(paths: Sequence[str], cwd: Path) -> set[str]:
    names = ("\0".join(paths) + "\0").encode("utf-8", errors="surrogateescape")
    try:
        done = await process.capture(["git", "check-ignore", "--stdin", "-z"], cwd=cwd, stdin=names)
    except OSError:
        return set()
    return {p for p in done.stdout.split("\0") if p}
