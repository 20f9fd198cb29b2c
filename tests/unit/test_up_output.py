"""What `pitstop up` prints: one stream, each line prefixed with its service; plain event lines
off a terminal; on a terminal, a status table kept at the bottom."""

from __future__ import annotations

import io

import pytest

from pitstop.engine.output import OutputMode, Printer, format_status_table
from pitstop.manager.status import ServiceState, ServiceStatus, StateChanged, status_json
from pitstop.supervisor import events as ev


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def status(
    name: str = "api", state: ServiceState = ServiceState.SERVING, **changes: object
) -> ServiceStatus:
    values: dict[str, object] = {
        "name": name,
        "state": state,
        "version": 2,
        "pid": 4711,
        "address": "127.0.0.1:8080",
        "restarts": 0,
        "swaps": 1,
        "started_at": 1000.0,
        "last_build_ok": True,
        "last_build_s": 0.5,
        "reason": None,
        "cpu_percent": None,
        "rss_bytes": None,
    }
    values.update(changes)
    return ServiceStatus(**values)  # type: ignore[arg-type]


def test_off_a_terminal_state_changes_are_plain_prefixed_lines() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = Printer(out, err, services=True)
    printer.prepare(["api", "web"])
    printer(StateChanged(status()))
    printer(
        StateChanged(
            status("web", ServiceState.BLOCKED, version=None, pid=None, reason="waiting for api")
        )
    )
    printer(ev.InstanceOutput(2, "stdout", "hello", service="api"))
    printer(ev.Status("serving #2", service="api"))  # the table and the lines say it already
    assert err.getvalue().splitlines() == [
        "api | serving #2 (pid 4711) on 127.0.0.1:8080 · 1 swap · last build ok in 0.50s",
        "web | blocked: waiting for api",
    ]
    assert out.getvalue() == "api#2 | hello\n"
    assert "\x1b" not in out.getvalue() + err.getvalue()


def test_no_color_turns_the_prefix_colours_off_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    err = Terminal()
    printer = Printer(Terminal(), err, services=True)
    printer(StateChanged(status()))
    assert "\x1b" not in err.getvalue()
    monkeypatch.delenv("NO_COLOR")
    coloured = Terminal()
    Printer(Terminal(), coloured, services=True)(StateChanged(status()))
    assert "\x1b[" in coloured.getvalue()


def test_on_a_terminal_the_table_stays_below_every_line() -> None:
    err = Terminal()
    rows = [status(), status("web", ServiceState.BUILDING, version=None, pid=None, started_at=None)]
    printer = Printer(io.StringIO(), err, services=True, colour=False, footer=lambda: rows)
    printer(StateChanged(rows[0]))
    printer(StateChanged(rows[1]))
    text = err.getvalue()
    # The second line erased the three lines of the table first, then drew it again.
    first, second = text.split("\x1b[3F\x1b[J")
    assert first.startswith("api | serving #2")
    assert second.startswith("web | building\n")
    table = second.splitlines()[1:]
    assert table[0].startswith("\x1b[7mSERVICE") or table[0].startswith("SERVICE")
    assert table[1].split()[:4] == ["api", "serving", "#2", "4711"]
    assert table[2].split()[:4] == ["web", "building", "-", "-"]
    printer.close_footer()
    assert err.getvalue().endswith("\x1b[3F\x1b[J")


def test_the_table_cuts_lines_to_the_terminal_width() -> None:
    rows = [status(reason="x" * 200)]
    lines = format_status_table(rows, now=1065.0, width=60)
    assert all(len(line) <= 59 for line in lines)
    full = format_status_table(rows, now=1065.0)
    assert full[1].split()[:11] == [
        "api",
        "serving",
        "#2",
        "4711",
        "-",
        "-",
        "127.0.0.1:8080",
        "1m05s",
        "1",
        "0",
        "ok",
    ]
    assert full[1].endswith("x" * 200)


def test_status_json_has_the_fields_of_ps() -> None:
    row = status_json(status(served=1204, failed=0), now=1010.0)
    assert row == {
        "name": "api",
        "state": "serving",
        "version": 2,
        "pid": 4711,
        "address": "127.0.0.1:8080",
        "restarts": 0,
        "swaps": 1,
        "uptime_s": 10.0,
        "last_build_ok": True,
        "last_build_s": 0.5,
        "reason": None,
        "cpu_percent": None,
        "rss_bytes": None,
        "served": 1204,
        "failed": 0,
        "dropped": None,
        "reset": None,
    }


def test_status_json_has_no_served_count_in_socket_mode() -> None:
    row = status_json(status(failed=3, dropped=2, reset=1), now=1010.0)
    assert (row["served"], row["failed"], row["dropped"], row["reset"]) == (None, 3, 2, 1)
    assert status_json(status(), now=1010.0)["failed"] is None  # nothing counted at all


def test_a_socket_mode_swap_line_says_what_the_listeners_counted() -> None:
    swap = ev.SwapFinished(7, 8, 212, failed=3, dropped=2, reset=1)
    assert swap.summary == "swap #7 → #8 in 212 ms · listeners: 2 dropped, 1 reset"
    assert "served" not in swap.summary


def test_a_swap_line_ends_with_its_counts() -> None:
    swap = ev.SwapFinished(7, 8, 212, served=1204, served_old=1000, served_new=204, failed=0)
    assert swap.summary == "swap #7 → #8 in 212 ms · 1,204 served, 0 failed"
    assert ev.SwapFinished(7, 8, 212).summary == "swap #7 → #8 in 212 ms"


def test_the_swap_line_is_printed_with_one_service_or_many() -> None:
    swap = ev.SwapFinished(7, 8, 212, served=1204, served_old=1200, served_new=4, failed=0)
    single = io.StringIO()
    Printer(io.StringIO(), single)(swap)
    assert single.getvalue() == (
        "[pitstop] INFO - swap #7 → #8 in 212 ms · 1,204 served, 0 failed\n"
    )
    many = io.StringIO()
    printer = Printer(io.StringIO(), many, services=True)
    printer.prepare(["api"])
    printer(
        ev.SwapFinished(1, 2, 90, served=10, served_old=9, served_new=1, failed=2, service="api")
    )
    assert many.getvalue() == "api | [pitstop] WARN - swap #1 → #2 in 90 ms · 10 served, 2 failed\n"


def test_build_lines_carry_their_services_prefix_and_colour() -> None:
    from pitstop.engine.events import Notice, Source, TaskOutput, TaskStarted

    out, err = Terminal(), Terminal()
    printer = Printer(out, err, services=True, colour=True)
    printer.prepare(["api", "web", "api,web", "api#000", "web#000"])
    printer(TaskStarted("build-api", services=("api",)))
    printer(TaskOutput("build-api", "stdout", "compiling api", services=("api",)))
    printer(TaskOutput("compile", "stderr", "shared warning", services=("api", "web")))
    printer(Notice("error", "cannot run", Source("api,web")))
    printer(ev.InstanceOutput(1, "stdout", "hello", service="web"))
    api, web = printer._colours["api"], printer._colours["web"]
    assert out.getvalue().splitlines() == [
        f"\x1b[{api}mapi     | \x1b[0mcompiling api",
        f"\x1b[{web}mweb#1   | \x1b[0mhello",
    ]
    lines = err.getvalue().splitlines()
    assert (
        lines[0]
        == f"\x1b[{api}mapi     | \x1b[0m\x1b[1m[pitstop]\x1b[0m INFO - Running Task: build-api"
    )
    # A shared step is both services' build: both names, in the first one's colour.
    assert lines[1] == f"\x1b[{api}mapi,web | \x1b[0mshared warning"
    assert lines[2].startswith(f"\x1b[{api}mapi,web | \x1b[0m")


def test_outside_up_a_build_line_keeps_its_task_prefix() -> None:
    from pitstop.engine.events import TaskOutput

    out = io.StringIO()
    printer = Printer(out, io.StringIO(), mode=OutputMode.PREFIX, colour=False)
    printer(TaskOutput("build", "stdout", "x", services=("api",)))
    assert out.getvalue() == "build | x\n"


def test_an_error_in_a_services_build_carries_its_prefix_on_every_line() -> None:
    from pitstop.engine.events import ErrorReported, Source
    from pitstop.errors import UserError

    err = io.StringIO()
    printer = Printer(io.StringIO(), err, services=True, colour=False)
    printer.prepare(["api", "web"])
    printer(ErrorReported(UserError("no such tool", hint="install it"), Source("api")))
    assert err.getvalue().splitlines() == ["api | error: no such tool", "api | hint: install it"]
