"""One grammar for durations, in flags and task files."""

from __future__ import annotations

import pytest

from pitstop.durations import parse_duration


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


@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_toml_inf_and_nan_are_not_durations(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)
