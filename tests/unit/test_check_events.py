"""How a failed check reads: the command, why, and the end of its output under it."""

from __future__ import annotations

import io

from pitstop.engine.output import Printer
from pitstop.manager.event_json import event_json, summary
from pitstop.supervisor.events import CheckFailed, ChecksPassed


def test_a_failed_check_shows_its_command_and_output() -> None:
    out, err = io.StringIO(), io.StringIO()
    p = Printer(out, err, colour=False)
    p(CheckFailed(3, "curl -fsS $URL/health", "failed with status 22", ("a", "b"), service="web"))
    p(ChecksPassed(4, 2, service="web"))
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "[pitstop] ERROR - check of #3 `curl -fsS $URL/health` failed with status 22:",
        "    a",
        "    b",
        "[pitstop] INFO - #4 passed 2 checks",
    ]


def test_a_failed_check_as_json_and_in_the_log_file() -> None:
    event = CheckFailed(3, "pytest -q", "did not finish within 60s", ("x",), service="web")
    found = event_json(event, 1.0)
    assert found["type"] == "check_failed" and found["instance"] == 3
    assert found["command"] == "pytest -q" and found["output"] == ["x"]
    assert summary(event) == "check of #3 `pytest -q` did not finish within 60s\n  x"
