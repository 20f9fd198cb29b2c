"""Task conditions (SEMANTICS §7), evaluated against the run's env dict, never os.environ.

The combination rules follow cargo-make's `condition.rs` `validate_criteria` line by line,
not its README (which describes GroupOr the other way round, case 24):

- `And`: every item of every criterion must pass.
- `Or`: each criterion passes as soon as one of its items does, and the first criterion
  that is set and passes makes the whole condition pass.
- `GroupOr`: each criterion is the AND of its items, and the first criterion that is set and
  passes makes the whole condition pass.

`files_modified` is always AND-ed last, whatever the type.
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from pitstop.errors import UserError
from pitstop.steps.expand import expand
from pitstop.taskfile.model import Condition, ConditionType, FilesModified, current_platform

T = TypeVar("T")

_FALSY = frozenset({"", "false", "no", "0"})


def is_truthy(value: str) -> bool:
    """envmnt's `is`: false for empty, `false`, `no` and `0` (any case), true otherwise."""
    return value.lower() not in _FALSY


# --------------------------------------------------------------------------- item checks


def _items(items: Iterable[T], check: Callable[[T], bool], any_item: bool) -> bool:
    """AND (or OR when `any_item`) of `check` over `items`, lazily; an empty list passes."""
    found = False
    for item in items:
        found = True
        if check(item) == any_item:
            return any_item
    return not any_item or not found


def _pairs(
    pairs: Iterable[tuple[str, str]], check: Callable[[str, str], bool], any_item: bool
) -> bool:
    return _items(pairs, lambda kv: check(kv[0], kv[1]), any_item)


def _env_equal(env: Mapping[str, str]) -> Callable[[str, str], bool]:
    return lambda key, value: key in env and env[key] == value


def _env_not_equal(env: Mapping[str, str]) -> Callable[[str, str], bool]:
    return lambda key, value: env.get(key) != value


def _env_contains(env: Mapping[str, str]) -> Callable[[str, str], bool]:
    return lambda key, value: key in env and value.lower() in env[key].lower()


def _env_bool(env: Mapping[str, str], truthy: bool) -> Callable[[str], bool]:
    # envmnt `is_or(key, !truthy)`: an unset variable fails both env_true and env_false.
    return lambda key: key in env and is_truthy(env[key]) == truthy


def _file_exists(env: Mapping[str, str], cwd: Path, exist: bool) -> Callable[[str], bool]:
    return lambda path: (cwd / expand(path, env)).exists() == exist


# --------------------------------------------------------------------------- files_modified


def _glob_files(pattern: str, env: Mapping[str, str], cwd: Path) -> list[Path] | None:
    """Files matching the expanded glob (relative to cwd); None when nothing matched at all."""
    expanded = expand(pattern, env)
    full = expanded if os.path.isabs(expanded) else str(cwd / expanded)
    matches = glob.glob(full, recursive=True)
    if not matches:
        return None
    return [Path(m) for m in matches if os.path.isfile(m)]


def files_modified(fm: FilesModified, env: Mapping[str, str], cwd: Path, cond: Condition) -> bool:
    """Pass when there are no inputs, no output file exists, or some input is newer."""
    if not fm.input:
        return True
    newest_output = 0
    for pattern in fm.output:
        for path in _glob_files(pattern, env, cwd) or []:
            newest_output = max(newest_output, path.stat().st_mtime_ns)
    if newest_output == 0:
        return True
    for pattern in fm.input:
        files = _glob_files(pattern, env, cwd)
        if files is None:
            # cargo-make logs this with error!, which ends the run.
            raise UserError(f"files_modified: no input files match '{pattern}'", cond.location)
        if any(p.stat().st_mtime_ns > newest_output for p in files):
            return True
    return False


# --------------------------------------------------------------------------- combination


def _criteria(
    cond: Condition,
    env: Mapping[str, str],
    profile: str,
    platform: str,
    cwd: Path,
    any_item: bool,
) -> list[tuple[bool, Callable[[], bool]]]:
    """(is set, check) for each criterion, in cargo-make's evaluation order.

    The checks are lazy so that And stops at the first failure and Or/GroupOr at the first
    pass, as cargo-make does (files are not even looked at once the outcome is known).
    """
    return [
        (cond.platforms is not None, lambda: cond.platforms is None or platform in cond.platforms),
        (cond.profiles is not None, lambda: cond.profiles is None or profile in cond.profiles),
        (
            cond.channels is not None,
            lambda: cond.channels is None or env.get("CARGO_MAKE_RUST_CHANNEL") in cond.channels,
        ),
        (cond.env is not None, lambda: _pairs(cond.env or (), _env_equal(env), any_item)),
        (
            cond.env_not is not None,
            lambda: _pairs(cond.env_not or (), _env_not_equal(env), any_item),
        ),
        (
            cond.env_set is not None,
            lambda: _items(cond.env_set or (), lambda k: k in env, any_item),
        ),
        (
            cond.env_not_set is not None,
            lambda: _items(cond.env_not_set or (), lambda k: k not in env, any_item),
        ),
        (
            cond.env_true is not None,
            lambda: _items(cond.env_true or (), _env_bool(env, True), any_item),
        ),
        (
            cond.env_false is not None,
            lambda: _items(cond.env_false or (), _env_bool(env, False), any_item),
        ),
        (
            cond.env_contains is not None,
            lambda: _pairs(cond.env_contains or (), _env_contains(env), any_item),
        ),
        (
            cond.files_exist is not None,
            lambda: _items(cond.files_exist or (), _file_exists(env, cwd, True), any_item),
        ),
        (
            cond.files_not_exist is not None,
            lambda: _items(cond.files_not_exist or (), _file_exists(env, cwd, False), any_item),
        ),
    ]


def check_criteria(
    cond: Condition | None,
    env: Mapping[str, str],
    *,
    profile: str,
    platform: str | None = None,
    cwd: Path,
) -> bool:
    """Whether the condition's criteria pass (no `condition_script`); None passes."""
    if cond is None:
        return True
    platform = platform or current_platform()
    group_or = cond.condition_type in ("Or", "GroupOr")
    any_item = cond.condition_type == "Or"
    failed = False
    for is_set, check in _criteria(cond, env, profile, platform, cwd, any_item):
        valid = check()
        if group_or and valid and is_set:
            return True
        if not valid:
            if not group_or:
                return False
            failed = True
    if cond.files_modified is not None:
        # Always AND-ed; when it is set and passes it also settles a failed Or/GroupOr.
        return files_modified(cond.files_modified, env, cwd, cond)
    return not failed or not group_or


def reads_files(cond: Condition | None) -> bool:
    """Whether checking `cond` may touch the file system (exists checks, globs, mtimes)."""
    return cond is not None and (
        cond.files_exist is not None
        or cond.files_not_exist is not None
        or cond.files_modified is not None
    )


async def check_criteria_off_loop(
    cond: Condition | None,
    env: Mapping[str, str],
    *,
    profile: str,
    platform: str | None = None,
    cwd: Path,
) -> bool:
    """`check_criteria` for callers on the event loop.

    A condition that looks at files is checked in a worker thread (a recursive glob over a
    big tree, or a slow file system, would stall the loop), with a copy of `env`: the run's
    env may change meanwhile. The others take microseconds and are checked in place.
    """
    if not reads_files(cond):
        return check_criteria(cond, env, profile=profile, platform=platform, cwd=cwd)
    snapshot = dict(env)
    return await asyncio.to_thread(
        lambda: check_criteria(cond, snapshot, profile=profile, platform=platform, cwd=cwd)
    )


# A task with a `condition_script` also needs `needs_script` and `condition_result`.


def needs_script(
    cond_type: ConditionType, criteria_passed: bool, has_condition: bool = True
) -> bool:
    """Whether `condition_script` must run, given the criteria's outcome (§7.2).

    And: only when the criteria passed. Or/GroupOr: only when they failed (a passing
    condition table decides alone). Without a condition table the script always runs.
    """
    if cond_type == "And":
        return criteria_passed
    return not (criteria_passed and has_condition)


def condition_result(
    cond: Condition | None,
    criteria_passed: bool,
    script_passed: bool | None,
) -> bool:
    """The overall outcome (`validate_conditions`); `script_passed` None means no script.

    Call `needs_script` first; pass the script's outcome only if it ran.
    """
    cond_type: ConditionType = cond.condition_type if cond is not None else "And"
    if not needs_script(cond_type, criteria_passed, cond is not None):
        return criteria_passed
    if script_passed is None:
        return criteria_passed
    return script_passed
