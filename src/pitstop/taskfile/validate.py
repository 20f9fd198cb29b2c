"""Raw TOML dict → `model.Taskfile`, one file at a time.

Unknown keys and cargo-make's Rust-specific keys only warn (cargo-make itself warns on unknown
keys); a value of the wrong type or a task with two actions is a TaskFileError pointing at the
key's line, with a message that says what to write instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pitstop.errors import Location, TaskFileError
from pitstop.records import field, fields, record
from pitstop.taskfile.locate import KeyPath, Locator
from pitstop.taskfile.messages import dotted, type_name
from pitstop.taskfile.model import (
    Condition,
    ConditionType,
    Config,
    Dependency,
    EnvConditional,
    EnvDecode,
    EnvEntry,
    EnvFile,
    EnvGlob,
    EnvProfile,
    EnvScript,
    EnvUnset,
    EnvValue,
    FilesModified,
    InstallCrate,
    ModifyCoreTasks,
    RunTaskSpec,
    Script,
    ScriptFile,
    ScriptSections,
    Task,
    Taskfile,
    Warning_,
    WatchOptions,
)

if TYPE_CHECKING:
    from pitstop.taskfile.service import ServiceSpec

T = TypeVar("T")

RUST_SPECIFIC = "not supported by pitstop (Rust-specific)"

_TASK_RUST_KEYS = frozenset({"install_script", "workspace", "plugin"})
# Rust-specific settings whose value asks for what pitstop does anyway: accepted silently.
_TASK_RUST_HARMLESS: dict[str, object] = {"workspace": False}
# cargo-make's own script engines, which pitstop cannot run.
_FOREIGN_ENGINES = ("@duckscript", "@rust")
_TASK_BOOL_KEYS = ("clear", "disabled", "private", "ignore_errors", "force")
_TASK_STR_KEYS = (
    "description",
    "category",
    "extend",
    "cwd",
    "alias",
    "linux_alias",
    "mac_alias",
    "windows_alias",
    "command",
    "script_runner",
    "script_extension",
    "toolchain",
)
_TASK_LIST_KEYS = ("args", "script_runner_args", "condition_script_runner_args")
_TASK_OTHER_KEYS = frozenset(
    {
        "deprecated",
        "watch",
        "condition",
        "condition_script",
        "env_files",
        "env",
        "run_task",
        "script",
        "dependencies",
        "service",
        "linux",
        "mac",
        "windows",
        "install_crate",
        # Arguments for `cargo install`: pitstop installs nothing, so they change nothing.
        "install_crate_args",
    }
)
_PLATFORMS = ("linux", "mac", "windows")
# A platform sub-table cannot set these (cargo-make's PlatformOverrideTask lacks them).
_NOT_IN_PLATFORM = frozenset(
    {"description", "category", "alias", "linux_alias", "mac_alias", "windows_alias", *_PLATFORMS}
)
_ACTIONS = ("command", "script", "run_task")

_CONDITION_LIST_KEYS = (
    "platforms",
    "profiles",
    "env_set",
    "env_not_set",
    "env_true",
    "env_false",
    "files_exist",
    "files_not_exist",
)
_CONDITION_MAP_KEYS = ("env", "env_not", "env_contains")
_CONDITION_RUST_KEYS = frozenset({"rust_version", "os"})
_CONDITION_TYPES: tuple[ConditionType, ...] = ("And", "Or", "GroupOr")

_CONFIG_BOOL_KEYS = ("skip_core_tasks", "reduce_output", "time_summary")
_CONFIG_STR_KEYS = ("init_task", "end_task", "on_error_task", "default_task_name", "min_version")
_CONFIG_RUST_KEYS = frozenset(
    {
        "default_to_workspace",
        "load_cargo_aliases",
        "skip_git_env_info",
        "skip_rust_env_info",
        "skip_crate_env_info",
        "main_project_member",
        "disable_install",
        "legacy_migration_task",
        "unstable_features",
        "search_project_root",
    }
)
# Values that ask for what pitstop does anyway: it never runs per workspace member, never
# installs crates, never loads cargo aliases and sets no Rust or crate variables.
_CONFIG_RUST_HARMLESS: dict[str, object] = {
    "default_to_workspace": False,
    "load_cargo_aliases": False,
    "disable_install": True,
    "skip_rust_env_info": True,
    "skip_crate_env_info": True,
    "skip_git_env_info": False,
    "search_project_root": False,
}
# General cargo-make config keys pitstop does not implement (yet): accepted with a warning.
_CONFIG_UNSUPPORTED_KEYS = frozenset(
    {
        "load_script",
        "linux_load_script",
        "windows_load_script",
        "mac_load_script",
    }
)
_TOP_KEYS = frozenset({"config", "env", "env_files", "env_scripts", "tasks", "extend"})


@record(frozen=False)
class _Context:
    """Per-file state: where keys are, and the warnings found so far."""

    locator: Locator
    warnings: list[Warning_] = field(default_factory=list)

    def at(self, key_path: KeyPath) -> Location:
        return self.locator.at(key_path)

    @property
    def file_name(self) -> str:
        return self.locator.path.name

    def fail(self, key_path: KeyPath, what: str, hint: str | None = None) -> TaskFileError:
        """An error at `key_path` whose message names the file, the task and the key."""
        owner, key = _split(key_path)
        where = f"{owner} in {self.file_name}" if owner else self.file_name
        return TaskFileError(f"{where}: {key} {what}".rstrip(), self.at(key_path), hint)

    def warn(self, key_path: KeyPath, why: str) -> None:
        location = self.at(key_path)
        owner, _ = _split(key_path)
        subject = f"{owner}: " if owner else ""
        self.warnings.append(Warning_(f"{location}: {subject}{why}", location))

    def unknown(self, key_path: KeyPath, known: Iterable[str] = ()) -> None:
        why = f"unknown key {_quote(key_path[-1])}, ignored"
        if key_path == ("config", "extend"):
            # `extend = ...` written after [config] lands in that table, a common slip.
            why += " (a file-level extend must come before the first [table])"
        elif known and isinstance(key_path[-1], str):
            import difflib  # only when a key is unknown

            # `comand = "x"` would otherwise leave a task that silently does nothing.
            close = difflib.get_close_matches(key_path[-1], sorted(known), n=1)
            if close:
                why += f"; did you mean {_quote(close[0])}?"
        self.warn(key_path, why)


def validate(raw: Mapping[str, Any], locator: Locator) -> Taskfile:
    """Validate one parsed task file. `extend` is left to the loader; it is only type-checked."""
    ctx = _Context(locator)
    for key in raw:
        if key == "plugins":
            ctx.warn((key,), f"[plugins] is {RUST_SPECIFIC}, ignored")
        elif key not in _TOP_KEYS:
            ctx.unknown((key,), _TOP_KEYS)
    tasks_raw = _table(ctx, raw.get("tasks", {}), ("tasks",), "[tasks.NAME] tables")
    tasks = {
        name: _task(ctx, name, body, ("tasks", name), platform_table=False)
        for name, body in tasks_raw.items()
    }
    return Taskfile(
        path=locator.path,
        tasks=tasks,
        env=_env_table(ctx, raw.get("env", {}), ("env",), allow_profiles=True),
        env_files=_env_files(ctx, raw.get("env_files", []), ("env_files",)),
        env_scripts=_str_list(ctx, raw.get("env_scripts", []), ("env_scripts",)),
        config=_config(ctx, raw.get("config", {}), ("config",)),
        warnings=tuple(ctx.warnings),
    )


_CONFIG_FIELDS = frozenset(fields(Config))


def config_keys_set(raw: Mapping[str, Any]) -> frozenset[str]:
    """The `[config]` fields a file sets itself: file merges override only those."""
    config = raw.get("config")
    if not isinstance(config, Mapping):
        return frozenset()
    return frozenset(key for key in config if key in _CONFIG_FIELDS)


# --------------------------------------------------------------------------- messages


def _split(key_path: KeyPath) -> tuple[str, str]:
    """('task "b"', "dependencies") for ("tasks", "b", "dependencies"); ("", "env.X") otherwise."""
    if len(key_path) >= 2 and key_path[0] == "tasks":
        # A task that is not a table at all: "tasks.b must be a table".
        return (
            (f'task "{key_path[1]}"', dotted(key_path[2:]))
            if len(key_path) > 2
            else ("", dotted(key_path))
        )
    return "", dotted(key_path)


def _quote(part: str | int) -> str:
    return f'"{part}"' if isinstance(part, str) else f"item {part}"


# --------------------------------------------------------------------------- scalars


def _str(ctx: _Context, value: object, key_path: KeyPath, example: str | None = None) -> str:
    if isinstance(value, str):
        return value
    example = example or f'{key_path[-1]} = "..."'
    raise ctx.fail(key_path, f"must be a string, e.g. {example} (found {type_name(value)})")


def _bool(ctx: _Context, value: object, key_path: KeyPath) -> bool:
    if isinstance(value, bool):
        return value
    raise ctx.fail(
        key_path, f"must be true or false, e.g. {key_path[-1]} = true (found {type_name(value)})"
    )


def _str_list(
    ctx: _Context, value: object, key_path: KeyPath, example: str | None = None
) -> tuple[str, ...]:
    example = example or f'{key_path[-1]} = ["..."]'
    if not isinstance(value, list):
        raise ctx.fail(
            key_path, f"must be a list of strings, e.g. {example} (found {type_name(value)})"
        )
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ctx.fail(
                (*key_path, index),
                f"must be a string, e.g. {example} (found {type_name(item)})",
            )
    return tuple(value)


def _str_or_list(ctx: _Context, value: object, key_path: KeyPath) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return _str_list(ctx, value, key_path)


def _table(ctx: _Context, value: object, key_path: KeyPath, example: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise ctx.fail(key_path, f"must be a table, e.g. {example} (found {type_name(value)})")


def _check_keys(
    ctx: _Context,
    body: Mapping[str, Any],
    key_path: KeyPath,
    known: Iterable[str],
    rust_specific: Iterable[str] = (),
    harmless: Mapping[str, object] | None = None,
) -> None:
    known_set, rust_set = frozenset(known), frozenset(rust_specific)
    for key in body:
        if harmless is not None and key in harmless and body[key] == harmless[key]:
            continue
        if key in rust_set:
            ctx.warn((*key_path, key), f"{key!r} is {RUST_SPECIFIC}, ignored")
        elif key not in known_set:
            ctx.unknown((*key_path, key), known_set)


def _get(
    ctx: _Context,
    body: Mapping[str, Any],
    key_path: KeyPath,
    key: str,
    convert: Callable[[_Context, Any, KeyPath], T],
) -> T | None:
    """`convert` the value of `key` if it is written, else None (cargo-make's "unset")."""
    return convert(ctx, body[key], (*key_path, key)) if key in body else None


def _optional(body: Mapping[str, Any], key: str, convert: Callable[[Any], T]) -> T | None:
    return convert(body[key]) if key in body else None


# --------------------------------------------------------------------------- tasks


def _task(
    ctx: _Context, name: str, body: object, key_path: KeyPath, *, platform_table: bool
) -> Task:
    body = _table(ctx, body, key_path, f'[tasks.{name}] with command = "..."')
    allowed = _task_keys(platform_table)
    _check_keys(ctx, body, key_path, allowed, _TASK_RUST_KEYS, _TASK_RUST_HARMLESS)
    values: dict[str, Any] = {}
    for key in _TASK_BOOL_KEYS:
        values[key] = _get(ctx, body, key_path, key, _bool)
    for key in _TASK_STR_KEYS:
        if key in allowed:
            values[key] = _get(ctx, body, key_path, key, _str)
    for key in _TASK_LIST_KEYS:
        values[key] = _get(ctx, body, key_path, key, _str_list)
    values.update(_task_structured(ctx, body, key_path))
    if not platform_table:
        for platform in _PLATFORMS:
            if platform in body:
                values[platform] = _task(
                    ctx, name, body[platform], (*key_path, platform), platform_table=True
                )
        _report_foreign_engine(ctx, body, key_path)
    _check_one_action(ctx, body, key_path)
    return Task(
        name=name,
        location=ctx.at(key_path),
        key_locations={key: ctx.at((*key_path, key)) for key in body},
        **values,
    )


def _report_foreign_engine(ctx: _Context, body: Mapping[str, Any], key_path: KeyPath) -> None:
    """A duckscript or @rust script is reported now, once per task, not when it fails to run."""
    tables = [(body, key_path)] + [
        (body[platform], (*key_path, platform))
        for platform in _PLATFORMS
        if isinstance(body.get(platform), dict)
    ]
    for table, path in tables:
        found = _foreign_engine(table)
        if found is not None:
            engine, key = found
            ctx.warn(
                (*path, key),
                f"its script runs with {engine}, cargo-make's own script engine, which pitstop "
                "does not provide: the task will fail if it runs (rewrite the script for sh, or "
                'set script_runner = "bash")',
            )
            return


def _foreign_engine(table: Mapping[str, Any]) -> tuple[str, str] | None:
    """(engine, key) when the table's script runs with @duckscript or @rust."""
    runner = table.get("script_runner")
    if runner in _FOREIGN_ENGINES:
        return str(runner), "script_runner"
    script = table.get("script")
    if isinstance(script, list):
        script = next((line for line in script if isinstance(line, str) and line.strip()), "")
    elif isinstance(script, dict):
        script = script.get("pre") or script.get("main") or ""
    if isinstance(script, list):
        script = "\n".join(str(line) for line in script)
    if isinstance(script, str):
        first = script.lstrip().split("\n", 1)[0].strip()
        for engine in _FOREIGN_ENGINES:
            if first == f"#!{engine}":
                return engine, "script"
    return None


def _task_keys(platform_table: bool) -> frozenset[str]:
    keys = {*_TASK_BOOL_KEYS, *_TASK_STR_KEYS, *_TASK_LIST_KEYS, *_TASK_OTHER_KEYS}
    return frozenset(keys - _NOT_IN_PLATFORM) if platform_table else frozenset(keys)


def _task_structured(ctx: _Context, body: Mapping[str, Any], key_path: KeyPath) -> dict[str, Any]:
    """The attributes whose values have several accepted shapes."""

    def sub(key: str) -> KeyPath:
        return (*key_path, key)

    return {
        "deprecated": _optional(
            body, "deprecated", lambda v: _deprecated(ctx, v, sub("deprecated"))
        ),
        "watch": _optional(body, "watch", lambda v: _watch(ctx, v, sub("watch"))),
        "condition": _optional(body, "condition", lambda v: _condition(ctx, v, sub("condition"))),
        "condition_script": _optional(
            body, "condition_script", lambda v: _script(ctx, v, sub("condition_script"))
        ),
        "env_files": _optional(body, "env_files", lambda v: _env_files(ctx, v, sub("env_files"))),
        "env": _optional(
            body, "env", lambda v: _env_table(ctx, v, sub("env"), allow_profiles=True)
        ),
        "run_task": _optional(body, "run_task", lambda v: _run_task(ctx, v, sub("run_task"))),
        "install_crate": _optional(
            body, "install_crate", lambda v: _install_crate(ctx, v, sub("install_crate"))
        ),
        "script": _optional(body, "script", lambda v: _script(ctx, v, sub("script"))),
        "dependencies": _optional(
            body, "dependencies", lambda v: _dependencies(ctx, v, sub("dependencies"))
        ),
        # pitstop's own extension: a long-running task (taskfile/service.py).
        "service": _optional(body, "service", lambda v: _service(ctx, v, sub("service"))),
    }


def _service(ctx: _Context, value: object, key_path: KeyPath) -> ServiceSpec:
    # Imported here: its dataclasses cost ~5 ms of `--list` start-up for files without one.
    from pitstop.taskfile.service import read_service

    def fail(sub_path: KeyPath, what: str, hint: str | None = None) -> TaskFileError:
        return ctx.fail((*key_path, *sub_path), what, hint)

    return read_service(value, ctx.at(key_path), fail)


def _check_one_action(ctx: _Context, body: Mapping[str, Any], key_path: KeyPath) -> None:
    present = [key for key in _ACTIONS if key in body]
    if len(present) > 1:
        first, second = present[0], present[1]
        raise ctx.fail(
            (*key_path, second),
            f"cannot be combined with {first}: a task has only one action (command, script "
            "or run_task)",
            hint=f"keep one of them, or move {second!r} into its own task and add it to "
            "`dependencies`",
        )


def _deprecated(ctx: _Context, value: object, key_path: KeyPath) -> bool | str:
    if isinstance(value, bool | str):
        return value
    raise ctx.fail(
        key_path,
        f'must be true, false or a message, e.g. deprecated = "use build" (found {type_name(value)})',
    )


def _install_crate(ctx: _Context, value: object, key_path: KeyPath) -> InstallCrate:
    """false / true / "crate-name" / { crate_name, binary, test_arg, rustup_component_name }."""
    if isinstance(value, bool):
        return InstallCrate(enabled=value)
    if isinstance(value, str):
        return InstallCrate(crate_name=value)
    body = _table(ctx, value, key_path, 'install_crate = { crate_name = "x", binary = "x" }')
    # min_version, install_command and force only shape an installation, which pitstop
    # leaves to the user: accepted and unused.
    known = ("crate_name", "binary", "test_arg", "rustup_component_name", "min_version")
    _check_keys(ctx, body, key_path, (*known, "install_command", "force", "version"))
    test_arg = body.get("test_arg", [])
    return InstallCrate(
        crate_name=_optional(body, "crate_name", lambda v: _str(ctx, v, (*key_path, "crate_name"))),
        binary=_optional(body, "binary", lambda v: _str(ctx, v, (*key_path, "binary"))),
        test_arg=_str_or_list(ctx, test_arg, (*key_path, "test_arg")),
        rustup_component=_optional(
            body,
            "rustup_component_name",
            lambda v: _str(ctx, v, (*key_path, "rustup_component_name")),
        ),
    )


def _dependencies(ctx: _Context, value: object, key_path: KeyPath) -> tuple[Dependency, ...]:
    example = 'dependencies = ["b"]'
    if not isinstance(value, list):
        raise ctx.fail(
            key_path,
            f"must be a list of task names, e.g. {example} (found {type_name(value)})",
        )
    return tuple(_dependency(ctx, item, (*key_path, index)) for index, item in enumerate(value))


def _dependency(ctx: _Context, item: object, key_path: KeyPath) -> Dependency:
    if isinstance(item, str):
        return Dependency(name=item, location=ctx.at(key_path))
    if isinstance(item, dict):
        _check_keys(ctx, item, key_path, ("name", "path"))
        if "name" not in item:
            raise ctx.fail(key_path, 'needs a name, e.g. { name = "build", path = "sub" }')
        name = _str(ctx, item["name"], (*key_path, "name"))
        path = _optional(item, "path", lambda v: _str(ctx, v, (*key_path, "path")))
        return Dependency(name=name, location=ctx.at(key_path), path=path)
    raise ctx.fail(
        key_path,
        'must be a task name or { name = "...", path = "..." }, e.g. '
        f'dependencies = ["b"] (found {type_name(item)})',
    )


def _watch(ctx: _Context, value: object, key_path: KeyPath) -> WatchOptions:
    if isinstance(value, bool):
        return WatchOptions(enabled=value)
    body = _table(ctx, value, key_path, 'watch = { watch = ["src"] } or watch = true')
    _check_keys(
        ctx,
        body,
        key_path,
        ("postpone", "ignore_pattern", "no_git_ignore", "watch", "why"),
        ("version",),
    )

    def flag(key: str) -> bool:
        return _bool(ctx, body[key], (*key_path, key)) if key in body else False

    patterns = body.get("ignore_pattern", [])
    paths = body.get("watch", [])
    return WatchOptions(
        enabled=True,
        postpone=flag("postpone"),
        ignore_pattern=_str_or_list(ctx, patterns, (*key_path, "ignore_pattern")),
        no_git_ignore=flag("no_git_ignore"),
        paths=_str_list(ctx, paths, (*key_path, "watch"), 'watch = ["src"]'),
        why=flag("why"),
    )


# --------------------------------------------------------------------------- scripts, run_task


def _script(ctx: _Context, value: object, key_path: KeyPath) -> Script:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_str_list(ctx, value, key_path, 'script = ["echo a", "echo b"]'))
    if isinstance(value, dict) and "file" in value:
        _check_keys(ctx, value, key_path, ("file", "absolute_path"))
        absolute = value.get("absolute_path", False)
        return ScriptFile(
            file=_str(ctx, value["file"], (*key_path, "file")),
            absolute_path=_bool(ctx, absolute, (*key_path, "absolute_path")),
        )
    if isinstance(value, dict):
        _check_keys(ctx, value, key_path, ("pre", "main", "post"))
        sections = {
            key: _script_text(ctx, value[key], (*key_path, key)) if key in value else None
            for key in ("pre", "main", "post")
        }
        return ScriptSections(**sections)
    raise ctx.fail(
        key_path,
        'must be a string, a list of lines, { file = "x.sh" } or { pre, main, post }, '
        f'e.g. script = "echo hi" (found {type_name(value)})',
    )


def _script_text(ctx: _Context, value: object, key_path: KeyPath) -> str:
    if isinstance(value, list):
        return "\n".join(_str_list(ctx, value, key_path))
    return _str(ctx, value, key_path)


def _run_task(ctx: _Context, value: object, key_path: KeyPath) -> tuple[RunTaskSpec, ...]:
    if isinstance(value, str):
        return (RunTaskSpec(names=(value,), location=ctx.at(key_path)),)
    if isinstance(value, dict):
        return (_run_task_entry(ctx, value, key_path, routing=False),)
    if isinstance(value, list):
        return tuple(
            _run_task_entry(ctx, item, (*key_path, index), routing=True)
            for index, item in enumerate(value)
        )
    raise ctx.fail(
        key_path,
        'must be a task name, { name = "x", fork = true } or a list of such tables, e.g. '
        f'run_task = "build" (found {type_name(value)})',
    )


def _run_task_entry(ctx: _Context, value: object, key_path: KeyPath, routing: bool) -> RunTaskSpec:
    body = _table(ctx, value, key_path, 'run_task = { name = "build" }')
    known = ["name", "fork", "parallel", "cleanup_task"]
    if routing:
        known += ["condition", "condition_script"]
    _check_keys(ctx, body, key_path, known)
    if "name" not in body:
        raise ctx.fail(key_path, 'needs a name, e.g. run_task = { name = "build" }')

    def flag(key: str) -> bool:
        return _bool(ctx, body[key], (*key_path, key)) if key in body else False

    return RunTaskSpec(
        names=_str_or_list(ctx, body["name"], (*key_path, "name")),
        location=ctx.at(key_path),
        fork=flag("fork"),
        parallel=flag("parallel"),
        cleanup_task=_optional(
            body, "cleanup_task", lambda v: _str(ctx, v, (*key_path, "cleanup_task"))
        ),
        condition=_optional(
            body, "condition", lambda v: _condition(ctx, v, (*key_path, "condition"))
        ),
        condition_script=_optional(
            body, "condition_script", lambda v: _script(ctx, v, (*key_path, "condition_script"))
        ),
    )


# --------------------------------------------------------------------------- conditions


def _condition(ctx: _Context, value: object, key_path: KeyPath) -> Condition:
    body = _table(ctx, value, key_path, 'condition = { env_set = ["CI"] }')
    known = ("condition_type", "files_modified", "fail_message", "channels", *_CONDITION_LIST_KEYS)
    _check_keys(ctx, body, key_path, (*known, *_CONDITION_MAP_KEYS), _CONDITION_RUST_KEYS)
    values: dict[str, Any] = {}
    for key in _CONDITION_LIST_KEYS:
        values[key] = _get(ctx, body, key_path, key, _str_list)
    for key in _CONDITION_MAP_KEYS:
        values[key] = _get(ctx, body, key_path, key, _str_map)
    values["fail_message"] = _optional(
        body, "fail_message", lambda v: _str(ctx, v, (*key_path, "fail_message"))
    )
    values["channels"] = _get(ctx, body, key_path, "channels", _str_list)
    values["files_modified"] = _optional(
        body, "files_modified", lambda v: _files_modified(ctx, v, (*key_path, "files_modified"))
    )
    return Condition(
        location=ctx.at(key_path),
        condition_type=_condition_type(ctx, body.get("condition_type", "And"), key_path),
        **values,
    )


def _condition_type(ctx: _Context, value: object, key_path: KeyPath) -> ConditionType:
    for kind in _CONDITION_TYPES:
        if value == kind:
            return kind
    raise ctx.fail(
        (*key_path, "condition_type"),
        f'must be "And", "Or" or "GroupOr" (found {value!r})',
    )


def _str_map(ctx: _Context, value: object, key_path: KeyPath) -> tuple[tuple[str, str], ...]:
    body = _table(ctx, value, key_path, f'{key_path[-1]} = {{ VAR = "value" }}')
    return tuple(
        (key, _str(ctx, item, (*key_path, key), f'{key} = "value"')) for key, item in body.items()
    )


def _files_modified(ctx: _Context, value: object, key_path: KeyPath) -> FilesModified:
    body = _table(ctx, value, key_path, 'files_modified = { input = ["src/**"], output = ["out"] }')
    _check_keys(ctx, body, key_path, ("input", "output"))
    return FilesModified(
        input=_str_list(ctx, body.get("input", []), (*key_path, "input")),
        output=_str_list(ctx, body.get("output", []), (*key_path, "output")),
    )


# --------------------------------------------------------------------------- environment


def _env_table(
    ctx: _Context, value: object, key_path: KeyPath, *, allow_profiles: bool
) -> tuple[EnvEntry, ...]:
    body = _table(ctx, value, key_path, 'env = { NAME = "value" }')
    return tuple(
        EnvEntry(
            key=key,
            value=_env_value(ctx, item, (*key_path, key), allow_profiles),
            location=ctx.at((*key_path, key)),
        )
        for key, item in body.items()
    )


def _env_value(ctx: _Context, value: object, key_path: KeyPath, allow_profiles: bool) -> EnvValue:
    # Checked in cargo-make's (serde untagged) order; bool before int since bool is an int.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # cargo-make's EnvValue has no float kind: serde fails to parse the file.
        raise ctx.fail(
            key_path,
            f"must be a string, boolean, integer, list of strings or table (found {value!r}, "
            "a float)",
            f'quote it: {key_path[-1]} = "{value}"',
        )
    if isinstance(value, list):
        return _str_list(ctx, value, key_path, f'{key_path[-1]} = ["a", "b"]')
    if isinstance(value, dict):
        return _env_table_value(ctx, value, key_path, allow_profiles)
    raise ctx.fail(key_path, f"is not a valid env value (found {type_name(value)})")


def _env_table_value(
    ctx: _Context, body: dict[str, Any], key_path: KeyPath, allow_profiles: bool
) -> EnvValue:
    if "unset" in body:
        _check_keys(ctx, body, key_path, ("unset",))
        return EnvUnset()
    if "script" in body:
        return _env_script(ctx, body, key_path)
    if "source" in body and "mapping" in body:
        return _env_decode(ctx, body, key_path)
    if "value" in body and set(body) <= {"value", "condition"}:
        return EnvConditional(
            value=_str(ctx, body["value"], (*key_path, "value")),
            condition=_optional(
                body, "condition", lambda v: _condition(ctx, v, (*key_path, "condition"))
            ),
        )
    if "glob" in body:
        return _env_glob(ctx, body, key_path)
    if allow_profiles:
        # Any other table is a profile block; profile blocks do not nest.
        return EnvProfile(entries=_env_table(ctx, body, key_path, allow_profiles=False))
    raise ctx.fail(
        key_path,
        "must be a string, boolean, number, list of strings, or a table with script, "
        "source/mapping, value, glob or unset (profile blocks cannot be nested)",
    )


def _env_script(ctx: _Context, body: dict[str, Any], key_path: KeyPath) -> EnvScript:
    _check_keys(ctx, body, key_path, ("script", "multi_line", "condition", "depends_on"))
    lines = body["script"]
    return EnvScript(
        lines=(lines,) if isinstance(lines, str) else _str_list(ctx, lines, (*key_path, "script")),
        multi_line=_bool(ctx, body.get("multi_line", False), (*key_path, "multi_line")),
        condition=_optional(
            body, "condition", lambda v: _condition(ctx, v, (*key_path, "condition"))
        ),
        depends_on=_str_list(ctx, body.get("depends_on", []), (*key_path, "depends_on")),
    )


def _env_decode(ctx: _Context, body: dict[str, Any], key_path: KeyPath) -> EnvDecode:
    _check_keys(ctx, body, key_path, ("source", "mapping", "default_value", "condition"))
    return EnvDecode(
        source=_str(ctx, body["source"], (*key_path, "source")),
        mapping=_str_map(ctx, body["mapping"], (*key_path, "mapping")),
        default_value=_optional(
            body, "default_value", lambda v: _str(ctx, v, (*key_path, "default_value"))
        ),
        condition=_optional(
            body, "condition", lambda v: _condition(ctx, v, (*key_path, "condition"))
        ),
    )


def _env_glob(ctx: _Context, body: dict[str, Any], key_path: KeyPath) -> EnvGlob:
    _check_keys(ctx, body, key_path, ("glob", "include_files", "include_dirs", "ignore_type"))
    return EnvGlob(
        glob=_str(ctx, body["glob"], (*key_path, "glob")),
        include_files=_bool(ctx, body.get("include_files", True), (*key_path, "include_files")),
        include_dirs=_bool(ctx, body.get("include_dirs", True), (*key_path, "include_dirs")),
        ignore_type=_optional(
            body, "ignore_type", lambda v: _str(ctx, v, (*key_path, "ignore_type"))
        ),
    )


def _env_files(ctx: _Context, value: object, key_path: KeyPath) -> tuple[EnvFile, ...]:
    if not isinstance(value, list):
        raise ctx.fail(
            key_path,
            'must be a list of paths or tables, e.g. env_files = ["./.env"] '
            f"(found {type_name(value)})",
        )
    return tuple(_env_file(ctx, item, (*key_path, index)) for index, item in enumerate(value))


def _env_file(ctx: _Context, item: object, key_path: KeyPath) -> EnvFile:
    if isinstance(item, str):
        return EnvFile(path=item, location=ctx.at(key_path))
    body = _table(ctx, item, key_path, 'env_files = [{ path = "./.env", profile = "ci" }]')
    _check_keys(ctx, body, key_path, ("path", "base_path", "profile", "defaults_only"))
    if "path" not in body:
        raise ctx.fail(key_path, 'needs a path, e.g. { path = "./.env" }')
    return EnvFile(
        path=_str(ctx, body["path"], (*key_path, "path")),
        location=ctx.at(key_path),
        base_path=_optional(body, "base_path", lambda v: _str(ctx, v, (*key_path, "base_path"))),
        profile=_optional(body, "profile", lambda v: _str(ctx, v, (*key_path, "profile"))),
        defaults_only=_bool(ctx, body.get("defaults_only", False), (*key_path, "defaults_only")),
    )


# --------------------------------------------------------------------------- config


def _config(ctx: _Context, value: object, key_path: KeyPath) -> Config:
    body = _table(ctx, value, key_path, "[config] with skip_core_tasks = true")
    for key in body:
        if key in _CONFIG_UNSUPPORTED_KEYS:
            ctx.warn((*key_path, key), f"{key!r} is not supported by pitstop, ignored")
    known = (
        *_CONFIG_BOOL_KEYS,
        *_CONFIG_STR_KEYS,
        "additional_profiles",
        "jobs",
        "modify_core_tasks",
    )
    _check_keys(
        ctx,
        body,
        key_path,
        (*known, *_CONFIG_UNSUPPORTED_KEYS),
        _CONFIG_RUST_KEYS,
        _CONFIG_RUST_HARMLESS,
    )
    values: dict[str, Any] = {}
    for key in _CONFIG_BOOL_KEYS:
        if key in body:
            values[key] = _bool(ctx, body[key], (*key_path, key))
    for key in _CONFIG_STR_KEYS:
        if key in body:
            values[key] = _str(ctx, body[key], (*key_path, key))
    if "additional_profiles" in body:
        values["additional_profiles"] = _str_list(
            ctx, body["additional_profiles"], (*key_path, "additional_profiles")
        )
    if "jobs" in body:
        values["jobs"] = _jobs(ctx, body["jobs"], (*key_path, "jobs"))
    if "modify_core_tasks" in body:
        values["modify_core_tasks"] = _modify_core_tasks(
            ctx, body["modify_core_tasks"], (*key_path, "modify_core_tasks")
        )
    return Config(**values)


def _modify_core_tasks(ctx: _Context, value: object, key_path: KeyPath) -> ModifyCoreTasks:
    body = _table(ctx, value, key_path, 'modify_core_tasks = { private = true, namespace = "x" }')
    _check_keys(ctx, body, key_path, ("private", "namespace"))
    return ModifyCoreTasks(
        private=_bool(ctx, body.get("private", False), (*key_path, "private")),
        namespace=_optional(body, "namespace", lambda v: _str(ctx, v, (*key_path, "namespace"))),
    )


def _jobs(ctx: _Context, value: object, key_path: KeyPath) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ctx.fail(key_path, f"must be a positive integer, e.g. jobs = 4 (found {value!r})")
