"""argv -> the typed request: what `cli` hands to the app instead of argparse's Namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.cli import parse_request
from pitstop.errors import UserError
from pitstop.request import Command


def test_a_plain_task_is_a_run_with_its_arguments() -> None:
    request = parse_request(["build", "--release", "x"])
    assert request.command is Command.RUN
    assert request.task == "build"
    assert request.args == ("--release", "x")
    assert request.run.jobs is None  # not given: resolved later from env / task file


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--list"], Command.LIST),
        (["--list-category-steps", "Build"], Command.LIST),
        (["--print-steps", "build"], Command.PRINT_STEPS),
        (["--task-names"], Command.TASK_NAMES),
        (["--completions", "fish"], Command.COMPLETION),
    ],
)
def test_listing_flags_pick_the_command(argv: list[str], command: Command) -> None:
    assert parse_request(argv).command is command


def test_durations_in_flags_use_the_task_file_grammar() -> None:
    assert parse_request(["--stop-timeout", "1m30s"]).run.stop_timeout == 90.0
    assert parse_request(["--stop-timeout", "2"]).run.stop_timeout == 2.0
    assert parse_request(["--debounce", "200ms"]).watch.debounce_ms == 200
    assert parse_request(["--debounce", "75"]).watch.debounce_ms == 75  # bare: milliseconds


def test_a_bad_duration_is_a_user_error_naming_the_flag() -> None:
    with pytest.raises(UserError, match="--stop-timeout 'soon'"):
        parse_request(["--stop-timeout", "soon"])


def test_loglevel_error_means_quiet_and_task_flag_wins() -> None:
    request = parse_request(["--loglevel", "error", "-t", "flagged", "positional"])
    assert request.run.quiet
    assert request.task == "flagged"


def test_watch_flags_are_typed() -> None:
    request = parse_request(
        ["-w", "--exts", "py, .rs", "--ignore", "a*", "--ignore", "b*", "--on-busy", "ignore"]
    )
    assert request.watch.enabled
    assert request.watch.exts == ("py", "rs")
    assert request.watch.ignore == ("a*", "b*")
    assert request.watch.on_busy == "ignore"


def test_the_request_classes_are_what_typing_namedtuple_makes() -> None:
    """request.py makes its NamedTuples without typing; the same source run with typing's
    NamedTuple (as a type checker reads it) gives the same fields, defaults and docs."""
    import typing

    import pitstop.request as ours

    source = (
        Path(ours.__file__).read_text().replace("TYPE_CHECKING = False", "TYPE_CHECKING = True")
    )
    theirs: dict[str, object] = {"__name__": "pitstop.request_with_typing"}
    exec(compile(source, "request_with_typing.py", "exec"), theirs)
    assert theirs["NamedTuple"] is typing.NamedTuple
    names = [n for n, v in vars(ours).items() if isinstance(v, type) and issubclass(v, tuple)]
    assert len(names) == 8
    for name in names:
        mine, typed = getattr(ours, name), theirs[name]
        assert isinstance(typed, type)
        assert mine._fields == typed._fields, name
        assert mine._field_defaults == typed._field_defaults, name
        assert mine.__doc__ == typed.__doc__, name
        assert mine.__module__ == "pitstop.request" and mine.__qualname__ == name
        assert list(mine.__annotations__) == list(typed.__annotations__), name
        assert issubclass(mine, tuple) and not hasattr(mine, "__orig_bases__")
    assert ours.UserRequest(ours.Command.LIST)._replace(task="t").task == "t"


def test_a_field_without_a_default_after_one_with_is_refused() -> None:
    import pitstop.request as ours

    with pytest.raises(TypeError, match="without a default"):

        class Bad(ours.NamedTuple):  # type: ignore[misc]
            a: int = 1
            b: int


def test_help_names_up_and_every_control_verb() -> None:
    from pitstop.cli import CONTROL_VERBS, build_parser

    text = " ".join(build_parser().format_help().split())
    assert "`pitstop up [SERVICE...]`" in text
    for verb in CONTROL_VERBS:
        assert f" {verb}" in text.split("Services:")[1], verb
