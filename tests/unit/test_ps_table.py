"""`pitstop ps` rebuilds the rows from the control socket's JSON and prints the foreground's
table: the JSON must carry every value back."""

from __future__ import annotations

from pitstop.manager.status import ServiceState, ServiceStatus, status_json
from pitstop.manager.table import status_from_json, status_table


def test_rows_survive_the_json_round_trip() -> None:
    now = 1_000_000.0
    rows = [
        ServiceStatus(
            "api",
            ServiceState.SERVING,
            3,
            4711,
            "127.0.0.1:8080",
            2,
            now - 65.0,
            True,
            0.25,
            None,
            cpu_percent=12.5,
            rss_bytes=48 * 1024 * 1024,
            failed=1,
            dropped=1,
            reset=0,
            swaps=5,
        ),
        ServiceStatus(
            "web",
            ServiceState.BLOCKED,
            None,
            None,
            "127.0.0.1:8081",
            0,
            None,
            None,
            None,
            "waiting for api",
        ),
    ]
    assert [status_from_json(status_json(row, now), now) for row in rows] == rows
    table = status_table([status_json(row, now) for row in rows], now).splitlines()
    assert table[0].split()[:6] == ["SERVICE", "STATE", "VERSION", "PID", "CPU", "MEM"]
    assert table[0].split()[8:10] == ["SWAPS", "RESTARTS"]
    assert table[1].split()[:10] == [
        "api",
        "serving",
        "#3",
        "4711",
        "12%",
        "48.0MiB",
        "127.0.0.1:8080",
        "1m05s",
        "5",
        "2",
    ]
    assert table[2].split()[4:6] == ["-", "-"]  # not sampled: nothing serves
    assert table[2].endswith("waiting for api")


def test_odd_json_does_not_crash_the_table() -> None:
    row = status_from_json({"name": "x", "state": "exploded", "pid": "12", "uptime_s": None}, 0.0)
    assert row.state is ServiceState.STOPPED and row.pid is None
