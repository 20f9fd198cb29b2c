"""Find and read the task file(s): tomllib, file-level `extend`, merge over the built-in base.

Merging follows cargo-make (SEMANTICS §2.3): same-name tasks are laid over each other with
`Task.extend`, `[env]` merges per key (last wins), `env_files`/`env_scripts` are concatenated
with the extending file's entries first, and `[config]` merges field by field.

A load's result is cached on disk (`taskfile.cache`) with every file-system fact it read;
every read below goes through `Inputs` so that none is missed. tomllib, the key locator, the
validator and the built-in tasks are imported only when a file is actually loaded: a cache
hit needs none of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pitstop.errors import Location, TaskFileError
from pitstop.records import record, replace
from pitstop.taskfile.cache import Inputs, cached_taskfile, save_taskfile
from pitstop.taskfile.model import EnvEntry, EnvProfile, Task, Taskfile, Warning_
from pitstop.taskfile.normalize import extend_task

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pitstop.taskfile.locate import KeyPath, Locator

PITSTOP_FILE = "pitstop.toml"
CARGO_MAKE_FILE = "Makefile.toml"

# tomllib's position suffixes; compiled when a file has a syntax error, not at every start.
_TOML_POSITION = r"\s*\(at line (\d+), column (\d+)\)$"
_TOML_AT_END = r"\s*\(at end of document\)$"
_RELATIVE_KINDS = ("makefile", "git", "crate", "workspace")


@record
class _Layer:
    """A validated, merged file plus the `[config]` fields it (or its bases) set explicitly."""

    taskfile: Taskfile
    config_keys: frozenset[str]


# --------------------------------------------------------------------------- public API


def find_taskfile(makefile: Path | str | None, cwd: Path) -> Path | None:
    """The task file to load: `--makefile` (must exist), else pitstop.toml, else Makefile.toml.

    None means neither default file exists; like cargo-make we then run with built-ins only.
    """
    if makefile is not None:
        path = cwd / makefile
        if not path.is_file():
            raise TaskFileError(
                f"Descriptor file: {makefile} not found.",
                Location(path),
                hint="check the --makefile path (it is relative to the working directory)",
            )
        return path
    for name in (PITSTOP_FILE, CARGO_MAKE_FILE):
        if (cwd / name).is_file():
            return cwd / name
    return None


def load_taskfile(path: Path | str | None, cwd: Path) -> Taskfile:
    """Load the task file (`path` is `--makefile`, or None to search `cwd`), merged over the base.

    Raises TaskFileError for a missing `--makefile`, a TOML syntax error, an invalid value or a
    missing extended file.
    """
    found = find_taskfile(path, cwd)
    if found is None:
        from pitstop.taskfile.builtins import base_taskfile

        return replace(base_taskfile(), path=cwd / CARGO_MAKE_FILE)
    cached = cached_taskfile(found)
    if cached is not None:
        return cached
    inputs = Inputs()
    taskfile = _load_found(found, inputs)
    save_taskfile(found, inputs, taskfile)
    return taskfile


def _load_found(found: Path, inputs: Inputs) -> Taskfile:
    """The task file at `found` and the files it extends, over the base (and core) tasks."""
    from pitstop.taskfile.builtins import CORE_PATH, base_taskfile, core_taskfile, modify_core

    base = _Layer(base_taskfile(), frozenset({"init_task", "end_task"}))
    own = _load_layer(found, (), inputs)
    user = _merge(base, own)
    if _skips_core_tasks(found, user):
        return user.taskfile
    inputs.uses(CORE_PATH)
    core_tasks = core_taskfile()
    if user.taskfile.config.modify_core_tasks is not None:
        core_tasks = modify_core(core_tasks, user.taskfile.config.modify_core_tasks)
    core = _Layer(core_tasks, frozenset())
    merged = _merge(core, user, late=True).taskfile
    shadowed = _shadowed_default(own.taskfile, merged)
    if shadowed is not None:
        merged = replace(merged, warnings=(*merged.warnings, shadowed))
    return merged


def _skips_core_tasks(found: Path, user: _Layer) -> bool:
    """`[config] skip_core_tasks`, which defaults to false in a cargo-make file.

    pitstop.toml is pitstop's own, language-neutral file: there the Rust tasks are loaded
    only when it asks for them with skip_core_tasks = false.
    """
    if "skip_core_tasks" in user.config_keys:
        return user.taskfile.config.skip_core_tasks
    return found.name == PITSTOP_FILE


def _shadowed_default(own: Taskfile, merged: Taskfile) -> Warning_ | None:
    """A user `default` that extends the core `default` (an alias) never runs its own work.

    That is cargo-make's behaviour (its README says to add clear = true); it is kept, and said.
    """
    mine, final = own.tasks.get("default"), merged.tasks.get("default")
    if mine is None or final is None or mine.clear or mine.alias is not None:
        return None
    if final.alias is None or not (mine.actions() or mine.dependencies):
        return None
    where = mine.location
    return Warning_(
        f"{where}: [tasks.default] extends cargo-make's built-in default, an alias of "
        f'"{final.alias}", so its own dependencies and action do not run (as in cargo-make); '
        "add clear = true to replace it",
        where,
    )


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """tomllib, with its "(at line N, column M)" turned into a TaskFileError's Location."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(str(error), text, path) from None


# --------------------------------------------------------------------------- one file


def _read(path: Path, inputs: Inputs) -> str:
    try:
        data = inputs.read(path)
    except OSError as error:
        raise TaskFileError(f"cannot read {path}: {error.strerror}", Location(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _encoding_error(path, data, error) from None


def _encoding_error(path: Path, data: bytes, error: UnicodeDecodeError) -> TaskFileError:
    """Point at the first byte that is not UTF-8: line, and column counted in characters."""
    line_start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    col = len(data[line_start : error.start].decode("utf-8", errors="replace")) + 1
    return TaskFileError(
        f"{path.name} is not valid UTF-8: byte 0x{data[error.start]:02x} at line {line}, "
        f"column {col} ({error.reason})",
        Location(path, line, col),
        hint="save the file as UTF-8 (TOML files must be UTF-8)",
    )


def _syntax_error(message: str, text: str, path: Path) -> TaskFileError:
    line, col = 0, 0
    hint = "fix the TOML syntax at the marked position"
    match = re.search(_TOML_POSITION, message)
    if match is not None:
        line, col = int(match[1]), int(match[2])
        message = message[: match.start()]
    elif (end := re.search(_TOML_AT_END, message)) is not None:
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        message = message[: end.start()] + " at the end of the file"
        # No column to mark: the mistake is an opening bracket or quote somewhere above.
        hint = "an array, table or string opened on this line or above is never closed: close it"
    return TaskFileError(
        f"invalid TOML in {path.name}: {message}",
        Location(path, line, col),
        hint=hint,
    )


def _load_layer(path: Path, loading: tuple[Path, ...], inputs: Inputs) -> _Layer:
    """Validate `path`, then lay it over the files it extends (recursively)."""
    from pitstop.taskfile.locate import locate
    from pitstop.taskfile.validate import config_keys_set, validate

    resolved = inputs.resolve(path)
    text = _read(path, inputs)
    raw = parse_toml(text, path)
    locator = locate(text, path)
    warnings: list[Warning_] = []
    bases = _extended_files(raw, locator, (*loading, resolved), warnings, inputs)
    taskfile = validate(raw, locator)
    taskfile = replace(taskfile, warnings=(*taskfile.warnings, *warnings))
    own = _Layer(taskfile, config_keys_set(raw))
    layer: _Layer | None = None
    for base_path in bases:
        base = _load_layer(base_path, (*loading, resolved), inputs)
        layer = base if layer is None else _merge(layer, base)
    return own if layer is None else _merge(layer, own)


def _extended_files(
    raw: Mapping[str, Any],
    locator: Locator,
    loading: tuple[Path, ...],
    warnings: list[Warning_],
    inputs: Inputs,
) -> list[Path]:
    """The existing files named by top-level `extend`, in list order."""
    if "extend" not in raw:
        return []
    value = raw["extend"]
    items = value if isinstance(value, list) else [value]
    key_paths: list[KeyPath] = (
        [("extend", index) for index in range(len(items))]
        if isinstance(value, list)
        else [("extend",)]
    )
    found = []
    for item, key_path in zip(items, key_paths, strict=True):
        path = _extended_file(item, locator, key_path, loading, warnings, inputs)
        if path is not None:
            found.append(path)
    return found


def _extended_file(
    item: object,
    locator: Locator,
    key_path: KeyPath,
    loading: tuple[Path, ...],
    warnings: list[Warning_],
    inputs: Inputs,
) -> Path | None:
    location = locator.at(key_path)
    name, optional, relative = _extend_item(item, locator, key_path)
    if relative not in ("makefile", "git"):
        why = (
            "is Cargo-specific"
            if relative in _RELATIVE_KINDS
            else "is not one of " + ", ".join(_RELATIVE_KINDS)
        )
        where = locator.at((*key_path, "relative"))
        warnings.append(
            Warning_(
                f"{where}: extend relative = {relative!r} {why}; using the file's directory", where
            )
        )
    path = _extend_root(relative, locator.path.parent, inputs) / name
    if not inputs.is_file(path):
        if optional:
            return None
        raise TaskFileError(
            f"extended file {name} not found (looked for {path}, named in {locator.path.name})",
            location,
            hint="paths in `extend` are relative to the directory of the file that names them; "
            "add optional = true if the file may be absent",
        )
    if inputs.resolve(path) in loading:
        raise TaskFileError(
            f"{locator.path.name} extends {name}, which is already being loaded (extend cycle)",
            location,
        )
    return path


def _extend_item(item: object, locator: Locator, key_path: KeyPath) -> tuple[str, bool, str]:
    """(path, optional, relative) from a string or `{ path, optional?, relative? }`."""
    if isinstance(item, str):
        return item, False, "makefile"
    if isinstance(item, dict) and isinstance(item.get("path"), str):
        optional = item.get("optional", False)
        relative = item.get("relative", "makefile")
        if isinstance(optional, bool) and isinstance(relative, str):
            return item["path"], optional, relative
    raise TaskFileError(
        f"extend in {locator.path.name} must be a path, "
        '{ path = "...", optional = true } or a list of those, e.g. extend = "base.toml"',
        locator.at(key_path),
    )


def _extend_root(relative: str, directory: Path, inputs: Inputs) -> Path:
    """The directory an extend path is relative to: the git root for `git`, else the file's.

    "crate" and "workspace" are Cargo notions; the file's directory is the closest match.
    """
    if relative == "git":
        for candidate in (directory, *directory.parents):
            if inputs.exists(candidate / ".git"):
                return candidate
    return directory


# --------------------------------------------------------------------------- merging


def _merge(base: _Layer, over: _Layer, *, late: bool = False) -> _Layer:
    """Lay `over` on top of `base` (cargo-make's merge_external_configs).

    `late` is the user file laid over the core tasks, where a user task that does not set
    `env` keeps the core task's env (cargo-make's merge_task_env).
    """
    low, high = base.taskfile, over.taskfile
    tasks = dict(low.tasks)
    for name, task in high.tasks.items():
        if name not in tasks:
            tasks[name] = task
        elif late:
            tasks[name] = extend_task(tasks[name], task)
        else:
            tasks[name] = _merge_task(tasks[name], task)
    config_changes = {key: getattr(high.config, key) for key in over.config_keys}
    merged = Taskfile(
        path=high.path,
        tasks=tasks,
        env=merge_env(low.env, high.env),
        env_files=(*high.env_files, *low.env_files),
        env_scripts=(*high.env_scripts, *low.env_scripts),
        config=replace(low.config, **config_changes),
        warnings=_unique_warnings((*low.warnings, *high.warnings)),
    )
    return _Layer(merged, base.config_keys | over.config_keys)


def _merge_task(base: Task, over: Task) -> Task:
    """`merge_tasks` for a same-name task: `Task.extend`, except that `env` always comes from
    `over`. cargo-make gives every task of a file two injected env entries, so the
    extending definition's env is never unset and replaces the base env whole (§2.3); a
    redefinition without `env` leaves the task with no env of its own.
    """
    merged = extend_task(base, over)
    if over.env is not None or base.env is None:
        return merged
    locations = {k: v for k, v in merged.key_locations.items() if k != "env"}
    return merged.replace(env=None, key_locations=locations)


def merge_env(base: tuple[EnvEntry, ...], over: tuple[EnvEntry, ...]) -> tuple[EnvEntry, ...]:
    """Per key, last definition wins and takes its position; profile blocks merge recursively.

    Keys starting with CARGO_MAKE_CURRENT_TASK_ keep the base value, as in cargo-make.
    """
    by_key = {entry.key: entry for entry in base}
    overriding = []
    for entry in over:
        old = by_key.get(entry.key)
        if old is not None and entry.key.startswith("CARGO_MAKE_CURRENT_TASK_"):
            continue
        if (
            old is not None
            and isinstance(old.value, EnvProfile)
            and isinstance(entry.value, EnvProfile)
        ):
            merged = EnvProfile(merge_env(old.value.entries, entry.value.entries))
            entry = replace(entry, value=merged)
        overriding.append(entry)
    replaced = {entry.key for entry in overriding}
    return (*(e for e in base if e.key not in replaced), *overriding)


def _unique_warnings(warnings: tuple[Warning_, ...]) -> tuple[Warning_, ...]:
    # A file extended twice (diamond) would otherwise repeat its warnings.
    return tuple(dict.fromkeys(warnings))


__all__ = ["find_taskfile", "load_taskfile", "merge_env", "parse_toml"]
