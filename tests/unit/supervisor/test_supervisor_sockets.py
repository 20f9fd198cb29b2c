"""Binding listen addresses, and the exec shim that puts the sockets at fds 3, 4, ..."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pitstop.supervisor import notify, sockets
from pitstop.taskfile.addresses import parse_listen


def test_listen_env() -> None:
    assert sockets.listen_env(2, ["http", "admin"], 42) == {
        "LISTEN_FDS": "2",
        "LISTEN_FDNAMES": "http:admin",
        "LISTEN_PID": "42",
    }


def test_bind_port_zero_reports_the_bound_port() -> None:
    address = parse_listen("127.0.0.1:0")
    sock = sockets.bind(address)
    try:
        bound = sockets.bound_address(sock, address)
        assert bound.port != 0
        assert sock.getblocking()
    finally:
        sock.close()


def test_unix_socket_replaces_a_stale_file(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    sock = sockets.bind(parse_listen(path))
    sockets.close([sock], [parse_listen(path)])
    assert not os.path.exists(path)


def test_unix_socket_in_use_is_not_stolen(tmp_path: Path) -> None:
    address = parse_listen(str(tmp_path / "app.sock"))
    first = sockets.bind(address)
    try:
        with pytest.raises(OSError, match="in use"):
            sockets.bind(address)
    finally:
        first.close()


REPORT = (
    "import os, json, socket;"
    "print(json.dumps({'pid': os.getpid(), 'env': {k: os.environ.get(k) for k in "
    "('LISTEN_PID', 'LISTEN_FDS')}, 'ports': [socket.socket(fileno=os.dup(fd)).getsockname()[1]"
    " for fd in range(3, 3 + int(os.environ['LISTEN_FDS']))]}))"
)


def test_shim_moves_fds_to_3_and_sets_listen_pid() -> None:
    # Occupy low descriptors so that sources and targets overlap in interesting ways.
    socks = [sockets.bind(parse_listen("127.0.0.1:0")) for _ in range(3)]
    try:
        fds = [s.fileno() for s in reversed(socks)]
        ports = [s.getsockname()[1] for s in reversed(socks)]
        env = {**os.environ, **sockets.listen_env(3, ["a", "b", "c"])}
        proc = subprocess.Popen(
            sockets.shim_argv([sys.executable, "-c", REPORT], fds),
            pass_fds=fds,
            env=env,
            stdout=subprocess.PIPE,
        )
        out, _ = proc.communicate(timeout=10)
        report = json.loads(out)
        assert report["env"] == {"LISTEN_PID": str(proc.pid), "LISTEN_FDS": "3"}
        assert report["pid"] == proc.pid
        assert report["ports"] == ports
    finally:
        for s in socks:
            s.close()


def test_shim_reports_a_missing_program() -> None:
    proc = subprocess.run(
        sockets.shim_argv(["/nonexistent/program"], []), capture_output=True, timeout=10
    )
    assert proc.returncode == 127
    assert b"cannot start /nonexistent/program" in proc.stderr


def test_parse_notify_message() -> None:
    assert notify.parse_message(b"READY=1\nSTATUS=warming up\n") == {
        "READY": "1",
        "STATUS": "warming up",
    }
