"""The task file model: frozen records (pitstop.records, like frozen dataclasses), no I/O.

Attributes keep cargo-make's "unset" state (None) apart from an explicit value, because
`extend`, platform overrides and file merges override only what the extending side sets.
Every node carries the Location it was declared at, for error messages.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pitstop.errors import Location
from pitstop.records import field, fields, record
from pitstop.records import replace as _replace

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    # only in annotations: files without a service need not load its parser
    from pitstop.taskfile.service import ServiceSpec

    Platform = Literal["linux", "mac", "windows"]
    ConditionType = Literal["And", "Or", "GroupOr"]
else:
    # Names that other modules import; only their annotations use them.
    Platform = ConditionType = str


def current_platform() -> Platform:
    """cargo-make's platform name: every OS but Windows and macOS counts as linux."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "mac"
    return "linux"


# --------------------------------------------------------------------------- environment


@record
class EnvScript:
    """`{ script = [...], multi_line?, condition?, depends_on? }`: value is the script's output."""

    lines: tuple[str, ...]
    multi_line: bool = False
    condition: Condition | None = None
    depends_on: tuple[str, ...] = ()


@record
class EnvDecode:
    """`{ source, mapping, default_value? }`: look the expanded source up in mapping."""

    source: str
    mapping: tuple[tuple[str, str], ...]
    default_value: str | None = None
    condition: Condition | None = None


@record
class EnvConditional:
    """`{ value, condition }`: set only when the condition holds."""

    value: str
    condition: Condition | None = None


@record
class EnvGlob:
    """`{ glob, include_files?, include_dirs?, ignore_type? }`: matching paths joined by `;`."""

    glob: str
    include_files: bool = True
    include_dirs: bool = True
    ignore_type: str | None = None


@record
class EnvUnset:
    """`{ unset = true }`: remove the variable."""


@record
class EnvProfile:
    """`[env.NAME]`: entries applied only under profile NAME (or an additional profile)."""

    entries: tuple[EnvEntry, ...]


# str (already a string; bools and numbers are converted at validation), list of strings,
# or one of the tables above.
EnvValue = (
    str | tuple[str, ...] | EnvScript | EnvDecode | EnvConditional | EnvGlob | EnvUnset | EnvProfile
)


@record
class EnvEntry:
    """One `KEY = value` of an env table."""

    key: str
    value: EnvValue
    location: Location


@record
class EnvFile:
    """An `env_files` item: a path, or `{ path, base_path?, profile?, defaults_only? }`."""

    path: str
    location: Location
    base_path: str | None = None
    profile: str | None = None
    defaults_only: bool = False


# --------------------------------------------------------------------------- conditions


@record
class FilesModified:
    """cargo-make's `files_modified` condition: input globs against output globs."""

    input: tuple[str, ...]
    output: tuple[str, ...]


@record
class Condition:
    """A task's `condition` table. Criteria left unset are None (they pass)."""

    location: Location
    condition_type: ConditionType = "And"
    platforms: tuple[str, ...] | None = None
    profiles: tuple[str, ...] | None = None
    env_set: tuple[str, ...] | None = None
    env_not_set: tuple[str, ...] | None = None
    env_true: tuple[str, ...] | None = None
    env_false: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] | None = None
    env_not: tuple[tuple[str, str], ...] | None = None
    env_contains: tuple[tuple[str, str], ...] | None = None
    files_exist: tuple[str, ...] | None = None
    files_not_exist: tuple[str, ...] | None = None
    files_modified: FilesModified | None = None
    fail_message: str | None = None
    # Rust channels (stable, beta, nightly): checked against `rustc --version`.
    channels: tuple[str, ...] | None = None


# --------------------------------------------------------------------------- actions


@record
class ScriptFile:
    """`script = { file = "x.sh", absolute_path? }`."""

    file: str
    absolute_path: bool = False


@record
class ScriptSections:
    """`script = { pre?, main?, post? }`: merged section by section on extend."""

    pre: str | None = None
    main: str | None = None
    post: str | None = None


# A plain script is its text (a list of lines is joined with newlines at validation).
Script = str | ScriptFile | ScriptSections


@record
class RunTaskSpec:
    """One `run_task` entry (the routing form is a tuple of these, first match wins)."""

    names: tuple[str, ...]
    location: Location
    fork: bool = False
    parallel: bool = False
    cleanup_task: str | None = None
    condition: Condition | None = None
    condition_script: Script | None = None


@record
class InstallCrate:
    """`install_crate`. pitstop installs nothing: it checks that the tool is there and, when
    it is not, fails naming what to install. `enabled = False` (install_crate = false) skips
    the check."""

    enabled: bool = True
    crate_name: str | None = None
    binary: str | None = None
    test_arg: tuple[str, ...] = ()
    rustup_component: str | None = None


@record
class Dependency:
    """A `dependencies` item: a name, or `{ name, path }` for a task in another file."""

    name: str
    location: Location
    path: str | None = None


@record
class WatchOptions:
    """cargo-make's `watch` attribute (`true` or a table), plus pitstop's own keys."""

    enabled: bool = True
    postpone: bool = False
    ignore_pattern: tuple[str, ...] = ()
    no_git_ignore: bool = False
    paths: tuple[str, ...] = ()
    why: bool = False


# --------------------------------------------------------------------------- tasks


@record
class Task:
    """One `[tasks.NAME]` table, as written (not yet normalised)."""

    name: str
    location: Location
    clear: bool | None = None
    description: str | None = None
    category: str | None = None
    disabled: bool | None = None
    private: bool | None = None
    deprecated: bool | str | None = None
    extend: str | None = None
    watch: WatchOptions | None = None
    condition: Condition | None = None
    condition_script: Script | None = None
    condition_script_runner_args: tuple[str, ...] | None = None
    ignore_errors: bool | None = None
    force: bool | None = None
    env_files: tuple[EnvFile, ...] | None = None
    env: tuple[EnvEntry, ...] | None = None
    cwd: str | None = None
    alias: str | None = None
    linux_alias: str | None = None
    mac_alias: str | None = None
    windows_alias: str | None = None
    command: str | None = None
    args: tuple[str, ...] | None = None
    script: Script | None = None
    script_runner: str | None = None
    script_runner_args: tuple[str, ...] | None = None
    script_extension: str | None = None
    install_crate: InstallCrate | None = None
    toolchain: str | None = None
    run_task: tuple[RunTaskSpec, ...] | None = None
    dependencies: tuple[Dependency, ...] | None = None
    # pitstop's extension: a long-running task, checked when the file loads.
    service: ServiceSpec | None = None
    linux: Task | None = None
    mac: Task | None = None
    windows: Task | None = None
    # Line of each key as written, for messages that point at one attribute.
    key_locations: dict[str, Location] = field(default_factory=dict, compare=False)

    def where(self, key: str) -> Location:
        """The location of attribute `key`, or of the task table if it was not written."""
        return self.key_locations.get(key, self.location)

    def is_set(self, attribute: str) -> bool:
        return getattr(self, attribute) is not None

    def replace(self, **changes: Any) -> Task:
        """A copy with `changes` (pitstop.records.replace; kept as a method for its callers)."""
        return _replace(self, **changes)

    def actions(self) -> list[str]:
        """The action attributes this task sets (at most one is allowed)."""
        return [a for a in ("command", "script", "run_task") if getattr(self, a) is not None]


# Attributes that describe a task rather than configure it: a platform override never takes
# them from the override table, and `Task.extend` treats them like any other attribute.
TASK_ATTRIBUTES: tuple[str, ...] = tuple(
    name
    for name in fields(Task)
    if name not in ("name", "location", "key_locations", "linux", "mac", "windows")
)


# --------------------------------------------------------------------------- the file


@record
class ModifyCoreTasks:
    """`[config] modify_core_tasks`: how the built-in Rust tasks are loaded (SEMANTICS §2.1)."""

    private: bool = False
    namespace: str | None = None


@record
class Config:
    """The `[config]` table (only the keys that are not Rust-specific)."""

    skip_core_tasks: bool = False
    init_task: str | None = "init"
    end_task: str | None = "end"
    on_error_task: str | None = None
    default_task_name: str | None = None
    additional_profiles: tuple[str, ...] = ()
    reduce_output: bool | None = None
    time_summary: bool | None = None
    modify_core_tasks: ModifyCoreTasks | None = None
    jobs: int | None = None
    min_version: str | None = None


@record
class Warning_:
    """A problem that does not stop the run (an unknown key, an unsupported attribute)."""

    message: str
    location: Location


@record
class Taskfile:
    """Everything read from the task file(s), merged (extended files below the user file)."""

    path: Path
    tasks: dict[str, Task]
    env: tuple[EnvEntry, ...] = ()
    env_files: tuple[EnvFile, ...] = ()
    env_scripts: tuple[str, ...] = ()
    config: Config = Config()
    warnings: tuple[Warning_, ...] = ()
    in_memory: bool = False  # made from the command line (`--watch -- COMMAND`), no file

    @property
    def directory(self) -> Path:
        return self.path.parent
