"""Keys through a real pseudo-terminal: cbreak while active, settings restored afterwards."""

from __future__ import annotations

import asyncio
import os
import pty
import termios
from pathlib import Path

import pytest

from pitstop.watch.keys import KeyHandler, terminal_keys
from tests.helpers import async_wait_until


def test_handler_maps_keys() -> None:
    calls: list[str] = []
    handler = KeyHandler(lambda: calls.append("rerun"), lambda: calls.append("quit"))
    handler.feed(b"r\nx\r")
    assert calls == ["rerun", "rerun", "rerun"]
    handler.feed(b"qr")  # nothing after quit
    assert calls[-1] == "quit" and len(calls) == 4


def test_keys_through_a_pty_and_terminal_restored() -> None:
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    calls: list[str] = []

    async def scenario() -> None:
        with terminal_keys(
            lambda: calls.append("rerun"), lambda: calls.append("quit"), fd=slave
        ) as active:
            assert active
            mode = termios.tcgetattr(slave)
            assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
            os.write(master, b"r")
            await async_wait_until(lambda: calls == ["rerun"])
            os.write(master, b"q")
            await async_wait_until(lambda: calls == ["rerun", "quit"])

    try:
        asyncio.run(scenario())
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_restored_even_when_the_body_raises() -> None:
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)

    async def scenario() -> None:
        with terminal_keys(lambda: None, lambda: None, fd=slave):
            raise RuntimeError("boom")

    try:
        with pytest.raises(RuntimeError, match="boom"):
            asyncio.run(scenario())
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_not_a_tty_is_a_no_op(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as file:

        async def scenario() -> None:
            with terminal_keys(lambda: None, lambda: None, fd=file.fileno()) as active:
                assert not active

        asyncio.run(scenario())
