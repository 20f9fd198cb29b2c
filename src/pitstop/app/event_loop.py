"""One asyncio loop per command, with SIGINT/SIGTERM/SIGHUP turned into a clean cancellation.

Signal handlers only record the signal and cancel the main task; cancellation travels down
to every running step, which ends its process group (the same signal, a grace period, then
SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from pitstop.errors import Interrupted

_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def serve_async(
    coro: Coroutine[Any, Any, int], *, stop_is_success: bool = False, fast_loop: bool = False
) -> int:
    """Run `coro` in a fresh loop with SIGINT/SIGTERM/SIGHUP turned into a clean cancellation.

    A one-off run that is interrupted fails (128 + N). Watching and serving run until they
    are told to stop, so with `stop_is_success` a signal ends them with status 0.
    `fast_loop` uses uvloop where it is installed (the proxy forwards every request).
    """
    loop_factory = _uvloop_factory() if fast_loop else None
    if loop_factory is None:
        _install_child_watcher()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_with_signals(coro))
    except Interrupted:
        if stop_is_success:
            return 0
        raise


async def _with_signals(coro: Coroutine[Any, Any, int]) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.ensure_future(coro)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        main.cancel()

    for signum in _HANDLED_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await main
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for signum in _HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _install_child_watcher() -> None:
    """On Python 3.11, wait for children with pidfds instead of a thread per child."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            fd = os.pidfd_open(os.getpid())
        except OSError:
            return
        os.close(fd)
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
