"""Signal names as flags and task files write them."""

from __future__ import annotations

import signal

import pytest

from pitstop.signals import signal_by_name


@pytest.mark.parametrize("name", ["SIGTERM", "TERM", "term", " 15 ", 15])
def test_signal_by_name(name: str | int) -> None:
    assert signal_by_name(name) is signal.SIGTERM


def test_signal_by_name_unknown() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        signal_by_name("NOPE")
