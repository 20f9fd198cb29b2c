"""The command line: parse, call the app, render errors. The one place that picks exit codes.

Heavy modules (asyncio, the watcher, the supervisor) are imported only by the commands that
need them, so `pitstop --list` starts fast. argparse too: an argv made of plain switches
(`--list`, `-q`, a task name last) is read by `_parse_switches`, which gives what the
parser gives (tests/unit/test_cli_switches.py compares them); importing argparse and
building the parser cost ~5 ms of every start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import cache
from types import SimpleNamespace

from pitstop import __version__
from pitstop.durations import parse_duration
from pitstop.errors import USAGE_EXIT_CODE, PitstopError, UserError
from pitstop.request import (
    Command,
    ControlFlags,
    ControlVerb,
    FileFlags,
    ListFlags,
    PlanFlags,
    RunFlags,
    UpFlags,
    UserRequest,
    WatchFlags,
)

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn, TextIO

# `pitstop up ...` is the up command, not a task named "up" (`pitstop -t up` runs such a task).
UP = "up"

# cargo-make flags that have no meaning for pitstop; accepted so existing scripts keep working.
_IGNORED_FLAGS = (
    "--no-workspace",
    "--disable-check-for-updates",
    "--experimental",
)
_IGNORED_VALUE_FLAGS = ("--output-file",)


@cache
def _argparse_classes() -> tuple[
    type[argparse.ArgumentParser],
    type[argparse.ArgumentParser],
    type[argparse.ArgumentParser],
    type[argparse.HelpFormatter],
]:
    """pitstop's parser and formatter classes: (main, up, verb, formatter).

    Made on first use, so that argparse is imported only when a parser is built.
    """
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UserError(f"{message} (see `pitstop --help`)")

    class UpParser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            hint = None
            if "--watch" in message:
                # `pitstop --watch TASK` is how a task is watched; `up` watches unasked.
                hint = "pitstop up watches every service's files already; --no-watch turns it off"
            raise UserError(f"pitstop up: {message} (see `pitstop up --help`)", hint=hint)

    class VerbParser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    class Formatter(argparse.HelpFormatter):
        """argparse's formatter, sized without `import shutil` (which pulls in bz2 and lzma).

        argparse makes a formatter for every add_argument, so that import (~3 ms) was paid
        at every start, though only --help needs the terminal's width.
        """

        def __init__(self, prog: str) -> None:
            super().__init__(prog, width=_terminal_columns() - 2)

    return Parser, UpParser, VerbParser, Formatter


def _terminal_columns() -> int:
    """What shutil.get_terminal_size().columns gives: $COLUMNS, the terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    stream = sys.__stdout__
    if columns <= 0 and stream is not None:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser_class, _, _, formatter = _argparse_classes()
    parser = parser_class(
        prog="pitstop",
        formatter_class=formatter,
        description=(
            "Run tasks from pitstop.toml or cargo-make's Makefile.toml; watch files and rerun; "
            "rebuild services in the background and swap them with zero downtime."
        ),
        epilog=(
            "Everything after TASK is passed to the task (${@} in args, $1.. in scripts). "
            # The subcommands are not argparse subparsers (a task may have their name), so
            # this line is the one place --help names them.
            "Services: `pitstop up [SERVICE...]` starts the file's service tasks (-d in the "
            "background); ps, logs, restart, rollback, stop, start, down and events talk to "
            "it (`pitstop up --help`, `pitstop logs --help`...)."
        ),
    )
    parser.add_argument("task", nargs="?", help="task to run (default: 'default')")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the task")
    files = parser.add_argument_group("task file")
    files.add_argument(
        "-f",
        "--makefile",
        metavar="FILE",
        help="task file (default: pitstop.toml, else Makefile.toml)",
    )
    files.add_argument(
        "-t",
        "--task",
        dest="task_flag",
        metavar="TASK",
        help="task to run (alternative to the positional TASK)",
    )
    files.add_argument("--cwd", metavar="DIR", help="run as if started in DIR")
    files.add_argument(
        "-p",
        "--profile",
        metavar="NAME",
        help="profile for [env.NAME] tables (default: development)",
    )
    files.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="set an env variable (repeatable)",
    )
    files.add_argument("--env-file", metavar="FILE", help="load env variables from FILE first")

    plan = parser.add_argument_group("plan")
    plan.add_argument("--allow-private", action="store_true", help="allow running a private task")
    plan.add_argument("--skip-tasks", metavar="REGEX", help="skip tasks whose name matches REGEX")
    plan.add_argument(
        "--skip-init-end-tasks", action="store_true", help="do not run the init and end tasks"
    )
    plan.add_argument(
        "--no-on-error", action="store_true", help="do not run the on_error_task on failure"
    )
    plan.add_argument(
        "-l",
        "--list",
        "--list-all-steps",
        dest="list_steps",
        action="store_true",
        help="list the tasks by category",
    )
    plan.add_argument(
        "--list-category-steps", metavar="CATEGORY", help="list the tasks of one category"
    )
    plan.add_argument(
        "--hide-uninteresting",
        action="store_true",
        help="leave init/end/empty and pre-/post- hooks out of --list",
    )
    plan.add_argument(
        "--print-steps", action="store_true", help="print the plan without running it"
    )
    plan.add_argument(
        "--output-format",
        default="default",
        metavar="FMT",
        help="for --print-steps: default or short-description",
    )

    run = parser.add_argument_group("run")
    run.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="run up to N tasks in parallel (default 1: one at a time, in plan order)",
    )
    run.add_argument(
        "--output",
        choices=("prefix", "group"),
        help="parallel output: prefix each line (default) or print each task's output as one block",
    )
    run.add_argument("--time-summary", action="store_true", help="print how long each task took")
    run.add_argument(
        "-q",
        "--quiet",
        "--silent",
        action="store_true",
        help="print only the tasks' own output and errors",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="trace scripts (set -x)")
    run.add_argument(
        "--loglevel",
        choices=("verbose", "info", "error", "off"),
        help="cargo-make's log level: error or off prints only the tasks' output and errors",
    )
    run.add_argument(
        "--stop-signal",
        default="SIGTERM",
        metavar="SIG",
        help="signal that stops a task's process group (default SIGTERM)",
    )
    run.add_argument(
        "--stop-timeout",
        default="5s",
        metavar="DUR",
        help="grace period before a stopped task is killed (default 5s)",
    )

    watch = parser.add_argument_group("watch")
    watch.add_argument(
        "-w", "--watch", action="store_true", help="rerun the task when files change"
    )
    watch.add_argument(
        "--watch-path",
        action="append",
        default=[],
        metavar="PATH",
        help="path to watch (repeatable; default: the task's watch paths, else the task file's folder)",
    )
    watch.add_argument(
        "--poll", action="store_true", help="poll for changes instead of using OS events"
    )
    watch.add_argument(
        "--no-git-ignore", action="store_true", help="do not honour .gitignore/.ignore files"
    )
    watch.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="ignore paths matching GLOB (repeatable)",
    )
    watch.add_argument("--exts", metavar="LIST", help="only watch these extensions, e.g. py,rs")
    watch.add_argument(
        "--debounce",
        default=None,
        metavar="MS",
        help="coalesce changes within MS milliseconds, or a duration such as 200ms (default 50)",
    )
    watch.add_argument(
        "--on-busy",
        choices=("queue", "restart", "ignore"),
        help="what a change does while a run is busy (default queue)",
    )
    watch.add_argument(
        "--why", action="store_true", help="print every changed path that triggered a run"
    )
    watch.add_argument("--clear", action="store_true", help="clear the screen before each run")
    watch.add_argument(
        "--postpone", action="store_true", help="wait for the first change before running"
    )

    misc = parser.add_argument_group("other")
    misc.add_argument(
        "--completions", choices=("bash", "zsh", "fish"), help="print a shell completion script"
    )
    misc.add_argument("--no-color", action="store_true", help="no colours (as NO_COLOR=1)")
    misc.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    misc.add_argument("--task-names", action="store_true", help=argparse.SUPPRESS)
    misc.add_argument("--service-names", action="store_true", help=argparse.SUPPRESS)
    misc.add_argument("-V", "--version", action="version", version=f"pitstop {__version__}")
    for flag in _IGNORED_FLAGS:
        misc.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in _IGNORED_VALUE_FLAGS:
        misc.add_argument(flag, help=argparse.SUPPRESS)
    return parser


def parse_request(argv: Sequence[str]) -> UserRequest:
    """argv -> the typed request; the one place that knows the flags' spelling."""
    options, adhoc = _parse_with_adhoc(list(argv))
    if options.completions:
        command = Command.COMPLETION
    elif options.task_names:
        command = Command.TASK_NAMES
    elif options.service_names:
        command = Command.SERVICE_NAMES
    elif options.list_steps or options.list_category_steps:
        command = Command.LIST
    elif options.print_steps:
        command = Command.PRINT_STEPS
    else:
        command = Command.RUN
    control = ControlFlags()
    if command is Command.RUN and options.task in CONTROL_VERBS and not options.task_flag:
        command = Command.CONTROL
        try:
            control = _verb_flags(options.task, options.args)
        except UserError as error:
            control = ControlFlags(verb=CONTROL_VERBS[options.task], usage_error=error.message)
    up = UpFlags()
    if command is Command.RUN and options.task == UP and not options.task_flag:
        command = Command.UP
        up, jobs = _up_flags(options.args)
        options.jobs = jobs if jobs is not None else options.jobs
        options.args = []
        up = up._replace(no_colour=up.no_colour or options.no_color)
    return UserRequest(
        command=command,
        task=options.task_flag or options.task,
        args=tuple(options.args),
        file=FileFlags(
            makefile=options.makefile,
            cwd=options.cwd,
            profile=options.profile,
            env=tuple(options.env),
            env_file=options.env_file,
        ),
        plan=PlanFlags(
            allow_private=options.allow_private,
            skip_tasks=options.skip_tasks,
            skip_init_end=options.skip_init_end_tasks,
            no_on_error=options.no_on_error,
        ),
        listing=ListFlags(
            category=options.list_category_steps,
            hide_uninteresting=options.hide_uninteresting,
            output_format=options.output_format,
        ),
        run=RunFlags(
            jobs=options.jobs,
            output=options.output,
            time_summary=options.time_summary,
            quiet=options.quiet or options.loglevel in ("error", "off"),
            verbose=options.verbose,
            stop_signal=options.stop_signal,
            stop_timeout=_duration(options.stop_timeout, "--stop-timeout"),
        ),
        watch=WatchFlags(
            enabled=options.watch,
            paths=tuple(options.watch_path),
            poll=options.poll,
            no_git_ignore=options.no_git_ignore,
            ignore=tuple(options.ignore),
            exts=tuple(e.strip().lstrip(".") for e in (options.exts or "").split(",") if e.strip()),
            debounce_ms=_milliseconds(options.debounce, "--debounce"),
            on_busy=options.on_busy,
            why=options.why,
            clear=options.clear,
            postpone=options.postpone,
        ),
        shell=options.completions,
        up=up,
        control=control,
        no_colour=options.no_color or up.no_colour,
        adhoc=adhoc,
    )


def _parse_with_adhoc(
    argv: list[str],
) -> tuple[argparse.Namespace | SimpleNamespace, tuple[str, ...]]:
    """The options, and the command of `pitstop --watch [FLAGS] -- COMMAND ARGS...` (no TASK
    before `--`); in `pitstop TASK -- ARGS` the `--` only ends pitstop's flags, as before."""
    switches = _parse_switches(argv)
    if switches is not None:
        return switches, ()
    if "--" in argv:
        split = argv.index("--")
        head = build_parser().parse_args(argv[:split])
        if head.watch and head.task is None:
            command = tuple(argv[split + 1 :])
            if not command:
                raise UserError(
                    "--watch --: no command after `--`",
                    hint="write e.g. `pitstop --watch -- pytest -x`",
                )
            return head, command
    return build_parser().parse_args(argv), ()


# Every flag that takes no value and sets one attribute (store_true), by each spelling.
_SWITCHES: dict[str, str] = {
    "--allow-private": "allow_private",
    "--skip-init-end-tasks": "skip_init_end_tasks",
    "--no-on-error": "no_on_error",
    "-l": "list_steps",
    "--list": "list_steps",
    "--list-all-steps": "list_steps",
    "--hide-uninteresting": "hide_uninteresting",
    "--print-steps": "print_steps",
    "--time-summary": "time_summary",
    "-q": "quiet",
    "--quiet": "quiet",
    "--silent": "quiet",
    "-v": "verbose",
    "--verbose": "verbose",
    "-w": "watch",
    "--watch": "watch",
    "--poll": "poll",
    "--no-git-ignore": "no_git_ignore",
    "--why": "why",
    "--clear": "clear",
    "--postpone": "postpone",
    "--no-color": "no_color",
    "--debug": "debug",
    "--task-names": "task_names",
    "--service-names": "service_names",
    **{flag: flag[2:].replace("-", "_") for flag in _IGNORED_FLAGS},
}
# What `build_parser().parse_args([])` gives; lists are made afresh for each parse.
_DEFAULTS: dict[str, object] = {
    **dict.fromkeys(_SWITCHES.values(), False),
    **dict.fromkeys(
        (
            "task",
            "makefile",
            "task_flag",
            "cwd",
            "profile",
            "env_file",
            "skip_tasks",
            "list_category_steps",
            "jobs",
            "output",
            "loglevel",
            "exts",
            "debounce",
            "on_busy",
            "completions",
            *(flag[2:].replace("-", "_") for flag in _IGNORED_VALUE_FLAGS),
        )
    ),
    "output_format": "default",
    "stop_signal": "SIGTERM",
    "stop_timeout": "5s",
}
_LIST_DEFAULTS = ("args", "env", "watch_path", "ignore")


def _parse_switches(argv: Sequence[str]) -> SimpleNamespace | None:
    """What build_parser().parse_args(argv) gives, for an argv of exact switch spellings
    and at most a task name at the end (nothing after it); None for anything else.

    Abbreviations (`--lis`), joined short flags (`-lq`), values, `--`, a task name followed
    by arguments, and the names of `up` and the control verbs (which parse further) all go
    to argparse.
    """
    flags = list(argv)
    task = None
    if flags and flags[-1] not in _SWITCHES:
        task = flags.pop()
        if not task or task.startswith("-") or task == UP or task in CONTROL_VERBS:
            return None
    if not all(flag in _SWITCHES for flag in flags):
        return None
    values = dict(_DEFAULTS, task=task)
    values.update((name, []) for name in _LIST_DEFAULTS)
    values.update((_SWITCHES[flag], True) for flag in flags)
    return SimpleNamespace(**values)


# `pitstop ps ...` asks the running `pitstop up`; a task named so runs with `pitstop -t ps`.
CONTROL_VERBS: dict[str, ControlVerb] = {
    "ps": "ps",
    "logs": "logs",
    "restart": "restart",
    "stop": "stop",
    "start": "start",
    "down": "down",
    "events": "events",
    "rollback": "rollback",
}
_VERB_HELP = {
    "ps": "the services of the running `pitstop up`: state, version, pid, address, uptime",
    "logs": "the services' last output lines, interleaved by time; -f follows",
    "restart": "rebuild the services and swap them, without downtime",
    "stop": "stop the services (the others keep running)",
    "start": "start stopped services",
    "down": "stop every service; the daemon exits",
    "events": "the live event stream",
    "rollback": "swap a service back to a kept build (artifacts), without a build or downtime",
}


def verb_parser(verb: str) -> argparse.ArgumentParser:
    """The flags after `pitstop VERB` (also what shell completion offers there)."""
    _, _, parser_class, formatter = _argparse_classes()
    parser = parser_class(
        prog=f"pitstop {verb}", formatter_class=formatter, description=_VERB_HELP[verb]
    )
    if verb in ("logs", "restart", "stop", "start"):
        parser.add_argument("services", nargs="*" if verb == "logs" else "+", metavar="SERVICE")
    if verb == "rollback":
        parser.add_argument("services", nargs=1, metavar="SERVICE")
        parser.add_argument(
            "version", nargs="?", type=int, metavar="VERSION", help="default: the one before"
        )
    if verb in ("ps", "events"):
        parser.add_argument("--json", action="store_true", help="JSON (events: one per line)")
    if verb == "logs":
        parser.add_argument("-f", "--follow", action="store_true", help="then follow")
        parser.add_argument(
            "-n", "--lines", type=int, default=100, metavar="N", help="last N lines (100)"
        )
    return parser


def _verb_flags(verb: str, argv: Sequence[str]) -> ControlFlags:
    """`pitstop VERB ...`: the flags after the verb."""
    options = verb_parser(verb).parse_args(list(argv))
    lines = getattr(options, "lines", 100)
    if lines < 0:
        raise UserError(f"-n {lines}: give a number of lines, 0 or more")
    return ControlFlags(
        verb=CONTROL_VERBS[verb],
        services=tuple(getattr(options, "services", ())),
        json=getattr(options, "json", False),
        follow=getattr(options, "follow", False),
        lines=lines,
        version=getattr(options, "version", None),
    )


def up_parser() -> argparse.ArgumentParser:
    """The flags after `pitstop up` (also what shell completion offers there)."""
    _, parser_class, _, formatter = _argparse_classes()
    parser = parser_class(
        prog="pitstop up",
        formatter_class=formatter,
        description="Start every service task (or the named ones and the services they depend "
        "on), rebuild and swap each on its own changes; Ctrl-C stops them all.",
    )
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--no-watch", action="store_true", help="do not rebuild on changes")
    parser.add_argument("-j", "--jobs", type=int, metavar="N", help="builds in parallel")
    parser.add_argument("-d", "--detach", action="store_true", help="run as a daemon")
    parser.add_argument("--no-color", action="store_true", help="no colours")
    return parser


def _up_flags(argv: Sequence[str]) -> tuple[UpFlags, int | None]:
    """`pitstop up [SERVICE...] [--no-watch] [-j N] [-d]`: the flags after `up`."""
    options = up_parser().parse_args(list(argv))
    flags = UpFlags(
        services=tuple(options.services),
        watch=not options.no_watch,
        detach=options.detach,
        no_colour=options.no_color,
    )
    return flags, options.jobs


def _duration(text: str, flag: str) -> float:
    """A flag's duration, in the task file's grammar (`pitstop.durations`)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise UserError(f"{flag} {text!r}: {error}", hint="write e.g. 500ms, 5s, 1m30s") from None


def _milliseconds(text: str | None, flag: str) -> int | None:
    """A bare number is milliseconds here (as it always was for --debounce); else a duration."""
    if text is None:
        return None
    if text.strip().isdigit():
        return int(text)
    return round(_duration(text, flag) * 1000)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):
        # What argparse's version action prints, without building the whole parser first.
        print(f"pitstop {__version__}")
        return 0
    debug = "--debug" in args_list
    try:
        request = parse_request(args_list)
        if request.no_colour:
            # Every printer (and error_colour) already honours NO_COLOR; so do the tasks' tools.
            os.environ["NO_COLOR"] = "1"
        if request.command is Command.COMPLETION:
            assert request.shell is not None
            sys.stdout.write(_completion_script(request.shell))
            return 0
        from pitstop.app.dispatch import dispatch

        return dispatch(request, sys.stdout, sys.stderr)
    except PitstopError as error:
        if debug:
            import traceback

            traceback.print_exc()
        render_error(error, sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `pitstop --list | head`: the reader went away; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def render_error(error: PitstopError, stream: TextIO) -> None:
    """`error: message`, then the file:line, the source line with a caret, and a hint."""
    from pitstop.engine.output import error_colour, format_error

    stream.write(format_error(error, colour=error_colour(stream)))
    stream.flush()


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = [
    "USAGE_EXIT_CODE",
    "build_parser",
    "main",
    "parse_request",
    "render_error",
    "up_parser",
    "verb_parser",
]


def _completion_script(shell: str) -> str:
    """Generated from the parsers themselves, so that every flag is offered."""
    from pitstop.completion import completion_script

    subcommands = {
        UP: (up_parser(), "start every service task, rebuild and swap each on its changes")
    }
    subcommands.update({verb: (verb_parser(verb), _VERB_HELP[verb]) for verb in CONTROL_VERBS})
    return completion_script(shell, build_parser(), subcommands)
