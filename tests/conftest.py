"""For the whole suite: running the tests never pops up a desktop notification (an alert's
notify-send/osascript). The tests that check notifications turn them on again, with a fake
notify-send first on PATH."""

from __future__ import annotations

import os

# Set at import, before any test: every child process (the e2e tests' pitstop runs) inherits it.
os.environ["PITSTOP_NOTIFY"] = "0"
