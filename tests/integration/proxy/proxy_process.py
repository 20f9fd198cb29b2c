"""A proxy in its own process under a low fd limit.

    proxy_process.py BACKEND_PORT NOFILE HEAD [HOG]

Sets RLIMIT_NOFILE (soft and hard) to NOFILE, serves on a free port with head and keep-alive
timeouts of HEAD seconds (on uvloop if $PROXY_LOOP is "uvloop"), prints "PORT <n>", logs warnings and errors to stderr. With HOG,
it then uses up every free fd for HOG seconds (so accept() fails with EMFILE), prints
"HOGGING" when they are all taken, and gives them back after ("RELEASED").
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import sys

from pitstop.supervisor.proxy.server import Backend, Proxy, Timeouts


async def hog(seconds: float) -> None:
    files = []
    try:
        while True:
            files.append(open("/dev/null"))  # noqa: SIM115 - held on purpose
    except OSError:
        pass
    print("HOGGING", flush=True)
    await asyncio.sleep(seconds)
    for f in files:
        f.close()
    print("RELEASED", flush=True)


async def main(backend_port: int, head: float, hog_for: float) -> None:
    proxy = Proxy("http", timeouts=Timeouts(head=head, keepalive=head))
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    await proxy.start([listener])
    proxy.set_backend(Backend("127.0.0.1", backend_port, "#1"))
    print("PORT", listener.getsockname()[1], flush=True)
    if hog_for:
        await hog(hog_for)
    await asyncio.Event().wait()


if __name__ == "__main__":
    nofile = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    hog_for = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    coro = main(int(sys.argv[1]), float(sys.argv[3]), hog_for)
    if os.environ.get("PROXY_LOOP") == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
