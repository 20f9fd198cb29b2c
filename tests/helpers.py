"""Shared test helpers: wait for a condition with a deadline instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# How often a predicate is re-checked. Polling a condition is fine; sleeping *instead of*
# checking one is not.
_POLL_INTERVAL_S = 0.01


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, message: str = "") -> None:
    """Block until ``predicate()`` is truthy; fail the test with ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        time.sleep(_POLL_INTERVAL_S)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, message: str = ""
) -> None:
    """Like :func:`wait_until`, but yields to the running event loop between checks."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        await asyncio.sleep(_POLL_INTERVAL_S)
