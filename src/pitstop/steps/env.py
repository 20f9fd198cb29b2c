"""The run's environment: ordering and applying `[env]` entries.

pitstop never touches `os.environ`. The executor owns one `dict[str, str]` (a copy of
os.environ at start) and mutates it the way cargo-make mutates its process environment:
global setup once, then each task's env when the task runs, never restored (§6.5, case 20).
Children get it as `env=`.

Applying is asynchronous: a `{ script = ... }` value runs a child through the engine's
process path, and a glob or a condition that looks at files runs in a worker thread, so
the loop that serves a proxy and watches files goes on meanwhile.

Glob values are listed by `envglob`, the built-in variables come from `builtin_vars`, and
the setup before the first task is `envsetup`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pitstop.engine import process, reaper
from pitstop.errors import Location, TaskFileError, UserError
from pitstop.steps.conditions import check_criteria_off_loop
from pitstop.steps.envglob import glob_paths
from pitstop.steps.expand import expand
from pitstop.steps.scripts import os_script_body
from pitstop.taskfile.model import (
    EnvConditional,
    EnvDecode,
    EnvEntry,
    EnvGlob,
    EnvProfile,
    EnvScript,
    EnvUnset,
    EnvValue,
    current_platform,
)

LIST_SEPARATOR = ";"
CLI_LOCATION = Location(Path("<command line>"))


# --------------------------------------------------------------------------- ordering (§6.3)

# cargo-make's own reference patterns (`descriptor/env.rs`). `${X:default}` yields the name
# "X:default", which is no key, so a defaulted reference creates no ordering edge there
# either.
_RE_VARIABLE = re.compile(r"\$\{.*?}")
_RE_SH_PARAM = re.compile(r"\$(?:([\w-]+)|\{#?([\w-]+)})")


def _refs_in(text: str) -> list[str]:
    return [m.group(0)[2:-1].strip() for m in _RE_VARIABLE.finditer(text)]


def references(value: EnvValue) -> list[str]:
    """The names an env value refers to, in the order cargo-make finds them."""
    if isinstance(value, str):
        return _refs_in(value)
    if isinstance(value, tuple):
        return [r for item in value for r in _refs_in(item)]
    if isinstance(value, EnvDecode):
        return _refs_in(value.source)
    if isinstance(value, EnvConditional):
        return _refs_in(value.value)
    if isinstance(value, EnvGlob):
        return _refs_in(value.glob)
    if isinstance(value, EnvScript):
        if value.depends_on:
            return list(value.depends_on)
        return [
            m.group(1) or m.group(2) for line in value.lines for m in _RE_SH_PARAM.finditer(line)
        ]
    return []


def _last_definitions(entries: Sequence[EnvEntry]) -> list[EnvEntry]:
    """One entry per key, the last definition, at the position of that last definition.

    Two profile blocks of the same name are merged instead, the later one on top.
    """
    by_key: dict[str, EnvEntry] = {}
    for entry in entries:
        earlier = by_key.pop(entry.key, None)
        if (
            earlier is not None
            and isinstance(earlier.value, EnvProfile)
            and isinstance(entry.value, EnvProfile)
        ):
            merged = EnvProfile(earlier.value.entries + entry.value.entries)
            entry = EnvEntry(entry.key, merged, entry.location)
        by_key[entry.key] = entry
    return list(by_key.values())


def order_global_env(entries: Sequence[EnvEntry], base_env: Mapping[str, str]) -> list[EnvEntry]:
    """The global `[env]` in evaluation order: referenced keys before the keys using them.

    Depth-first post-order from the keys in declaration order, so forward references
    resolve (`A = "${B}"` then `B = "1"` gives A=1). A self-reference is allowed only for a
    key the base environment already has (`PATH = "${PATH}:x"`). A cycle is a TaskFileError.
    Profile blocks are ordered the same way, inside themselves.
    """
    unique = _last_definitions(entries)
    by_key = {e.key: e for e in unique}
    edges: dict[str, list[str]] = {}
    for entry in unique:
        external = entry.key in base_env
        edges[entry.key] = [
            r for r in references(entry.value) if r in by_key and (r != entry.key or not external)
        ]
    ordered: list[EnvEntry] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(key: str) -> None:
        state[key] = 1
        path.append(key)
        for ref in edges[key]:
            if state.get(ref) == 1:
                raise _cycle_error([*path[path.index(ref) :], ref], by_key)
            if ref not in state:
                visit(ref)
        path.pop()
        state[key] = 2
        ordered.append(_order_profile(by_key[key], base_env))

    for entry in unique:
        if entry.key not in state:
            visit(entry.key)
    return ordered


def _order_profile(entry: EnvEntry, base_env: Mapping[str, str]) -> EnvEntry:
    if not isinstance(entry.value, EnvProfile):
        return entry
    inner = tuple(order_global_env(entry.value.entries, base_env))
    return EnvEntry(entry.key, EnvProfile(inner), entry.location)


def _cycle_error(circle: list[str], by_key: Mapping[str, EnvEntry]) -> TaskFileError:
    text = " -> ".join(circle)
    return TaskFileError(
        # cargo-make's E001 wording, so scripts that look for it keep working.
        f"A cycle between different env variables has been detected (E001). Cycle: {text}.",
        by_key[circle[0]].location,
        hint="an env value cannot refer to itself through other variables (cargo-make error E001)",
    )


def apply_cli_env(
    entries: Sequence[EnvEntry], cli_pairs: Sequence[tuple[str, str]] | Sequence[str]
) -> list[EnvEntry]:
    """`--env K=V` entries first, then the makefile's entries for other keys (§2.3).

    A makefile entry with the same key as a CLI one is dropped whatever its kind, so every
    value that refers to it sees the CLI value. `cli_pairs` are (key, value) pairs or
    `K=V` strings.
    """
    cli: list[EnvEntry] = []
    for pair in cli_pairs:
        key, value = _split_pair(pair) if isinstance(pair, str) else pair
        cli.append(EnvEntry(key, value, CLI_LOCATION))
    keys = {e.key for e in cli}
    return cli + [e for e in entries if e.key not in keys]


def _split_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--env expects KEY=VALUE, got '{text}'")
    return key, value


# --------------------------------------------------------------------------- applying (§6.2)


@dataclass(frozen=True)
class ScriptOutput:
    exit_code: int
    stdout: str
    stderr: str


# Runs an env script: (lines, env, cwd) -> its output. The executor may pass its own.
ScriptRunner = Callable[[Sequence[str], Mapping[str, str], Path], Awaitable[ScriptOutput]]


async def run_env_script(lines: Sequence[str], env: Mapping[str, str], cwd: Path) -> ScriptOutput:
    """Run env-script lines the way cargo-make does: an OS script under `sh`, output captured.

    The child is one of the engine's (its own process group, known to the reaper): if the
    run is cancelled while it runs, it is ended with everything it started.
    """
    body = os_script_body("\n".join(lines), cwd)
    with reaper.temporary_directory("pitstop-env-") as tmp:
        script = tmp / "script.sh"
        script.write_text(body, encoding="utf-8")
        done = await process.capture(["sh", str(script)], cwd=cwd, env=env)
    return ScriptOutput(done.status, done.stdout, done.stderr)


@dataclass(frozen=True)
class _Context:
    profile: str
    additional_profiles: tuple[str, ...]
    cwd: Path
    run_script: ScriptRunner


async def apply_env(
    entries: Sequence[EnvEntry],
    env: MutableMapping[str, str],
    *,
    profile: str,
    additional_profiles: Sequence[str] = (),
    cwd: Path,
    run_script: ScriptRunner | None = None,
) -> None:
    """Evaluate `entries` in order into `env` (cargo-make `set_env_for_config`).

    A profile block `[env.NAME]` is applied where it stands when NAME is the profile or one
    of `additional_profiles`; the current profile's block is applied once more at the end,
    so it wins over plain keys. Pass the global `config.additional_profiles` for the global
    env only: cargo-make applies task env without them.
    """
    ctx = _Context(profile, tuple(additional_profiles), cwd, run_script or run_env_script)
    for entry in entries:
        if isinstance(entry.value, EnvProfile):
            if entry.key == profile or entry.key in ctx.additional_profiles:
                await _apply_plain(entry.value.entries, env, ctx)
        else:
            await _apply_one(entry, env, ctx)
    for entry in entries:
        if entry.key == profile and isinstance(entry.value, EnvProfile):
            await _apply_plain(entry.value.entries, env, ctx)


async def _apply_plain(
    entries: Sequence[EnvEntry], env: MutableMapping[str, str], ctx: _Context
) -> None:
    # Inside a profile block, nested blocks are ignored (profiles do not nest).
    for entry in entries:
        if not isinstance(entry.value, EnvProfile):
            await _apply_one(entry, env, ctx)


async def _condition_holds(
    value: EnvScript | EnvDecode | EnvConditional, env: Mapping[str, str], ctx: _Context
) -> bool:
    return await check_criteria_off_loop(
        value.condition, env, profile=ctx.profile, platform=current_platform(), cwd=ctx.cwd
    )


async def _apply_one(entry: EnvEntry, env: MutableMapping[str, str], ctx: _Context) -> None:
    value = entry.value
    key = entry.key
    if isinstance(value, str):
        env[key] = expand(value, env)
    elif isinstance(value, tuple):
        env[key] = LIST_SEPARATOR.join(expand(item, env) for item in value)
    elif isinstance(value, EnvUnset):
        env.pop(key, None)
    elif isinstance(value, EnvScript):
        if await _condition_holds(value, env, ctx):
            env[key] = expand(await _script_value(entry, value, env, ctx), env)
    elif isinstance(value, EnvDecode):
        if await _condition_holds(value, env, ctx):
            source = expand(value.source, env)
            mapped = dict(value.mapping).get(source)
            if mapped is None:
                mapped = value.default_value if value.default_value is not None else source
            env[key] = expand(mapped, env)
    elif isinstance(value, EnvConditional):
        if await _condition_holds(value, env, ctx):
            # cargo-make expands the value, then expands the result again when setting it.
            env[key] = expand(expand(value.value, env), env)
    elif isinstance(value, EnvGlob):
        paths = await glob_paths(value, ctx.cwd)
        env[key] = LIST_SEPARATOR.join(expand(p, env) for p in paths)


async def _script_value(
    entry: EnvEntry, value: EnvScript, env: Mapping[str, str], ctx: _Context
) -> str:
    output = await ctx.run_script(value.lines, env, ctx.cwd)
    if output.exit_code != 0:
        stderr = output.stderr.strip()
        raise UserError(
            f"the script for env variable '{entry.key}' failed with exit code "
            f"{output.exit_code}" + (f": {stderr.splitlines()[-1]}" if stderr else ""),
            entry.location,
        )
    if value.multi_line:
        return output.stdout
    lines = [line for line in output.stdout.split("\n") if line]
    return lines[-1].replace("\r", "") if lines else ""
