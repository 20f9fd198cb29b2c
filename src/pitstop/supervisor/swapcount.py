"""The figures of one swap: what was served and what failed while two versions were running.

A swap's window opens when the candidate starts (right after its build succeeded, before it
is ready) and closes when the old instance has drained and stopped. Requests are counted in
the window they end in; the running totals (`Frontend.traffic`) count every request once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pitstop.supervisor import events as ev
from pitstop.supervisor.frontends import Frontend


@dataclass(frozen=True)
class SwapWindow:
    old: int
    new: int
    opened: float  # time.monotonic()
    traffic: ev.Traffic | None  # the frontend's totals when the window opened
    old_served: int | None  # what the old instance had served by then

    @classmethod
    def open(cls, frontend: Frontend, old: int, new: int) -> SwapWindow:
        return cls(old, new, time.monotonic(), frontend.traffic(), frontend.served_by(old))

    def close(self, frontend: Frontend) -> ev.SwapFinished:
        """The swap's event; call before the old instance is released."""
        ms = round((time.monotonic() - self.opened) * 1000)
        now, old_served = frontend.traffic(), frontend.served_by(self.old)
        if now is None or self.traffic is None or old_served is None or self.old_served is None:
            return ev.SwapFinished(self.old, self.new, ms)
        during = now - self.traffic
        served_old = old_served - self.old_served
        return ev.SwapFinished(
            self.old,
            self.new,
            ms,
            served=during.served,
            served_old=served_old,
            served_new=during.served - served_old,
            failed=during.failed,
        )
