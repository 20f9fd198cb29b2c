from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .support import App, ProxyThread


@pytest.fixture
def apps() -> Iterator[Callable[..., App]]:
    started: list[App] = []

    def start(version: str, kind: str = "python") -> App:
        app = App(version, kind)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def proxies() -> Iterator[Callable[..., ProxyThread]]:
    made: list[ProxyThread] = []

    def make(mode: str = "http", loop: str = "asyncio", **kwargs: Any) -> ProxyThread:
        proxy = ProxyThread(mode, loop, **kwargs)  # type: ignore[arg-type]
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
