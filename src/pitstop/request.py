"""The typed request: what the command line asked for, as values, before any file is read.

`cli` builds a `UserRequest` from argv; everything below `cli` takes it (or a part of it) and
never sees argparse. A field is `None` where the flag was not given, so that `settings` can
resolve it once: flag > environment variable > task file > default.

Imports nothing heavy: `pitstop --list` builds one of these too. The values are NamedTuples,
not frozen dataclasses: as immutable and as typed, and creating the classes costs about a
tenth (measured: 0.4 ms against 4.8 ms of CPU for seven classes) on every start.

Not even typing (~2.5 ms, and `--list` needs it nowhere else): type checkers see
typing.NamedTuple and the Literal types; at run time the classes are made by
`collections.namedtuple`, as typing.NamedTuple makes them (tests/unit/test_request.py
compares the two), and the Literal names are plain `str`.
"""

from __future__ import annotations

from enum import Enum

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, NamedTuple

    OnBusyChoice = Literal["queue", "restart", "ignore"]
    OutputChoice = Literal["prefix", "group"]
    Shell = Literal["bash", "zsh", "fish"]
    ControlVerb = Literal["ps", "logs", "restart", "stop", "start", "down", "events", "rollback"]
else:
    OnBusyChoice = OutputChoice = Shell = ControlVerb = str

    class _NamedTupleType(type):
        """`class X(NamedTuple): field: type = default`, made as typing.NamedTuple makes it."""

        def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]):
            if not bases:  # NamedTuple itself
                return super().__new__(mcs, name, bases, namespace)
            from collections import namedtuple

            annotations = dict(namespace.get("__annotations__", {}))
            fields = tuple(annotations)
            defaults = [namespace[field] for field in fields if field in namespace]
            if any(field in namespace for field in fields[: len(fields) - len(defaults)]):
                raise TypeError(f"{name}: a field without a default follows one with")
            made = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            made.__annotations__ = annotations
            for key, value in namespace.items():
                if key not in fields and key not in ("__module__", "__qualname__"):
                    setattr(made, key, value)
            return made

    class NamedTuple(metaclass=_NamedTupleType):
        pass


class Command(Enum):
    """What pitstop does with the task file. Whether a run watches or serves is decided by
    the task file too (`watch = true`, `service = {...}`), so those are settings of RUN."""

    RUN = "run"  # run the task: once, watching (--watch, `watch`), or as a service
    LIST = "list"  # --list, --list-category-steps
    PRINT_STEPS = "print-steps"  # --print-steps
    TASK_NAMES = "task-names"  # --task-names (for shell completion)
    SERVICE_NAMES = "service-names"  # --service-names: tasks with a service table (completion)
    COMPLETION = "completion"  # --completions SHELL: needs no task file
    UP = "up"  # `pitstop up [SERVICE...]`: every service task (or the named ones), supervised
    CONTROL = "control"  # `pitstop ps|logs|restart|stop|start|down|events`: ask the running up


class FileFlags(NamedTuple):
    """Which task file, where, and the environment it starts from."""

    makefile: str | None = None  # -f
    cwd: str | None = None  # --cwd
    profile: str | None = None  # -p
    env: tuple[str, ...] = ()  # -e K=V (repeatable)
    env_file: str | None = None  # --env-file


class PlanFlags(NamedTuple):
    allow_private: bool = False
    skip_tasks: str | None = None  # a regular expression, compiled by `settings`
    skip_init_end: bool = False
    no_on_error: bool = False


class ListFlags(NamedTuple):
    category: str | None = None  # --list-category-steps
    hide_uninteresting: bool = False
    output_format: str = "default"  # --print-steps: default or short-description


class RunFlags(NamedTuple):
    jobs: int | None = None
    output: OutputChoice | None = None
    time_summary: bool = False
    quiet: bool = False  # -q, or --loglevel error/off
    verbose: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout: float = 5.0  # seconds (`pitstop.durations`)


class WatchFlags(NamedTuple):
    enabled: bool = False  # --watch
    paths: tuple[str, ...] = ()
    poll: bool = False
    no_git_ignore: bool = False
    ignore: tuple[str, ...] = ()
    exts: tuple[str, ...] = ()
    debounce_ms: int | None = None
    on_busy: OnBusyChoice | None = None
    why: bool = False
    clear: bool = False
    postpone: bool = False


class UpFlags(NamedTuple):
    services: tuple[str, ...] = ()  # none: every service task
    watch: bool = True  # --no-watch turns it off
    detach: bool = False  # -d: run as a daemon
    no_colour: bool = False  # --no-color


class ControlFlags(NamedTuple):
    """A verb for the project's running `pitstop up` (through its control socket)."""

    verb: ControlVerb = "ps"
    services: tuple[str, ...] = ()
    json: bool = False  # ps --json, events --json
    follow: bool = False  # logs -f
    lines: int = 100  # logs -n
    version: int | None = None  # rollback SERVICE [VERSION]
    # The verb's flags did not parse. Raised only if the verb is meant: in a file with no
    # service, a task of the verb's name (`start`, `logs`...) runs instead, with these args.
    usage_error: str | None = None


class UserRequest(NamedTuple):
    command: Command
    task: str | None = None  # -t, else the positional TASK; None: the file's default task
    args: tuple[str, ...] = ()  # everything after TASK
    file: FileFlags = FileFlags()
    plan: PlanFlags = PlanFlags()
    listing: ListFlags = ListFlags()
    run: RunFlags = RunFlags()
    watch: WatchFlags = WatchFlags()
    shell: Shell | None = None  # for COMPLETION
    up: UpFlags = UpFlags()  # for UP
    control: ControlFlags = ControlFlags()  # for CONTROL
    no_colour: bool = False  # --no-color: as NO_COLOR=1 (https://no-color.org), for the tasks too
    adhoc: tuple[str, ...] = ()  # `--watch -- COMMAND ARGS...`: watch and rerun, no task file
