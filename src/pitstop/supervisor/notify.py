"""The sd_notify receiving end: one AF_UNIX datagram socket per instance.

A socket per instance (in a private 0700 directory) means a READY=1 can only come from the
instance it was made for, or from a process that instance started, which is what
systemd's NotifyAccess=all allows too; no credential checks are needed.

A socket's path must fit in 107 bytes (sun_path), which a deep $TMPDIR (a CI workspace, a
test's temporary folder) can exceed. Then, on Linux, the socket gets a random name in the
abstract namespace instead (`@pitstop-notify-...` in NOTIFY_SOCKET, as systemd writes it;
sd_notify and its ports understand it). Abstract names have no permissions and are listed
in /proc/net/unix, so there the kernel's credentials of each datagram are checked instead:
only this user (or root) may send, the same people who could write in the 0700 folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import struct
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_DATAGRAM = 4096
# sun_path is 108 bytes on Linux (104 on the BSDs), with the terminating NUL.
MAX_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


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
        self.ready = asyncio.Event()
        self.stopping = False
        self.status: str | None = None
        self._on_status = on_status
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        # Abstract only where the path cannot work: a file in a private folder needs no checks.
        self._abstract = len(os.fsencode(path)) > MAX_PATH_BYTES and _abstract_names_work()
        try:
            if self._abstract:
                name = f"pitstop-notify-{secrets.token_hex(16)}"
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                self._sock.bind("\0" + name)
                path = "@" + name
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                self._sock.bind(path)
        except BaseException:
            self._sock.close()
            raise
        self.path = path  # what NOTIFY_SOCKET says
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                if self._abstract:
                    data, ancdata, _, _ = self._sock.recvmsg(
                        MAX_DATAGRAM, socket.CMSG_SPACE(_CREDENTIALS.size)
                    )
                    if not _from_this_user(ancdata):
                        log.warning("ignored a notify message from another user")
                        continue
                else:
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
        if not self._abstract:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _abstract_names_work() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_PASSCRED")


def _from_this_user(ancdata: list[tuple[int, int, bytes]]) -> bool:
    """Whether the kernel-reported sender of a datagram is this user or root."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            _pid, uid, _gid = _CREDENTIALS.unpack(data[: _CREDENTIALS.size])
            return uid in (os.getuid(), 0)
    return False
