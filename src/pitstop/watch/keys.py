"""Terminal keys in watch mode: Enter or ``r`` reruns now, ``q`` quits.

The terminal is put in cbreak mode (keys arrive one at a time, not echoed; Ctrl-C still sends
SIGINT) and read through ``loop.add_reader``, so waiting for a key never blocks the event loop.
The previous settings are restored on exit, always. When stdin is not a TTY (CI, pipes,
``pitstop ... < /dev/null``) this does nothing: stdin belongs to whoever piped into us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

RERUN_KEYS = frozenset(b"\r\nr")
QUIT_KEYS = frozenset(b"q")


class KeyHandler:
    """Turns bytes read from the terminal into calls; kept apart from the terminal for tests."""

    def __init__(self, on_rerun: Callable[[], None], on_quit: Callable[[], None]) -> None:
        self._on_rerun = on_rerun
        self._on_quit = on_quit

    def feed(self, data: bytes) -> None:
        # Several presses can arrive in one read; a burst of Enters is still one rerun request
        # each, which the loop's on-busy policy then folds together.
        for byte in data:
            if byte in QUIT_KEYS:
                self._on_quit()
                return
            if byte in RERUN_KEYS:
                self._on_rerun()


@contextlib.contextmanager
def terminal_keys(
    on_rerun: Callable[[], None],
    on_quit: Callable[[], None],
    *,
    fd: int | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Iterator[bool]:
    """While inside, read keys from ``fd`` (default: stdin); yields whether keys are active.

    Must be entered from a coroutine on ``loop`` (default: the running loop). The callbacks run
    on that loop, so they may call `WatchLoop.trigger_now` / `WatchLoop.stop` directly.
    """
    if fd is None:
        fd = _stdin_fd()
    if fd is None or not os.isatty(fd):
        yield False
        return
    import termios  # POSIX only; imported here so Windows can still import this module
    import tty

    running = loop or asyncio.get_running_loop()
    handler = KeyHandler(on_rerun, on_quit)
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        running.add_reader(fd, _on_readable, fd, handler, running)
        yield True
    finally:
        running.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _on_readable(fd: int, handler: KeyHandler, loop: asyncio.AbstractEventLoop) -> None:
    try:
        data = os.read(fd, 64)
    except OSError as exc:  # terminal gone (hang-up): stop listening rather than spin
        logger.debug("stopped reading keys: %s", exc)
        data = b""
    if not data:
        loop.remove_reader(fd)
        return
    handler.feed(data)


def _stdin_fd() -> int | None:
    stdin: Any = sys.stdin
    try:
        return int(stdin.fileno()) if stdin is not None else None
    except (AttributeError, OSError, ValueError):  # replaced or closed stdin
        return None
