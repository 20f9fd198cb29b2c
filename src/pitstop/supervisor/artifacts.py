"""Builds kept for instant rollback: each version's `artifacts` are copied, after its build,
into a folder of its own under the project's state folder (`.pitstop/builds/<service>/<n>/`),
and the instance starts from there ($PITSTOP_ARTIFACTS), so a later build that overwrites the
outputs never touches a running version. The Supervisor keeps the newest `keep_builds`
folders (and the serving one's) and can start any of them again without a build."""

from __future__ import annotations

import asyncio
import glob
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from pitstop.errors import UserError
from pitstop.taskfile.service import Artifact

ENV_VAR = "PITSTOP_ARTIFACTS"
BUILDS = "builds"


def builds_folder(state_folder: Path, service: str) -> Path:
    """Where `service`'s kept builds live: one numbered folder per version."""
    return state_folder / BUILDS / service


async def keep(artifacts: Sequence[Artifact], source: Path, folder: Path) -> None:
    """Copy what `artifacts` match in `source` into `folder` (made afresh), keeping their
    paths relative to `source`. Raises UserError, at the entry's line, for a pattern that
    matches nothing. The copy runs in a worker thread: binaries can be large."""
    await asyncio.to_thread(_keep, artifacts, source, folder)


def _keep(artifacts: Sequence[Artifact], source: Path, folder: Path) -> None:
    found: list[tuple[Path, Path]] = []
    for artifact in artifacts:
        matches = sorted(glob.glob(artifact.pattern, root_dir=source, recursive=True))
        if not matches:
            raise UserError(
                f"artifacts entry {artifact.pattern!r} matched nothing in {source} after "
                "the build; the build counts as failed",
                artifact.location,
                "make the build write it there, or fix the path or glob",
            )
        found.extend((source / m, Path(m)) for m in matches)
    if folder.exists():
        shutil.rmtree(folder)  # left by an earlier run whose numbers started at 1 too
    folder.mkdir(parents=True)
    for path, relative in found:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)  # keeps the mode: an executable stays executable


async def prune(folder: Path, keep_versions: Iterable[int]) -> None:
    """Remove every numbered version folder under `folder` not in `keep_versions`."""
    kept = {str(n) for n in keep_versions}

    def run() -> None:
        if not folder.is_dir():
            return
        for child in folder.iterdir():
            if child.name.isdigit() and child.name not in kept:
                shutil.rmtree(child, ignore_errors=True)

    await asyncio.to_thread(run)


def clear(folder: Path) -> None:
    """Forget the builds of an earlier run: version numbers start at 1 again."""
    shutil.rmtree(folder, ignore_errors=True)
