"""The `service` table: defaults, every ready check, and messages that say what to write."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pitstop.errors import Location, TaskFileError
from pitstop.taskfile.addresses import ListenAddress
from pitstop.taskfile.service import (
    ReadyCommand,
    ReadyDelay,
    ReadyHttp,
    ReadyLog,
    ReadyNotify,
    ReadyTcp,
    ServiceSpec,
    parse_duration,
    parse_service,
)

WHERE = Location(Path("pitstop.toml"), 7, 1)


def parse(raw: object) -> ServiceSpec:
    return parse_service(raw, WHERE)


def error(raw: object) -> TaskFileError:
    with pytest.raises(TaskFileError) as info:
        parse(raw)
    assert info.value.exit_code == 2
    assert info.value.location == WHERE
    return info.value


def test_defaults() -> None:
    spec = parse({"listen": "127.0.0.1:8080"})
    assert spec.listen == (ListenAddress("tcp", "127.0.0.1", 8080),)
    assert spec.listen_names == ("port8080",)
    assert spec.ready == ReadyDelay(0.0)
    assert spec.ready_timeout == 30.0
    assert spec.stop_signal == signal.SIGTERM
    assert spec.stop_timeout == 10.0
    assert spec.restart == "on-failure"
    assert spec.max_crashes == 5
    assert spec.drain_delay == 0.1
    assert not spec.uses_proxy
    assert spec.warnings == ()


def test_drain_delay() -> None:
    assert parse({"listen": "8080", "drain_delay": "250ms"}).drain_delay == 0.25
    assert "drain_delay" in str(error({"listen": "8080", "drain_delay": "soon"}))


def test_the_rust_example_table() -> None:
    spec = parse(
        {
            "listen": ["127.0.0.1:8080"],
            "ready": {"notify": True},
            "ready_timeout": "30s",
            "stop_signal": "SIGTERM",
            "stop_timeout": "10s",
        }
    )
    assert spec.ready == ReadyNotify()
    assert spec.ready_timeout == 30.0


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        ({"notify": True}, ReadyNotify()),
        ({"command": "curl -fs http://x"}, ReadyCommand("curl -fs http://x")),
        ({"delay": "500ms"}, ReadyDelay(0.5)),
        ({"delay": 2}, ReadyDelay(2.0)),
    ],
)
def test_ready_checks(ready: dict[str, object], expected: object) -> None:
    assert parse({"listen": 8080, "ready": ready}).ready == expected


def test_ready_log_is_compiled() -> None:
    ready = parse({"listen": 8080, "ready": {"log": r"startup complete"}}).ready
    assert isinstance(ready, ReadyLog)
    assert ready.pattern.search("INFO: Application startup complete.")


def test_proxy_mode_checks_and_default() -> None:
    spec = parse({"proxy": "127.0.0.1:8080", "mode": "tcp"})
    assert spec.uses_proxy and spec.mode == "tcp" and spec.ready == ReadyTcp()
    assert parse({"proxy": 8080, "ready": {"http": "/health"}}).ready == ReadyHttp("/health")


def test_http_check_needs_proxy_mode() -> None:
    assert "needs proxy mode" in error({"listen": 8080, "ready": {"http": "/health"}}).message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("8080", "expected a table"),
        ({}, "needs 'listen'"),
        ({"listen": 1, "proxy": 2}, "cannot be used together"),
        ({"listen": "nohost"}, "HOST:PORT"),
        ({"listen": "1.2.3.4:99999"}, "0 to 65535"),
        ({"listen": "::1:80"}, "brackets"),
        ({"listen": 8080, "ready": {"log": "("}}, "not a valid regular expression"),
        ({"listen": 8080, "ready": {"notify": True, "log": "x"}}, "exactly one check"),
        ({"listen": 8080, "ready_timeout": "thirty"}, "ready_timeout"),
        ({"listen": 8080, "stop_signal": "SIGNOPE"}, "unknown stop_signal"),
        ({"listen": 8080, "restart": "sometimes"}, "on-failure"),
        ({"listen": 8080, "mode": "http"}, "only applies with 'proxy'"),
        ({"listen": 8080, "max_crashes": 0}, "at least 1"),
        ({"listen": 8080, "env": ["A=1"]}, "'env' must be a table"),
    ],
)
def test_mistakes_say_what_to_write(raw: object, fragment: str) -> None:
    assert fragment in error(raw).message


def test_unknown_keys_warn() -> None:
    spec = parse({"listen": 8080, "redy": {"notify": True}})
    assert [w.message for w in spec.warnings] == ["unknown key 'service.redy' (ignored)"]


def test_env_values_become_strings() -> None:
    spec = parse({"listen": 8080, "env": {"A": 1, "B": True, "C": "x"}})
    assert spec.env == (("A", "1"), ("B", "true"), ("C", "x"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        (3, 3.0),
        ("30", 30.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "1x", "-1s", True, -1, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(text)
