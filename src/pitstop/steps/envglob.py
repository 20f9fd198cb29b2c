"""`{ glob = ... }` env values: the matching paths, the way cargo-make lists them."""

from __future__ import annotations

import glob as globlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pitstop.taskfile.model import EnvGlob


def glob_paths(value: EnvGlob, cwd: Path) -> list[str]:
    """Paths matching the glob, relative to cwd, each `./`-prefixed (cargo-make io.rs).

    The pattern is not `${}`-expanded, as in cargo-make. Dotfiles match `*` (the Rust glob
    crate's default). `ignore_type = "git"` drops paths git ignores.
    """
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
    if value.ignore_type == "git" and out:
        ignored = _git_ignored(out, cwd)
        out = [p for p in out if p not in ignored]
    return out


def _git_ignored(paths: Sequence[str], cwd: Path) -> set[str]:
    try:
        done = subprocess.run(
            ["git", "check-ignore", "--stdin", "-z"],
            cwd=cwd,
            input="\0".join(paths) + "\0",
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return set()
    return {p for p in done.stdout.split("\0") if p}
