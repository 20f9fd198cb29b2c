"""The tests' load generator: it ends by time, and a wait on a stopped load fails at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import wait_until
from tests.load import Load


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.mark.parametrize("kind", ["new_connections", "keep_alive"])
def test_load_answers_on_every_client(address: tuple[str, int], kind: str) -> None:
    with getattr(Load, kind)(address, clients=3) as load:
        load.wait_to_see("hello")
        load.wait_for_more(20, each=True)
    assert load.failures == []
    assert all(len(worker.bodies) >= 20 for worker in load.workers)
    assert len(load.bodies) == sum(len(worker.bodies) for worker in load.workers)


def test_a_load_past_its_time_bound_fails_the_wait_at_once(address: tuple[str, int]) -> None:
    with Load.new_connections(address, clients=2, max_s=0.2) as load:
        wait_until(lambda: not any(w.thread.is_alive() for w in load.workers))
        # At once: a wait that timed out would say "condition not met" instead.
        with pytest.raises(AssertionError, match=r"load stopped: client 0 ended, its time bound"):
            load.wait_for_more(1, timeout=30)
        with pytest.raises(AssertionError, match="load stopped"):
            load.wait_to_see("hello", timeout=30)


def test_every_failed_request_is_recorded() -> None:
    closed = ("127.0.0.1", 1)  # nobody listens on port 1 of the loopback
    with Load.new_connections(closed) as load:
        load.wait_for_more(3)
    assert load.bodies == []
    assert len(load.failures) >= 3
    assert "ConnectionRefusedError" in load.failures[0]
