"""Listening sockets that outlive every version of a service.

pitstop binds each `listen` address once and keeps the socket open for its whole life.
Every instance receives the same sockets through the systemd socket-activation protocol
(`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`, descriptors at 3, 4, ...). While old and
new instances overlap, both accept from the same kernel queue; a connection that arrives
while neither is accepting waits in that queue instead of being refused. That is what makes
a swap lossless without a proxy.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

BACKLOG = 1024
FIRST_FD = 3  # SD_LISTEN_FDS_START

Family = Literal["tcp", "unix"]


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

    Raises ValueError with a message that says what to write instead.
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"expected an address string, got {type(text).__name__}")
    if isinstance(text, int):
        return ListenAddress("tcp", "127.0.0.1", _port(str(text), str(text)))
    raw = text.strip()
    if raw.startswith("unix:"):
        raw = raw[len("unix:") :]
        if not raw:
            raise ValueError("'unix:' needs a path, e.g. 'unix:/tmp/app.sock'")
        return ListenAddress("unix", path=raw)
    if raw.startswith(("/", "./", "../")):
        return ListenAddress("unix", path=raw)
    if raw.isdigit():
        return ListenAddress("tcp", "127.0.0.1", _port(raw, text))
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r}: write an IPv6 address as '[::1]:8080'")
        return ListenAddress("tcp", host, _port(rest[1:], text))
    host, sep, port = raw.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: write 'HOST:PORT' (e.g. '127.0.0.1:8080') or a socket path")
    if ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. '[::1]:8080'")
    # `localhost` resolves to both 127.0.0.1 and ::1 on many systems; binding one address
    # keeps the behaviour predictable, and clients try 127.0.0.1 first.
    if host in ("", "localhost"):
        host = "127.0.0.1"
    return ListenAddress("tcp", host, _port(port, text))


def _port(port: str, text: str | int) -> int:
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return int(port)


def bind(address: ListenAddress, backlog: int = BACKLOG) -> socket.socket:
    """Bind and listen. The socket stays blocking: its O_NONBLOCK flag is shared with every
    instance that inherits it, and pitstop never accepts on it itself."""
    if address.family == "unix":
        return _bind_unix(address.path, backlog)
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by an earlier run, but only if nobody answers on it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        log.debug("removed stale socket file %s", path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path} is in use by another process")


def bound_address(sock: socket.socket, requested: ListenAddress) -> ListenAddress:
    """The address actually bound (resolves port 0 to the port the kernel chose)."""
    if requested.family == "unix":
        return requested
    host, port = sock.getsockname()[:2]
    return ListenAddress("tcp", str(host), int(port))


def close(sockets: Sequence[socket.socket], addresses: Sequence[ListenAddress]) -> None:
    for sock in sockets:
        sock.close()
    for address in addresses:
        if address.family == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address.path)


def listen_env(count: int, names: Sequence[str], child_pid: int | None = None) -> dict[str, str]:
    """The socket-activation variables for `count` descriptors at 3, 4, ...

    LISTEN_PID must be the pid of the process that reads the variables; when it is not
    known before the start, `shim_argv` sets it from inside the child.
    """
    env = {"LISTEN_FDS": str(count), "LISTEN_FDNAMES": ":".join(names)}
    if child_pid is not None:
        env["LISTEN_PID"] = str(child_pid)
    return env


def strip_inherited(env: Mapping[str, str]) -> dict[str, str]:
    """Drop socket-activation and notify variables pitstop itself may have inherited: they
    describe pitstop's descriptors, not the instance's."""
    drop = {"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "NOTIFY_SOCKET"}
    return {k: v for k, v in env.items() if k not in drop}


# Why a shim and not preexec_fn: subprocess can only pass descriptors at their own numbers;
# moving them to 3.. needs code in the child between fork and exec. preexec_fn would do, but
# it forces the slow fork path, is unsafe with threads, and process.spawn (the one owner of
# children) does not offer it. The shim is a second exec in the same process: the pid does
# not change, so LISTEN_PID is simply its own pid. It costs one `python -S` start-up (about
# 10-20 ms, measured in tests/unit/supervisor), small next to any build.
# First the descriptors are moved above every target so that no dup2 overwrites a source
# that has not been moved yet.
_SHIM = r"""
import fcntl, os, sys
src = [int(x) for x in sys.argv[1].split(",") if x]
n = len(src)
base = max(src + [2 + n]) + 1
tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, base) for fd in src]
for fd in src:
    os.close(fd)
for i, fd in enumerate(tmp):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
argv = sys.argv[2:]
try:
    os.execvp(argv[0], argv)
except OSError as e:
    sys.stderr.write("pitstop: cannot start %s: %s\n" % (argv[0], e.strerror))
    sys.exit(127)
"""


def shim_argv(argv: Sequence[str], fds: Sequence[int]) -> list[str]:
    """Wrap `argv` so that `fds` (passed with pass_fds) appear at 3, 4, ... in the program."""
    return [sys.executable, "-S", "-c", _SHIM, ",".join(map(str, fds)), *argv]
