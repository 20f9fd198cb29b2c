"""The kernel behaviour `sockets.Listener` relies on, checked directly on this machine's
kernel with raw sockets (no pitstop logic beyond the program and TCP_INFO helpers)."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import pytest

from pitstop.supervisor import sockets
from tests.helpers import wait_until

pytestmark = pytest.mark.skipif(not sockets.STEERING, reason="SO_REUSEPORT steering is Linux")


@pytest.fixture
def group() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def member(group: list[socket.socket], port: int, listen: bool = True) -> socket.socket:
    sock = socket.socket()
    group.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    if listen:
        # Room for every test connection on one socket: a full queue would drop SYNs and
        # make a client wait for its retransmission instead of landing.
        sock.listen(256)
    return sock


def landed(port: int, members: list[socket.socket], count: int = 20) -> list[int]:
    """Connect `count` clients; how many each member accepted.

    Accepted, not read from TCP_INFO: a client's connect can return before the server side
    has queued the connection, so a snapshot of the queues may still miss the last ones.
    """
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    accepted = [0] * len(members)
    for sock in members:
        sock.setblocking(False)

    def take() -> bool:
        for i, sock in enumerate(members):
            while True:
                try:
                    sock.accept()[0].close()
                except BlockingIOError:
                    break
                accepted[i] += 1
        return sum(accepted) >= count

    try:
        wait_until(take, timeout=10)
    finally:
        for client in clients:
            client.close()
    return accepted


def test_tcp_info_of_a_listener_is_its_accept_queue(group: list[socket.socket]) -> None:
    a = member(group, 0)
    port = a.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(7)]
    try:
        wait_until(lambda: sockets.accept_queue_length(a) == 7, timeout=10)
        for _ in range(7):
            a.accept()[0].close()
        assert sockets.accept_queue_length(a) == 0
    finally:
        for client in clients:
            client.close()


def test_sockets_join_in_listen_order_not_bind_order(group: list[socket.socket]) -> None:
    a = member(group, 0)
    port = a.getsockname()[1]
    b = member(group, port, listen=False)
    c = member(group, port)
    b.listen(256)  # bound before c, listening after it: index 2
    sockets.attach_reuseport_program(a, 1)
    assert landed(port, [a, b, c]) == [0, 0, 20]
    sockets.attach_reuseport_program(c, 2)  # through any member: one program per group
    assert landed(port, [a, b, c]) == [0, 20, 0]


def test_an_index_out_of_range_falls_back_to_the_hash(group: list[socket.socket]) -> None:
    a = member(group, 0)
    port = a.getsockname()[1]
    sockets.attach_reuseport_program(a, 1)
    assert landed(port, [a]) == [20]  # the only socket, not a refused connection
    b = member(group, port)
    sockets.attach_reuseport_program(a, 5)
    counts = landed(port, [a, b], 100)
    # Spread by the hash: both get some (all 100 on one side has odds of 2**-99).
    assert sum(counts) == 100 and all(counts), counts


def test_the_last_socket_takes_a_freed_slot(group: list[socket.socket]) -> None:
    a = member(group, 0)
    port = a.getsockname()[1]
    b = member(group, port)
    c = member(group, port)
    a.close()  # pitstop's descriptor was the last: a leaves, c moves to index 0
    sockets.attach_reuseport_program(b, 0)
    assert landed(port, [b, c]) == [0, 20]


def test_shutdown_leaves_the_group_while_a_copy_is_open(group: list[socket.socket]) -> None:
    a = member(group, 0)
    port = a.getsockname()[1]
    b = member(group, port)
    copy = a.dup()
    group.append(copy)
    a.shutdown(socket.SHUT_RD)
    sockets.attach_reuseport_program(b, 0)
    assert landed(port, [b]) == [20]  # index 0 is b now: a is gone despite `copy`


def test_a_full_accept_queue_counts_every_dropped_attempt(group: list[socket.socket]) -> None:
    """What socket mode's `dropped` means (sockets.listen_drops): a client that finds the
    accept queue full has its SYN dropped and counted, again for each retransmission, and
    lands once there is room: a drop is a client kept waiting, not a lost connection."""
    a = socket.socket()
    group.append(a)
    a.bind(("127.0.0.1", 0))
    a.listen(0)  # room for one connection
    port = a.getsockname()[1]
    assert sockets.listen_drops(a) == 0
    group.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    wait_until(lambda: sockets.accept_queue_length(a) == 1, timeout=10)
    late = []
    for _ in range(2):
        client = socket.socket()
        group.append(client)
        client.setblocking(False)
        assert client.connect_ex(("127.0.0.1", port)) == errno.EINPROGRESS
        late.append(client)
    wait_until(lambda: (sockets.listen_drops(a) or 0) >= 2, timeout=10)  # the two SYNs
    # Their retransmissions (after 1 s) are dropped and counted again: attempts, not clients.
    wait_until(lambda: (sockets.listen_drops(a) or 0) >= 4, timeout=10)
    assert sockets.accept_queue_length(a) == 1
    group.append(a.accept()[0])  # room again

    def connected(client: socket.socket) -> bool:
        try:
            client.getpeername()
        except OSError:
            return False
        return True

    # Both land on a later retransmission. (With room for one, the second one's final ACK
    # may be dropped too: it is then established on the client's side only, and joins the
    # queue when its first data arrives, as a request would.)
    wait_until(lambda: all(connected(c) for c in late), timeout=20)
    for client in late:
        client.send(b"x")
    a.setblocking(False)
    accepted: list[socket.socket] = []

    def take() -> bool:
        with contextlib.suppress(BlockingIOError):
            while True:
                conn, _ = a.accept()
                group.append(conn)
                accepted.append(conn)
        return len(accepted) == 2

    wait_until(take, timeout=20)
    assert sockets.accept_queue_length(a) == 0
