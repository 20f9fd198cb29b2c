"""Suite-wide set-up: running the tests never pops up a desktop notification, and nothing
they run writes to the user's own cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set at import, before any test: every child process (the e2e tests' pitstop runs) inherits
# it. The tests that check notifications turn them on again, with a fake notify-send first on
# PATH.
os.environ["PITSTOP_NOTIFY"] = "0"


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pitstop caches loaded task files under $XDG_CACHE_HOME/pitstop; the suite (and every
    pitstop it starts, which inherits the environment) uses a folder of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
