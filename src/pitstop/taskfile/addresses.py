"""Addresses as written in a `service` table: `listen` entries and the `proxy` address.

Pure parsing, no sockets: the task file phase checks them when the file loads, and
`supervisor.sockets` binds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Family = Literal["tcp", "unix"]


class AddressError(ValueError):
    """An address that cannot be parsed; `reason` says what to write instead."""

    def __init__(self, text: object, reason: str) -> None:
        super().__init__(f"{text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class ListenAddress:
    """A parsed `listen` entry: a TCP host and port, or a unix socket path."""

    family: Family
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.family == "unix":
            return f"unix:{self.path}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @property
    def default_name(self) -> str:
        """A name for LISTEN_FDNAMES: `:` separates names there, so it may not appear in one."""
        if self.family == "unix":
            return os.path.basename(self.path) or "unix"
        return f"port{self.port}" if self.port else "tcp"


def parse_listen(text: str | int) -> ListenAddress:
    """`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, `:8080`, `8080`, `/tmp/x.sock`, `unix:/p`.

    Raises AddressError (a ValueError) with a message that says what to write instead.
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise AddressError(text, "expected an address string")
    if isinstance(text, int):
        return ListenAddress("tcp", "127.0.0.1", _port(str(text), str(text)))
    raw = text.strip()
    if raw.startswith("unix:"):
        raw = raw[len("unix:") :]
        if not raw:
            raise AddressError(text, "'unix:' needs a path, e.g. 'unix:/tmp/app.sock'")
        return ListenAddress("unix", path=raw)
    if raw.startswith(("/", "./", "../")):
        return ListenAddress("unix", path=raw)
    if raw.isdigit():
        return ListenAddress("tcp", "127.0.0.1", _port(raw, text))
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError(text, "write an IPv6 address as '[::1]:8080'")
        return ListenAddress("tcp", host, _port(rest[1:], text))
    host, sep, port = raw.rpartition(":")
    if not sep:
        raise AddressError(text, "write 'HOST:PORT' (e.g. '127.0.0.1:8080') or a socket path")
    if ":" in host:
        raise AddressError(text, "put an IPv6 address in brackets, e.g. '[::1]:8080'")
    # `localhost` resolves to both 127.0.0.1 and ::1 on many systems; binding one address
    # keeps the behaviour predictable, and clients try 127.0.0.1 first.
    if host in ("", "localhost"):
        host = "127.0.0.1"
    return ListenAddress("tcp", host, _port(port, text))


def _port(port: str, text: str | int) -> int:
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AddressError(text, "the port must be a number from 0 to 65535")
    return int(port)
