"""The kernel behaviour checks in socket mode rely on: while `steer_source` is attached,
connections from CHECK_SOURCE reach the candidate's socket and every other one the serving
socket; `end_source_steering` puts every connection back on the serving socket."""

from __future__ import annotations

import socket

import pytest

from pitstop.supervisor import sockets
from pitstop.supervisor.candidate import CHECK_SOURCE
from pitstop.taskfile.addresses import ListenAddress

pytestmark = pytest.mark.skipif(not sockets.STEERING, reason="reuseport steering is Linux-only")


def landed(listener_socks: dict[str, socket.socket], port: int, source: str) -> list[str]:
    """Connect from `source`; the names of the sockets whose queue got the connection."""
    with socket.socket() as client:
        client.bind((source, 0))
        client.connect(("127.0.0.1", port))
        got = []
        for name, sock in listener_socks.items():
            if sockets.accept_queue_length(sock):
                conn, _ = sock.accept()
                conn.close()
                got.append(name)
        return got


def test_connections_from_the_check_source_reach_the_candidate_only() -> None:
    listener = sockets.Listener(ListenAddress("tcp", "127.0.0.1", 0))
    serving = listener.open()
    try:
        candidate = listener.add()
        port = listener.address.port
        socks = {"serving": serving, "candidate": candidate}
        assert listener.can_steer_by_source()
        listener.steer_source(candidate, CHECK_SOURCE)
        for _ in range(5):
            assert landed(socks, port, CHECK_SOURCE) == ["candidate"]
            assert landed(socks, port, "127.0.0.1") == ["serving"]
        listener.end_source_steering()
        for _ in range(5):
            assert landed(socks, port, CHECK_SOURCE) == ["serving"]
    finally:
        listener.close()
