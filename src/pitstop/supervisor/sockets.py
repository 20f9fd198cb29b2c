"""Listening sockets that outlive every version of a service.

pitstop binds each `listen` address when it starts and hands the sockets to every instance
through the systemd socket-activation protocol (`LISTEN_FDS`, `LISTEN_FDNAMES`,
`LISTEN_PID`, descriptors at 3, 4, ...). The address never goes without a listener, so no
version change refuses a connection.

TCP addresses on Linux: one socket per instance, steered. A shared socket is not enough:
servers such as uvicorn close, on SIGTERM, the connections they have accepted but not read
a request from yet, so under continuous load a swap reset one or two requests. Instead
every instance generation gets its own listening socket on the same address, all in one
SO_REUSEPORT group, and a one-instruction classic BPF program attached to the group
(`SO_ATTACH_REUSEPORT_CBPF`, "return i") tells the kernel which socket new connections go
to: the serving instance's. A starting instance receives nothing until it is ready; then
the program is switched to it, the old socket's accept queue drains into the old instance,
and only then is the old instance stopped. See `Listener` for the kernel behaviour this
relies on (checked by tests/integration/supervisor/test_reuseport_kernel.py).

Unix socket addresses (and TCP where the program cannot be attached: other systems, Linux
before 4.5) keep one shared socket for every instance: a connection that arrives while
neither instance accepts waits in the one queue instead of being refused, but a server that
drops accepted-but-unread connections on SIGTERM can still reset a request at a swap there.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from pitstop.taskfile.addresses import ListenAddress

log = logging.getLogger(__name__)

BACKLOG = 1024
FIRST_FD = 3  # SD_LISTEN_FDS_START


def bind(address: ListenAddress, backlog: int = BACKLOG) -> socket.socket:
    """Bind and listen one socket (the proxy's public address; see `Listener` for instances).
    The socket stays blocking: its O_NONBLOCK flag is shared with every process that
    inherits it, and pitstop never accepts on it itself."""
    if address.family == "unix":
        return _bind_unix(address.path, backlog)
    return _bind_tcp(address, backlog, reuseport=False)


def _bind_tcp(address: ListenAddress, backlog: int, *, reuseport: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            # Before bind, on every socket of the group: the kernel only lets a socket
            # join an address whose sockets all have it (and belong to the same user).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


# --------------------------------------------------------------------------- steering

SO_ATTACH_REUSEPORT_CBPF = 51  # include/uapi/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
STEERING = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
_TCPI_UNACKED = 24  # offset of tcpi_unacked: 8 one-byte fields, then rto, ato, snd_mss, rcv_mss

T = TypeVar("T")


def reuseport_program(index: int) -> bytes:
    """The cBPF program "return `index`": one `struct sock_filter {u16 code; u8 jt, jf;
    u32 k}` in native byte order."""
    return struct.pack("=HBBI", BPF_RET_K, 0, 0, index)


SKF_NET_OFF = -0x100000  # linux/filter.h: offsets from here read the network header
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load a 32-bit word
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K


def source_steering_program(source: str, index: int, otherwise: int) -> bytes:
    """The cBPF program "IPv4 source address == `source` ? `index` : `otherwise`": loads the
    source address (offset 12 of the IPv4 header) and compares it."""
    address = int.from_bytes(socket.inet_aton(source), "big")
    ins = [
        (BPF_LD_W_ABS, 0, 0, (SKF_NET_OFF + 12) & 0xFFFFFFFF),
        (BPF_JEQ_K, 0, 1, address),
        (BPF_RET_K, 0, 0, index),
        (BPF_RET_K, 0, 0, otherwise),
    ]
    return b"".join(struct.pack("=HBBI", *i) for i in ins)


def attach_reuseport_program(sock: socket.socket, index: int, code: bytes | None = None) -> None:
    """Make every new connection to `sock`'s reuseport group go to the socket at `index`
    (OSError where the kernel does not support it), or run the program `code` instead. The
    program belongs to the group, not to `sock`: attaching through any member replaces it
    for all."""
    raw = reuseport_program(index) if code is None else code
    buffer = ctypes.create_string_buffer(raw, len(raw))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, native layout;
    # the kernel copies the instructions during the call, so `buffer` need only live till then.
    fprog = struct.pack("HP", len(raw) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def accept_queue_length(sock: socket.socket) -> int:
    """Connections waiting in a listening TCP socket's accept queue: for a listener the
    kernel reports sk_ack_backlog as tcpi_unacked (and the backlog limit as tcpi_sacked)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    (unacked,) = struct.unpack_from("=I", info, _TCPI_UNACKED)
    return int(unacked)


SO_MEMINFO = 55  # include/uapi/asm-generic/socket.h (Linux 4.6)
SK_MEMINFO_DROPS = 8  # include/uapi/linux/sock_diag.h (Linux 4.12); the array's last slot


def listen_drops(sock: socket.socket) -> int | None:
    """Packets the kernel dropped at a listening TCP socket since it was bound (None where
    the count cannot be read: other systems, Linux before 4.12).

    tcp_listendrop() adds one to the socket's sk_drops each time a connection cannot join
    the socket because its accept queue is full: a client's SYN (which the client's kernel
    retransmits after 1 s, 1 s, ... so one client waiting for room counts once per attempt)
    or, when the queue filled up during the handshake, its final ACK (the client is then
    connected on its side only, and joins the queue when its first data arrives). So a drop
    is a client kept waiting, and drops >= clients affected: 0 proves none was. Other discards
    at the listener (a socket filter, a minimum TTL) land there too. Linux keeps no count
    of the connections a listener accepted (for a listener TCP_INFO reports only its queue
    length and backlog, and counting with eBPF needs privileges): this is what there is.
    """
    if sys.platform != "linux":
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (SK_MEMINFO_DROPS + 1))
    except OSError:
        return None
    if len(raw) < 4 * (SK_MEMINFO_DROPS + 1):
        return None
    (drops,) = struct.unpack_from("=I", raw, 4 * SK_MEMINFO_DROPS)
    return int(drops)


class ReuseportSlots(Generic[T]):
    """pitstop's mirror of the kernel's array of a reuseport group (`reuse->socks`), which
    is what "return i" indexes. Linux appends a socket when it starts listening, and when
    one leaves the group it moves the LAST socket into the freed slot (reuseport_detach_sock),
    so indexes change on removal and must be recomputed, never remembered."""

    def __init__(self) -> None:
        self._items: list[T] = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))

    def join(self, item: T) -> int:
        self._items.append(item)
        return len(self._items) - 1

    def leave(self, item: T) -> None:
        i = self.index(item)
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last

    def index(self, item: T) -> int:
        """Its index; by identity (sockets compare by identity anyway)."""
        for i, x in enumerate(self._items):
            if x is item:
                return i
        raise ValueError("not in the group")


class Listener:
    """One `listen` address and pitstop's descriptor of every socket on it.

    Steered (TCP on Linux), each instance generation gets its own socket from `add()`, and
    `steer()` points the group's program at the socket of the instance that should get new
    connections. What this relies on, checked on Linux 6.x (and by
    tests/integration/supervisor/test_reuseport_kernel.py wherever the tests run):

    * a socket joins the group's array at the end, when it starts listening, so a starting
      instance's socket gets an index the program does not return: it receives nothing;
    * a program result >= the number of sockets makes the kernel fall back to its usual
      hash selection: with one socket left that is the only socket, so there is no moment
      without a listener while the program is being re-attached after a removal;
    * when a socket leaves, the last one takes its slot (hence `ReuseportSlots`);
    * shutdown(SHUT_RD) on a listener removes it from the group at once, even while another
      process (an instance's leftover child) still holds a copy; closing pitstop's
      descriptor alone would leave it there until the last copy closes;
    * TCP_INFO on a listener gives its accept-queue length (`accept_queue_length`).

    At most two sockets are in a group at a time (serving and starting, or serving and
    retiring): the supervisor starts no new instance before the retired one's socket left.
    """

    def __init__(self, requested: ListenAddress, backlog: int = BACKLOG) -> None:
        self.requested = requested
        self.address = requested
        self.backlog = backlog
        self.steered = False
        self._slots: ReuseportSlots[socket.socket] = ReuseportSlots()
        self._shared: socket.socket | None = None
        self._target: socket.socket | None = None

    def open(self) -> socket.socket:
        """Bind the address; the first instance's socket (raises OSError if it is taken)."""
        if self.requested.family == "unix" or not STEERING:
            self._shared = bind(self.requested, self.backlog)
            self.address = bound_address(self._shared, self.requested)
            return self._shared
        if self.requested.port != 0:
            _check_free(self.requested)
        first = _bind_tcp(self.requested, self.backlog, reuseport=True)
        self.address = bound_address(first, self.requested)
        try:
            attach_reuseport_program(first, 0)
        except OSError as exc:
            log.debug("cannot steer connections on %s (%s): one shared socket", self.address, exc)
            self._shared = first
            return first
        self.steered = True
        self._slots.join(first)
        self._target = first
        return first

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._shared] if self._shared is not None else list(self._slots)

    @property
    def counted(self) -> bool:
        """Whether the kernel's drop count can be read here (TCP on Linux >= 4.12); a full
        unix socket queue makes clients wait in connect() and counts nothing."""
        socks = self.sockets
        return self.address.family != "unix" and bool(socks) and listen_drops(socks[0]) is not None

    def add(self) -> socket.socket:
        """A socket for a new instance; it gets no connection until `steer()` names it."""
        if self._shared is not None:
            return self._shared
        sock = _bind_tcp(self.address, self.backlog, reuseport=True)
        self._slots.join(sock)
        return sock

    def steer(self, sock: socket.socket) -> None:
        """Send every new connection to `sock` from now on."""
        if self._shared is not None:
            return
        self._target = sock
        self._attach()

    def can_steer_by_source(self) -> bool:
        """Whether `steer_source` can reach one socket of the group directly (IPv4 only)."""
        return self.steered and ":" not in self.address.host

    def steer_source(self, sock: socket.socket, source: str) -> None:
        """New connections from IPv4 address `source` go to `sock`, every other one where
        `steer()` said: a candidate can be reached directly while the serving instance still
        gets all the traffic. `steer()` (or a removal) puts the plain program back."""
        assert self.can_steer_by_source() and self._target is not None
        code = source_steering_program(
            source, self._slots.index(sock), self._slots.index(self._target)
        )
        attach_reuseport_program(self._target, 0, code)

    def end_source_steering(self) -> None:
        if self.steered and self._target is not None:
            self._attach()

    def queued(self, sock: socket.socket) -> int:
        return 0 if sock is self._shared else accept_queue_length(sock)

    def remove(self, sock: socket.socket) -> None:
        """Take `sock` out of the group and close it (whatever waits in its queue is reset)."""
        if sock is self._shared:
            return
        assert sock is not self._target, "removing the socket new connections go to"
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError as exc:  # it leaves when its last copy closes instead
            log.warning("shutdown of a retired listening socket failed: %s", exc)
        self._slots.leave(sock)
        sock.close()
        # The target may have moved into the freed slot; until the new program is attached
        # the old index is out of range (two sockets at most), so the kernel picks the only
        # socket left.
        self._attach()

    def _attach(self) -> None:
        assert self._target is not None
        attach_reuseport_program(self._target, self._slots.index(self._target))

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self._slots = ReuseportSlots()
        self._shared = self._target = None
        if self.address.family == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address.path)


def _check_free(address: ListenAddress) -> None:
    """Fail with EADDRINUSE if something listens on `address` already. With SO_REUSEPORT our
    bind would succeed beside another reuseport listener of the same user (a second pitstop
    on the same port) and silently share its connections; a probe bound without it fails
    there as a plain bind always did. A listener appearing between probe and bind is not
    caught."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Bound only, never listening: a connection must not land in the probe's queue.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind((address.host, address.port))


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
