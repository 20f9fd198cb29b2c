"""The one module that owns child processes.

Every child starts in a session (and so a process group) of its own, so that pitstop can
end it together with everything it started: terminate the group, wait a grace period, then
kill the group. Each group is also registered with the reaper (see `reaper.py`), a tiny
watchdog process that kills the registered groups if pitstop itself dies without cleaning
up (SIGKILL, a crash in C code): no orphan ever keeps a port or a CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pitstop import reaper

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]
LineSink = Callable[[Stream, str], None]


def exit_status(returncode: int) -> int:
    """A shell-style exit status: death by signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_by_name(name: str | int) -> signal.Signals:
    """`SIGTERM`, `TERM`, `term` or `15` -> signal.SIGTERM; raises ValueError if unknown."""
    if isinstance(name, int):
        return signal.Signals(name)
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


@dataclass
class Child:
    """A running child process that leads its own process group."""

    process: asyncio.subprocess.Process
    argv: tuple[str, ...]
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self) -> int:
        """Wait for the child to exit and its output to be read; returns the exit status."""
        code = await self.process.wait()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        # The leader is gone; anything it left in its group goes with it.
        self._signal_group(signal.SIGKILL)
        reaper.untrack(self.pid)
        return exit_status(code)

    def send_signal(self, sig: int) -> None:
        """Deliver `sig` to the whole process group."""
        self._signal_group(sig)

    async def terminate(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the group, wait up to `timeout` seconds, then kill the group; returns the status."""
        if self.process.returncode is None:
            self._signal_group(sig)
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
            except TimeoutError:
                log.debug("pid %d ignored %s for %.1fs; killing its group", self.pid, sig, timeout)
                self._signal_group(signal.SIGKILL)
        return await self.wait()

    def kill_now(self) -> None:
        """Kill the group at once, without waiting (for use in finalizers)."""
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    on_line: LineSink | None = None,
    pass_fds: Sequence[int] = (),
    stdin_devnull: bool = False,
) -> Child:
    """Start `argv` in a new session.

    With `on_line`, stdout and stderr are read line by line and handed to it; without, the
    child writes straight to pitstop's own stdout and stderr (so colours and progress bars
    of a sequential run look as they would in a terminal).
    Raises FileNotFoundError / PermissionError if the program cannot be started.
    """
    pipe = asyncio.subprocess.PIPE if on_line else None
    child_env = dict(env if env is not None else os.environ)
    reaper.child_environment(child_env)
    reaper.ensure_started()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=child_env,
        stdin=asyncio.subprocess.DEVNULL if stdin_devnull else None,
        stdout=pipe,
        stderr=pipe,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        # Large pipe reads keep the per-line overhead low for chatty builds.
        limit=1 << 20,
    )
    reaper.track(process.pid)
    child = Child(process=process, argv=tuple(argv))
    if on_line is not None:
        assert process.stdout is not None and process.stderr is not None
        child._readers = [
            asyncio.create_task(_pump(process.stdout, "stdout", on_line)),
            asyncio.create_task(_pump(process.stderr, "stderr", on_line)),
        ]
    return child


async def _pump(stream: asyncio.StreamReader, name: Stream, on_line: LineSink) -> None:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:
            # A line longer than the limit: hand over what is buffered as one line.
            raw = await stream.read(1 << 20)
        if not raw:
            return
        on_line(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
