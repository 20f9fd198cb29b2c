"""The watch settings' own values, in a module of their own: `settings` needs them for every
command, and importing the watch loop or the change reader for them cost a plain run ~10 ms
(asyncio aside) of watch code it never runs."""

from __future__ import annotations

import enum

# Milliseconds of quiet after a change before a rerun (--debounce).
DEFAULT_DEBOUNCE_MS = 50


class OnBusy(enum.Enum):
    """What a change does while a run is in progress (``--on-busy``)."""

    RESTART = "restart"
    QUEUE = "queue"
    IGNORE = "ignore"
