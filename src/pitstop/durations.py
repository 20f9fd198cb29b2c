"""One grammar for durations, in flags and in task files: `500ms`, `30s`, `1m30s`, `2h`, or a
plain number of seconds. Callers turn the ValueError into an error with their own location."""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_EXPECTED = 'expected a duration such as "30s", "500ms" or "1m"'


def parse_duration(value: object) -> float:
    """`"30s"`, `"500ms"`, `"1m30s"`, `"2h"`, `"5"` or a number of seconds -> seconds.

    Raises ValueError with a message that says what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(_EXPECTED)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            # TOML has `inf` and `nan`; a timeout of either would never fire or never wait.
            raise ValueError("a duration must be a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(_EXPECTED)
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        # A bare number in a string (a flag's value) is seconds, as a TOML number is.
        return float(text)
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"{value!r} is not a duration: write a number with a unit, "
            'like "30s", "500ms", "1m" or "1m30s"'
        )
    return total
