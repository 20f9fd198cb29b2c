"""A uvicorn app for the proxy's smuggling tests: run as `python asgi_app.py` with $PORT.

Answers "<METHOD> <path> <body>"; GET /seen lists every request it has handled, one
"<METHOD> <path>" a line, so a test can tell that no smuggled request reached it.
Prints "LISTENING <port>" once uvicorn accepts connections.
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn

SEEN: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
            print(f"LISTENING {os.environ['PORT']}", flush=True)
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/seen":
        answer = "\n".join(SEEN).encode()
    else:
        SEEN.append(f"{scope['method']} {scope['path']}")
        answer = f"{scope['method']} {scope['path']} ".encode() + body
    headers = [(b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
        log_level="warning",
    )
