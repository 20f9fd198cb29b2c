"""The `service` table: defaults, every ready check, and mistakes reported at their own key
with a message that says what to write."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pitstop.errors import Location, TaskFileError
from pitstop.taskfile.addresses import ListenAddress
from pitstop.taskfile.locate import KeyPath
from pitstop.taskfile.service import (
    ReadyCommand,
    ReadyDelay,
    ReadyHttp,
    ReadyLog,
    ReadyNotify,
    ReadyTcp,
    ServiceSpec,
    parse_service,
    read_service,
)

WHERE = Location(Path("pitstop.toml"), 7, 1)


class Mistake(Exception):
    def __init__(self, key_path: KeyPath, what: str, hint: str | None) -> None:
        super().__init__(what)
        self.key_path, self.what, self.hint = key_path, what, hint


def fail(key_path: KeyPath, what: str, hint: str | None = None) -> Mistake:
    return Mistake(key_path, what, hint)


def parse(raw: object) -> ServiceSpec:
    return read_service(raw, WHERE, fail)


def mistake(raw: object) -> Mistake:
    with pytest.raises(Mistake) as info:
        parse(raw)
    return info.value


def test_defaults() -> None:
    spec = parse({"listen": "127.0.0.1:8080"})
    assert spec.location == WHERE
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


def test_drain_delay() -> None:
    assert parse({"listen": "8080", "drain_delay": "250ms"}).drain_delay == 0.25
    assert mistake({"listen": "8080", "drain_delay": "soon"}).key_path == ("drain_delay",)


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


def test_durations_use_the_one_grammar() -> None:
    spec = parse({"listen": 8080, "stop_timeout": "1m30s", "crash_window": 5})
    assert (spec.stop_timeout, spec.crash_window) == (90.0, 5.0)


def test_backoff_max_is_at_least_the_backoff() -> None:
    assert parse({"listen": 8080, "restart_backoff": "20s"}).restart_backoff_max == 20.0


def test_listen_names_and_signals() -> None:
    spec = parse(
        {"listen": ["8080", "unix:/tmp/a.sock"], "listen_names": ["web", "admin"], "stop_signal": 2}
    )
    assert spec.listen_names == ("web", "admin")
    assert spec.stop_signal == signal.SIGINT


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
    assert parse({"proxy": 8080, "ready": {"tcp": True}}).ready == ReadyTcp()


def test_env_values_become_strings() -> None:
    spec = parse({"listen": 8080, "env": {"A": 1, "B": True, "C": "x"}})
    assert spec.env == (("A", "1"), ("B", "true"), ("C", "x"))


@pytest.mark.parametrize(
    ("raw", "key_path", "fragment"),
    [
        ("8080", (), "must be a table"),
        ({}, (), "needs 'listen'"),
        ({"listen": 1, "proxy": 2}, ("proxy",), "cannot be used together"),
        ({"listen": []}, ("listen",), "is empty"),
        ({"listen": "nohost"}, ("listen",), "HOST:PORT"),
        ({"listen": ["8080", "1.2.3.4:99999"]}, ("listen", 1), "0 to 65535"),
        ({"listen": "::1:80"}, ("listen",), "brackets"),
        ({"listen": True}, ("listen",), "found a boolean"),
        ({"listen": ["8080", {"a": 1}]}, ("listen", 1), "found a table"),
        ({"proxy": "nohost"}, ("proxy",), "HOST:PORT"),
        ({"listen": [1, 2], "listen_names": ["a"]}, ("listen_names",), "one per 'listen'"),
        ({"listen": 1, "listen_names": ["a:b"]}, ("listen_names", 0), "without ':'"),
        ({"listen": 8080, "ready": "notify"}, ("ready",), "table with one check"),
        ({"listen": 8080, "ready": {}}, ("ready",), "exactly one check (found none)"),
        ({"listen": 8080, "ready": {"notify": True, "log": "x"}}, ("ready",), "notify, log"),
        ({"listen": 8080, "ready": {"notify": 1}}, ("ready", "notify"), "must be true"),
        ({"listen": 8080, "ready": {"log": "("}}, ("ready", "log"), "regular expression"),
        ({"listen": 8080, "ready": {"log": ""}}, ("ready", "log"), "regular expression"),
        ({"listen": 8080, "ready": {"command": " "}}, ("ready", "command"), "shell command"),
        ({"listen": 8080, "ready": {"delay": "soon"}}, ("ready", "delay"), "duration"),
        ({"listen": 8080, "ready": {"pid": True}}, ("ready", "pid"), "not a ready check"),
        ({"listen": 8080, "ready": {"http": "/health"}}, ("ready", "http"), "needs proxy mode"),
        ({"proxy": 8080, "ready": {"http": "health"}}, ("ready", "http"), "a path"),
        ({"proxy": 8080, "ready": {"tcp": "yes"}}, ("ready", "tcp"), "must be true"),
        ({"listen": 8080, "ready_timeout": "thirty"}, ("ready_timeout",), "'thirty'"),
        ({"listen": 8080, "stop_timeout": -1}, ("stop_timeout",), "duration"),
        ({"listen": 8080, "stop_timeout": True}, ("stop_timeout",), "found a boolean"),
        ({"listen": 8080, "stop_signal": "SIGNOPE"}, ("stop_signal",), "signal name"),
        ({"listen": 8080, "stop_signal": ["TERM"]}, ("stop_signal",), "found a list"),
        ({"listen": 8080, "restart": "sometimes"}, ("restart",), "on-failure"),
        ({"listen": 8080, "mode": "http"}, ("mode",), "only applies with 'proxy'"),
        ({"proxy": 8080, "mode": "udp"}, ("mode",), '"http" or "tcp"'),
        ({"listen": 8080, "max_crashes": 0}, ("max_crashes",), "at least 1"),
        ({"listen": 8080, "max_crashes": 1.5}, ("max_crashes",), "whole number"),
        ({"listen": 8080, "env": ["A=1"]}, ("env",), "must be a table"),
        ({"listen": 8080, "env": {"A": [1]}}, ("env", "A"), "must be a string"),
        ({"listen": 8080, "redy": {"notify": True}}, ("redy",), "not a service key"),
    ],
)
def test_a_mistake_is_reported_at_its_own_key(
    raw: object, key_path: KeyPath, fragment: str
) -> None:
    found = mistake(raw)
    assert found.key_path == key_path
    assert fragment in found.what


def test_an_unknown_key_suggests_a_close_one() -> None:
    found = mistake({"listen": 8080, "ready_timout": "5s"})
    assert found.key_path == ("ready_timout",)
    assert found.hint == "did you mean 'ready_timeout'?"


def test_an_unknown_key_is_reported_before_what_it_leaves_missing() -> None:
    assert mistake({"lisen": 8080}).key_path == ("lisen",)


def test_parse_service_points_every_error_at_the_given_location() -> None:
    with pytest.raises(TaskFileError) as info:
        parse_service({"listen": 8080, "ready": {"delay": "soon"}}, WHERE)
    assert info.value.exit_code == 2
    assert info.value.location == WHERE
    assert info.value.message.startswith("service.ready.delay must be a duration")
