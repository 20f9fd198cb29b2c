"""Env files: `env_files = [...]` in a makefile, and `--env-file` (SEMANTICS §6.5, §6.8).

A file holds `KEY=VALUE` lines; blank lines and `#` comments are skipped, an `export `
prefix is allowed, and matching quotes around the value are removed. Each value is
`${}`-expanded against the env as it is at that line, so later lines see earlier ones.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Literal

from pitstop.errors import Location, UserError
from pitstop.steps.expand import expand
from pitstop.taskfile.model import EnvFile

Scope = Literal["global", "task"]


class EnvFileError(UserError):
    """An env file is missing or unreadable."""


def parse_env_text(text: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs in file order; lines without `=` are ignored."""
    pairs: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        pairs.append((key, _unquote(value.strip())))
    return pairs


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def resolve_env_file_path(
    name: str,
    env: MutableMapping[str, str],
    *,
    base_dir: str | None,
    working_dir: Path,
) -> Path:
    """Where an env file is (`load_env_file_with_base_directory`).

    The name is `${}`-expanded. Only a name starting with `.` is joined to a base: `base_dir`
    when given (itself taken under the working directory if it starts with `.`), else the
    working directory (`CARGO_MAKE_WORKING_DIRECTORY`). Any other name is used as written.
    """
    expanded = expand(name, env)
    if not expanded.startswith("."):
        return Path(expanded)
    if base_dir is None:
        return working_dir / expanded
    if base_dir.startswith("."):
        return working_dir / base_dir / expanded
    return Path(base_dir) / expanded


def load_env_file(
    path: Path,
    env: MutableMapping[str, str],
    *,
    defaults_only: bool = False,
    location: Location | None = None,
) -> None:
    """Read one env file into `env`. With `defaults_only`, keys already set are kept."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise EnvFileError(
            f"cannot load env file '{path}': {error.strerror or error}", location
        ) from None
    for key, value in parse_env_text(text):
        if defaults_only and key in env:
            continue
        env[key] = expand(value, env)


def _profile_matches(entry: EnvFile, profile: str, additional_profiles: Sequence[str]) -> bool:
    return entry.profile is None or entry.profile == profile or entry.profile in additional_profiles


def load_env_files(
    files: Sequence[EnvFile],
    env: MutableMapping[str, str],
    *,
    profile: str,
    additional_profiles: Sequence[str] = (),
    working_dir: Path,
    scope: Scope = "task",
) -> None:
    """Load `env_files` entries in order, skipping those for another profile.

    `working_dir` is `CARGO_MAKE_WORKING_DIRECTORY`. For the global `env_files`
    (`scope="global"`) a `.`-path is relative to the directory of the makefile that
    declared it; for a task's, to the working directory. Relative paths that do not start
    with `.` are used as written (relative to pitstop's own working directory).
    """
    for entry in files:
        if not _profile_matches(entry, profile, additional_profiles):
            continue
        base = entry.base_path
        if base is None and scope == "global":
            base = str(entry.location.path.resolve().parent)
        path = resolve_env_file_path(entry.path, env, base_dir=base, working_dir=working_dir)
        load_env_file(path, env, defaults_only=entry.defaults_only, location=entry.location)
