"""The control socket's client: what `pitstop ps`, `logs`, `restart`... use (no event loop).

`http.client` over a Unix socket; a refused or missing socket means no daemon runs.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pitstop.errors import PitstopError, UserError


class NoDaemon(PitstopError):
    """No `pitstop up` runs for this project. `exit_code` is set by the verb (ps: 1)."""

    def __init__(self, taskfile: Path, exit_code: int = 2) -> None:
        super().__init__(
            f"no daemon runs for {taskfile}",
            hint="start one with `pitstop up -d` (or `pitstop up` in another terminal)",
        )
        self.exit_code = exit_code


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("pitstop", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """Requests to one daemon. `timeout` bounds each wait for data (None: wait as long as
    it takes, for restart and streams)."""

    def __init__(self, socket_path: Path, taskfile: Path, no_daemon_exit: int = 2) -> None:
        self.socket_path = socket_path
        self.taskfile = taskfile
        self.no_daemon_exit = no_daemon_exit

    def get(self, path: str, timeout: float | None = 30.0) -> Any:
        return self._json("GET", path, timeout)

    def post(self, path: str, timeout: float | None = None) -> Any:
        return self._json("POST", path, timeout)

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        """Each NDJSON line of a streamed response, as it comes, until the daemon ends it."""
        conn, response = self._request("GET", path, None)
        try:
            while line := response.readline():
                yield json.loads(line)
        except (ConnectionError, http.client.IncompleteRead):
            return
        finally:
            conn.close()

    def _json(self, method: str, path: str, timeout: float | None) -> Any:
        conn, response = self._request(method, path, timeout)
        try:
            return json.loads(response.read())
        finally:
            conn.close()

    def _request(
        self, method: str, path: str, timeout: float | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = _UnixConnection(self.socket_path, timeout)
        try:
            conn.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            raise NoDaemon(self.taskfile, self.no_daemon_exit) from None
        except OSError as exc:
            conn.close()
            raise PitstopError(f"the daemon's socket {self.socket_path}: {exc}") from None
        try:
            response = conn.getresponse()
        except (ConnectionError, http.client.HTTPException) as exc:
            conn.close()
            raise PitstopError(f"the daemon did not answer: {exc}") from None
        if response.status != 200:
            body = response.read()
            conn.close()
            raise _refusal(response.status, body)
        return conn, response


def _refusal(status: int, body: bytes) -> PitstopError:
    try:
        data = json.loads(body)
        message, hint = str(data["error"]), data.get("hint")
    except (ValueError, KeyError, TypeError):
        message, hint = body.decode("utf-8", "replace").strip() or f"status {status}", None
    if status in (404, 405, 409):
        return UserError(message, hint=hint)
    return PitstopError(f"the daemon refused: {message}", hint=hint)
