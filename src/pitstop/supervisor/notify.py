"""The sd_notify receiving end: one AF_UNIX datagram socket per instance.

A socket per instance (in a private 0700 directory) means a READY=1 can only come from the
instance it was made for, or from a process that instance started, which is what
systemd's NotifyAccess=all allows too; no credential checks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_DATAGRAM = 4096


def parse_message(data: bytes) -> dict[str, str]:
    """`READY=1\\nSTATUS=warming up` -> {"READY": "1", "STATUS": "warming up"}."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


class NotifySocket:
    """Receives READY=1 / STATUS=... / STOPPING=1 from one instance."""

    def __init__(self, path: str, on_status: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.ready = asyncio.Event()
        self.stopping = False
        self.status: str | None = None
        self._on_status = on_status
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._sock.bind(path)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.handle(parse_message(data))

    def handle(self, fields: dict[str, str]) -> None:
        if fields.get("READY") == "1":
            self.ready.set()
        if fields.get("STOPPING") == "1":
            self.stopping = True
        if "STATUS" in fields:
            self.status = fields["STATUS"]
            if self._on_status is not None:
                self._on_status(self.status)

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
