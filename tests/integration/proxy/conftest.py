from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .support import App, ProxyThread


@pytest.fixture
def apps() -> Iterator[Callable[..., App]]:
    started: list[App] = []

    def start(version: str, kind: str = "python", **env: str) -> App:
        app = App(version, kind, **env)
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


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A proxy that 'works' while logging tracebacks (or asyncio complaints) fails here."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
