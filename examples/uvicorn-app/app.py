"""A minimal ASGI app for pitstop's socket hand-off mode (`uvicorn app:app --fd 3`).

Change VERSION and save: the new version starts on the same listening socket, and the old
one stops (uvicorn finishes its in-flight requests on SIGTERM) once the new one is ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

VERSION = "v1"

Scope = dict[str, Any]
Message = dict[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = f"hello from uvicorn-app {VERSION}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
