"""Suite-wide set-up: nothing the tests run writes to the user's own cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pitstop caches loaded task files under $XDG_CACHE_HOME/pitstop; the suite (and every
    pitstop it starts, which inherits the environment) uses a folder of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
