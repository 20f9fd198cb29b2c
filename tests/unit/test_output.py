"""The one printer: task, service and error events in, lines out on the streams it was given."""

from __future__ import annotations

import io
from pathlib import Path

from pitstop.cli import render_error
from pitstop.engine.events import ErrorReported, Notice, Source, TaskOutput
from pitstop.engine.output import Printer
from pitstop.errors import Location, TaskFileError
from pitstop.supervisor.events import BuildStarted, InstanceOutput, RolledBack, Status


def printer() -> tuple[Printer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Printer(out, err, colour=False), out, err


def test_an_error_during_watch_reads_like_the_cli_s(tmp_path: Path) -> None:
    taskfile = tmp_path / "pitstop.toml"
    taskfile.write_text("[tasks.a]\ncommand = 3\n")
    error = TaskFileError("command must be a string", Location(taskfile, 2, 11), "quote it")
    p, out, err = printer()
    p(ErrorReported(error, Source("a")))
    cli_err = io.StringIO()
    render_error(error, cli_err)
    assert err.getvalue() == cli_err.getvalue()
    assert "error: command must be a string" in err.getvalue()
    assert "2 | command = 3\n  |           ^\n" in err.getvalue()
    assert out.getvalue() == ""


def test_service_events_are_printed_with_their_source() -> None:
    p, out, err = printer()
    p(InstanceOutput(2, "stdout", "listening", service="web"))
    p(InstanceOutput(2, "stderr", "warming up", service="web"))
    p(RolledBack(3, "not ready after 5s", 2, service="web"))
    p(Status("serving #2", service="web"))
    p(BuildStarted(4, service="web"))  # shown by the status line, not on its own
    assert out.getvalue() == "web#2 | listening\n"
    assert err.getvalue().splitlines() == [
        "web#2 | warming up",
        "[pitstop] ERROR - instance #3 rolled back: not ready after 5s; #2 keeps serving",
        "[pitstop] INFO - serving #2",
    ]


def test_events_name_their_source() -> None:
    assert TaskOutput("build", "stdout", "x").source == Source("build")
    assert RolledBack(3, "why", service="web").source == Source("web", 3)
    assert Status("idle", service="web").source == Source("web")
    assert Notice("info", "hello").source is None  # pitstop itself


def test_clear_screen_goes_to_the_error_stream() -> None:
    p, out, err = printer()
    p.clear_screen()
    assert out.getvalue() == ""
    assert err.getvalue() == "\x1b[2J\x1b[3J\x1b[H"
