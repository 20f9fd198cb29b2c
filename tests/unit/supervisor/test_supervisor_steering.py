"""Steering connections inside a reuseport group: the cBPF program, the mirror of the
kernel's socket array, and `Listener` on real sockets on 127.0.0.1."""

from __future__ import annotations

import errno
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitstop.supervisor import sockets
from pitstop.supervisor.sockets import Listener, ReuseportSlots
from pitstop.taskfile.addresses import parse_listen

needs_steering = pytest.mark.skipif(not sockets.STEERING, reason="SO_REUSEPORT steering is Linux")


def test_program_is_one_return_constant_instruction() -> None:
    code, jt, jf, k = struct.unpack("=HBBI", sockets.reuseport_program(7))
    assert (code, jt, jf, k) == (0x06, 0, 0, 7)  # BPF_RET | BPF_K, k = 7
    if sys.byteorder == "little":
        assert sockets.reuseport_program(1) == bytes([6, 0, 0, 0, 1, 0, 0, 0])


def test_slots_append_on_join() -> None:
    slots: ReuseportSlots[object] = ReuseportSlots()
    a, b, c = object(), object(), object()
    assert [slots.join(x) for x in (a, b, c)] == [0, 1, 2]
    assert [slots.index(x) for x in (a, b, c)] == [0, 1, 2]


def test_slots_move_the_last_into_a_freed_slot() -> None:
    slots: ReuseportSlots[object] = ReuseportSlots()
    a, b, c, d = object(), object(), object(), object()
    for x in (a, b, c):
        slots.join(x)
    slots.leave(a)
    assert list(slots) == [c, b]
    slots.leave(b)  # the last one: nothing moves
    assert list(slots) == [c]
    assert slots.join(d) == 1
    assert len(slots) == 2
    with pytest.raises(ValueError):
        slots.index(a)


def test_slots_compare_by_identity() -> None:
    slots: ReuseportSlots[list[int]] = ReuseportSlots()
    first, second = [1], [1]
    slots.join(first)
    slots.join(second)
    assert slots.index(second) == 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    listener = Listener(parse_listen("127.0.0.1:0"))
    listener.open()
    yield listener
    listener.close()


def landed(listener: Listener, count: int = 10) -> list[int]:
    """Open `count` connections; how many queued on each of pitstop's sockets, in order.
    Every connect succeeds (none refused); the queues are emptied afterwards."""
    address = (listener.address.host, listener.address.port)
    clients = [socket.create_connection(address, timeout=5) for _ in range(count)]
    try:
        return [sockets.accept_queue_length(s) for s in listener.sockets]
    finally:
        for sock in listener.sockets:
            sock.setblocking(False)
            while True:
                try:
                    sock.accept()[0].close()
                except BlockingIOError:
                    break
            sock.setblocking(True)
        for client in clients:
            client.close()


@needs_steering
def test_a_new_socket_gets_nothing_until_steered_to(listener: Listener) -> None:
    first = listener.sockets[0]
    assert listener.steered
    second = listener.add()
    assert second.getsockname() == first.getsockname()
    assert landed(listener) == [10, 0]
    listener.steer(second)
    assert landed(listener) == [0, 10]


@needs_steering
def test_removing_the_old_socket_keeps_new_connections_on_the_target(listener: Listener) -> None:
    first = listener.sockets[0]
    second = listener.add()
    listener.steer(second)
    listener.remove(first)
    assert first.fileno() == -1
    assert listener.sockets == [second]
    third = listener.add()  # joins at index 1: must get nothing
    assert landed(listener) == [10, 0]
    listener.remove(third)
    assert landed(listener) == [10]


@needs_steering
def test_remove_takes_the_socket_out_even_if_a_copy_is_still_open(listener: Listener) -> None:
    first = listener.sockets[0]
    second = listener.add()
    copy = first.dup()  # an instance's child that outlived it
    try:
        listener.steer(second)
        listener.remove(first)
        third = listener.add()
        # If `first` had stayed in the group, `third` would be at index 2 and `second` at 1.
        assert landed(listener) == [10, 0]
        listener.remove(third)
    finally:
        copy.close()


@needs_steering
def test_a_taken_port_is_refused_as_before(listener: Listener) -> None:
    other = Listener(listener.address)
    with pytest.raises(OSError) as info:
        other.open()
    assert info.value.errno == errno.EADDRINUSE


def test_unix_addresses_share_one_socket(tmp_path: Path) -> None:
    listener = Listener(parse_listen(f"unix:{tmp_path / 'app.sock'}"))
    first = listener.open()
    try:
        assert not listener.steered
        assert listener.add() is first
        listener.remove(first)  # a no-op: every instance has it
        assert first.fileno() != -1
        assert listener.queued(first) == 0
    finally:
        listener.close()
    assert not (tmp_path / "app.sock").exists()


def test_without_steering_one_socket_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "STEERING", False)
    listener = Listener(parse_listen("127.0.0.1:0"))
    first = listener.open()
    try:
        assert listener.add() is first
    finally:
        listener.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@needs_steering
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1")
def test_ipv6_addresses_are_steered_too() -> None:
    listener = Listener(parse_listen("[::1]:0"))
    listener.open()
    try:
        assert listener.steered
        second = listener.add()
        listener.steer(second)
        assert landed(listener) == [0, 10]
    finally:
        listener.close()
