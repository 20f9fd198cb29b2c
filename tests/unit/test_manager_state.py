"""The project's state folder, the control socket's place and the one-daemon lock."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from pitstop.errors import UserError
from pitstop.manager.state import DaemonLock, ProjectState, remove_stale_socket


def _state(tmp_path: Path) -> ProjectState:
    taskfile = tmp_path / "project" / "pitstop.toml"
    taskfile.parent.mkdir()
    taskfile.write_text("")
    return ProjectState.for_taskfile(taskfile, tmp_path / "run")


def test_paths_follow_the_task_file(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert state.folder == tmp_path / "project" / ".pitstop"
    assert state.socket_path.parent == tmp_path / "run"
    # Another project gets another socket; the same one the same.
    other = tmp_path / "other" / "pitstop.toml"
    assert ProjectState.for_taskfile(other, tmp_path / "run").socket_path != state.socket_path
    assert ProjectState.for_taskfile(state.taskfile, tmp_path / "run") == state


def test_the_socket_folder_is_private(tmp_path: Path) -> None:
    state = _state(tmp_path)
    (tmp_path / "run").mkdir(mode=0o755)
    state.prepare()
    assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o700
    assert (state.folder / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_second_daemon_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    state = _state(tmp_path)
    first = DaemonLock(state)
    first.acquire()
    try:
        assert state.running_pid() == os.getpid()
        assert state.recorded_socket() == state.socket_path
        with pytest.raises(UserError, match=f"already runs.*pid {os.getpid()}"):
            DaemonLock(state).acquire()
    finally:
        first.release()
    assert state.running_pid() is None
    assert not state.pid_path.exists()
    second = DaemonLock(state)
    second.acquire()  # free again
    second.release()


def test_a_stale_socket_is_removed_but_not_another_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # what a killed daemon leaves: a socket file nobody listens on
    remove_stale_socket(path)
    assert not path.exists()
    path.write_text("mine")
    with pytest.raises(UserError, match="not a socket"):
        remove_stale_socket(path)
