"""The sd_notify socket with real datagrams, including under a $TMPDIR too deep for sun_path."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from pitstop.supervisor.notify import MAX_PATH_BYTES, NotifySocket
from tests.helpers import async_wait_until


def _send(notify_socket: str, message: bytes) -> None:
    """What sd_notify does with $NOTIFY_SOCKET (`@` names the abstract namespace)."""
    address = "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message, address)


def _deep_folder(root: Path) -> Path:
    folder = root / ("d" * 60) / ("e" * 60)
    folder.mkdir(parents=True)
    return folder


async def _ready_through(path: str) -> NotifySocket:
    statuses: list[str] = []
    notify = NotifySocket(path, on_status=statuses.append)
    _send(notify.path, b"READY=1\nSTATUS=up")
    await asyncio.wait_for(notify.ready.wait(), 10)
    await async_wait_until(lambda: statuses == ["up"], message="status delivered")
    return notify


def test_a_short_path_is_a_file_in_the_given_folder(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "n.sock")
        notify = await _ready_through(path)
        assert notify.path == path and os.path.exists(path)
        notify.close()
        assert not os.path.exists(path)

    asyncio.run(main())


def test_a_path_too_long_for_sun_path_falls_back_to_an_abstract_name(tmp_path: Path) -> None:
    path = str(_deep_folder(tmp_path) / "notify-1-140245051234560.sock")
    assert len(os.fsencode(path)) > MAX_PATH_BYTES
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as plain, pytest.raises(OSError):
        plain.bind(path)  # the failure the fallback avoids

    async def main() -> None:
        notify = await _ready_through(path)
        assert notify.path.startswith("@pitstop-notify-")
        assert not os.path.exists(path)
        notify.close()

    asyncio.run(main())


@pytest.mark.skipif(os.getuid() != 0, reason="sending as another user needs root")
def test_the_abstract_socket_ignores_another_users_messages(tmp_path: Path) -> None:
    path = str(_deep_folder(tmp_path) / "notify.sock")

    async def main() -> None:
        notify = NotifySocket(path)
        pid = os.fork()
        if pid == 0:  # the other user: nobody
            try:
                os.setgid(65534)
                os.setuid(65534)
                _send(notify.path, b"READY=1")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        _send(notify.path, b"STATUS=from this user")  # after the other one, same queue
        await async_wait_until(lambda: notify.status == "from this user", message="own message")
        assert not notify.ready.is_set()
        notify.close()

    asyncio.run(main())
