"""Parsing one typical browser request head: pitstop's scanner against h11 and httptools.

    .venv/bin/python benchmarks/proxy_heads.py [--n 20000]

The proxy's own scanner (supervisor/proxy/http11.scan_request) checks the whole head
strictly and finds the headers that decide framing and forwarding; h11 (pure Python, a
uvicorn dependency) and httptools (C, llhttp) are timed parsing the same bytes, when they
are installed. Prints the best of 5 runs, in microseconds per head.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pitstop.supervisor.proxy import http11

HEAD = (
    b"GET /static/app.js?v=123 HTTP/1.1\r\nHost: localhost:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=abcdef0123456789; theme=dark; _ga=GA1.1.123456789.1700000000\r\n"
    b"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Site: none\r\nSec-Fetch-User: ?1\r\nPriority: u=0, i\r\n\r\n"
)


def own() -> None:
    end = http11.find_head_end(HEAD)
    http11.scan_request(HEAD[: end + 2])


def parsers() -> dict[str, Callable[[], None]]:
    found = {"pitstop scan_request": own}
    try:
        import h11

        def parse_h11() -> None:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(HEAD)
            conn.next_event()

        found["h11"] = parse_h11
    except ImportError:
        pass
    try:
        import httptools

        class Callbacks:
            def on_header(self, name: bytes, value: bytes) -> None:
                pass

        def parse_httptools() -> None:
            httptools.HttpRequestParser(Callbacks()).feed_data(HEAD)

        found["httptools"] = parse_httptools
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print("$ .venv/bin/python benchmarks/proxy_heads.py " + " ".join(sys.argv[1:]))
    print(f"\n{len(HEAD)}-byte head, 14 header lines, best of 5 x {args.n:,}\n")
    print("| parser | µs per head |\n|---|---:|")
    for name, parse in parsers().items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(args.n):
                parse()
            best = min(best, (time.perf_counter() - start) / args.n)
        print(f"| {name} | {best * 1e6:.1f} |")


if __name__ == "__main__":
    main()
