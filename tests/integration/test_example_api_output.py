"""examples/dev-env's API prints one whole line per request, however many requests run at
once: `pitstop up` shows its output line by line, and a line cut in two reads as garbage."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.helpers import free_port, wait_for_port

SERVER = Path(__file__).resolve().parents[2] / "examples" / "dev-env" / "api" / "server.py"
LINE = re.compile(r"GET /hello -> 200|api v\d+ (serving|stopped)")


def test_concurrent_requests_give_whole_lines(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "api.out"
    with out.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, str(SERVER)],
            # Unbuffered, as many set it for their dev servers: each write is a syscall of
            # its own, so a line printed in two writes is cut whenever threads overlap.
            env={"PORT": str(port), "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    failures: list[BaseException] = []
    try:
        wait_for_port("127.0.0.1", port)
        end = time.monotonic() + 3.0  # the load stops by time

        def client() -> None:
            try:
                while time.monotonic() < end:
                    url = f"http://127.0.0.1:{port}/hello"
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        answer.read()
            except BaseException as error:
                failures.append(error)

        clients = [threading.Thread(target=client) for _ in range(6)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=30)
        assert failures == [], f"the load stopped: {failures[0]!r}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    lines = out.read_text().splitlines()
    assert sum(line == "GET /hello -> 200" for line in lines) > 100, lines[:5]
    broken = [line for line in lines if not LINE.fullmatch(line)]
    assert broken == [], f"{len(broken)} of {len(lines)} lines broken: {broken[:5]}"
