"""The figures of one swap: what was served and what failed while two versions were running.

A swap's window opens when the candidate starts (right after its build succeeded, before it
is ready) and closes when the old instance has drained and stopped and its share of the
frontend has been released. Requests are counted in the window they end in; the running
totals (`Frontend.traffic`) count every request once. In socket mode the window carries
what the listening sockets counted instead (`ListenerTally`): a retired socket's figures
are final only once it is closed, which is why the window closes after the release.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pitstop.supervisor import events as ev
from pitstop.supervisor.frontends import Frontend


@dataclass(frozen=True)
class SwapWindow:
    old: int
    new: int
    opened: float  # time.monotonic()
    traffic: ev.Traffic | ev.ListenerTally | None  # the frontend's totals when it opened
    old_served: int | None  # what the old instance had served by then

    @classmethod
    def open(cls, frontend: Frontend, old: int, new: int) -> SwapWindow:
        return cls(old, new, time.monotonic(), frontend.traffic(), frontend.served_by(old))

    def close(self, frontend: Frontend, release: Callable[[], None]) -> ev.SwapFinished:
        """The swap's event; `release` releases the old instance's share of the frontend
        (called here, between the readings that must come before and after it)."""
        ms = round((time.monotonic() - self.opened) * 1000)
        old_served = frontend.served_by(self.old)  # the proxy forgets it at the release
        release()
        now, before = frontend.traffic(), self.traffic
        if isinstance(now, ev.ListenerTally) and isinstance(before, ev.ListenerTally):
            tally = now - before
            return ev.SwapFinished(
                self.old,
                self.new,
                ms,
                failed=tally.failed,
                dropped=tally.dropped,
                reset=tally.reset,
            )
        if (
            not isinstance(now, ev.Traffic)
            or not isinstance(before, ev.Traffic)
            or old_served is None
            or self.old_served is None
        ):
            return ev.SwapFinished(self.old, self.new, ms)
        during = now - before
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
