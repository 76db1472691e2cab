"""Whether a process's stream reader reads at all. With no subscription on this process nothing
would be told of what it reads, so it reads nothing (on a cluster a blocking XREAD per partition
stream wakes on every write: that costs a serve process CPU for no one). The first subscription
starts it again from the streams' current ends before its ``subscribed`` reply names a cursor,
so ``since`` catch-up plus the live flow stay gapless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class ReaderActivity:
    """Idle/active state of one fan-out reader (one or many reading tasks)."""

    def __init__(self, busy: Callable[[], bool], refresh: Callable[[], Awaitable[None]]) -> None:
        self._busy = busy  # does a subscription here need the reader?
        self._refresh = refresh  # moves the reader's positions to the streams' ends
        self.active = False
        self.starts = 0  # idle -> active transitions, for /metrics
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Make the reader active, its positions refreshed first (call after registering the
        subscription that needs it: from then on the reader cannot go idle)."""
        async with self._lock:  # one refresh for subscriptions arriving together
            if self.active:
                return
            await self._refresh()
            self.active = True
            self.starts += 1
            self._wake.set()

    async def wait(self) -> None:
        """Return at once while a subscription needs the reader; otherwise go idle (no await
        between the check and the state change) and wait for :meth:`start`."""
        while not (self.active and self._busy()):
            if self.active:
                self.active = False
                self._wake.clear()
            await self._wake.wait()
