"""The service table's health keys: limits with their units, on_limit, alert_command, the
sampling interval and the regression threshold; each mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.errors import Location, TaskFileError
from pitstop.taskfile.health import HealthSpec, ResourceLimits
from pitstop.taskfile.service import parse_service

WHERE = Location(Path("pitstop.toml"), 3, 1)


def health(**keys: object) -> HealthSpec:
    return parse_service({"listen": "127.0.0.1:0", **keys}, WHERE).health


def error(**keys: object) -> str:
    with pytest.raises(TaskFileError) as caught:
        health(**keys)
    return caught.value.message


def test_defaults_alert_every_two_seconds_without_limits() -> None:
    assert health() == HealthSpec(ResourceLimits(), "alert", (), 2.0, 30.0, 0.5)


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("512MiB", 512 * 1024**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("100KB", 100_000),
        ("2 GB", 2_000_000_000),
        ("64KiB", 65536),
        ("1000B", 1000),
        (4096, 4096),
    ],
)
def test_memory_units(written: object, size: int) -> None:
    assert health(limits={"memory": written}).limits.memory == size


def test_cpu_is_a_percentage_held_for_a_duration() -> None:
    limits = health(limits={"cpu": "90%", "cpu_for": "45s"}).limits
    assert limits == ResourceLimits(memory=None, cpu=90.0, cpu_for=45.0)
    assert health(limits={"cpu": "250%"}).limits.cpu == 250.0


def test_the_other_keys() -> None:
    spec = health(
        on_limit="swap",
        alert_command="./page 'the team'",
        sample_interval="250ms",
        settle="1m",
        regression="20%",
    )
    assert spec.on_limit == "swap"
    assert spec.alert_command == ("./page", "the team")  # split, never run by a shell
    assert (spec.sample_interval, spec.settle, spec.regression) == (0.25, 60.0, 0.2)
    assert health(alert_command=["notify", "$X"]).alert_command == ("notify", "$X")


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"limits": {"memory": "512MB2"}}, "service.limits.memory must be an amount"),
        ({"limits": {"memory": "512XB"}}, "service.limits.memory has unknown unit 'XB'"),
        ({"limits": {"memory": "512"}}, "service.limits.memory has no unit"),
        ({"limits": {"memory": "0MiB"}}, "service.limits.memory must be more than zero"),
        ({"limits": {"memory": -5}}, "service.limits.memory must be more than zero"),
        ({"limits": {"cpu": "0%"}}, "service.limits.cpu must be more than 0%"),
        ({"limits": {"cpu": "-10%"}}, "service.limits.cpu must be more than 0%"),
        ({"limits": {"cpu": 90}}, "service.limits.cpu must be a percentage"),
        ({"limits": {"cpu": "90%", "cpu_for": "0s"}}, "service.limits.cpu_for must be a duration"),
        ({"limits": {"cpu_for": "10s"}}, "service.limits.cpu_for only applies with a cpu limit"),
        ({"limits": {"disk": "1GB"}}, "service.limits.disk is not a limit"),
        ({"limits": {}}, "service.limits names no limit"),
        ({"limits": "512MiB"}, "service.limits must be a table"),
        ({"on_limit": "kill"}, 'service.on_limit must be "swap" or "alert"'),
        ({"alert_command": []}, "service.alert_command is empty"),
        ({"alert_command": ["a", 1]}, "service.alert_command[1] must be a string"),
        ({"alert_command": 5}, "service.alert_command must be a list of strings"),
        ({"sample_interval": "0s"}, "service.sample_interval must be a duration"),
        ({"regression": "-1%"}, "service.regression must be more than 0%"),
    ],
)
def test_mistakes_name_their_key(keys: dict[str, object], says: str) -> None:
    assert error(**keys).startswith(says)
