"""Checks before the swap: the service's `check` commands, run against a ready candidate
before it takes traffic. Each runs through the async process path (the loop goes on), in its
own process group, with the candidate's address in PITSTOP_CANDIDATE_URL; one that outlives
`check_timeout` is ended (stop signal, grace, kill) and counts as failed."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pitstop.engine import process

OUTPUT_LINES = 50  # of a failing check's output, the last lines shown
GRACE = 2.0  # a check cut off by the timeout gets this long after SIGTERM


@dataclass(frozen=True)
class CheckFailure:
    """The first check that failed: its command, why, and the end of its output."""

    command: str
    reason: str
    output: tuple[str, ...]


async def run_checks(
    commands: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str | None,
    timeout: float,
) -> CheckFailure | None:
    """Run `commands` one after another; the first failure, or None if all passed.
    Cancelling this ends the running check's process group."""
    for command in commands:
        failure = await _run_one(command, env, cwd, timeout)
        if failure is not None:
            return failure
    return None


async def _run_one(
    command: str, env: Mapping[str, str], cwd: Path | str | None, timeout: float
) -> CheckFailure | None:
    # Bounded: a chatty check keeps only its last lines in memory.
    lines: deque[str] = deque(maxlen=OUTPUT_LINES)
    try:
        child = await process.spawn(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=env,
            on_line=lambda _stream, line: lines.append(line),
            stdin_devnull=True,
        )
    except OSError as exc:
        return CheckFailure(command, f"cannot be started: {exc.strerror or exc}", ())
    try:
        async with asyncio.timeout(timeout):
            status = await process.run_to_end(child, stop_timeout=GRACE)
    except TimeoutError:
        # run_to_end ended the group when the timeout cancelled it.
        return CheckFailure(command, f"did not finish within {timeout:g}s", tuple(lines))
    if status != 0:
        return CheckFailure(command, f"failed with status {status}", tuple(lines))
    return None
