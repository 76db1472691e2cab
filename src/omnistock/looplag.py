"""Event-loop lag and garbage-collection pauses of the serving process, for /metrics.

Tail latency on one worker comes from stalls (the loop busy with one thing while requests wait),
not from throughput. Two cheap probes show them: a supervised task that sleeps ``interval`` and
records how much later than asked it woke up (anything that held the loop: a long callback, a
collection, a burst of background work), and a ``gc.callbacks`` hook that times every collection
by generation (collections stop the loop too, and are the usual cause of rare long pauses).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from omnistock.metrics import Histogram, Metrics

LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
WINDOW_SECONDS = 60.0  # the max gauge covers about the last minute
_SLOTS = 6


class LoopLag:
    """The lag histogram, the largest lag of about the last minute, and collection pauses."""

    def __init__(self, metrics: Metrics) -> None:
        self.lag = Histogram(
            "omnistock_event_loop_lag_seconds",
            "How much later than scheduled the event loop ran the lag probe's timer",
            LAG_BUCKETS,
        )
        self.gc_pause = Histogram(
            "omnistock_gc_pause_seconds",
            "Garbage collections of the serving process, by generation (they stop the loop)",
            GC_BUCKETS,
        )
        metrics.extra.extend([self.lag, self.gc_pause])
        metrics.gauge(
            "omnistock_event_loop_lag_max_seconds",
            "Largest event-loop lag the probe saw in about the last minute",
            self.recent_max,
        )
        # Maxima per slot of WINDOW_SECONDS / _SLOTS, keyed by the slot's number.
        self._maxima: dict[int, float] = {}
        self._gc_started = 0.0

    def record(self, lag: float, now: float) -> None:
        """Count one probe's lag (seconds) seen at ``now`` (time.monotonic())."""
        self.lag.observe(lag)
        slot = int(now // (WINDOW_SECONDS / _SLOTS))
        self._maxima[slot] = max(lag, self._maxima.get(slot, 0.0))
        for old in [s for s in self._maxima if s <= slot - _SLOTS]:
            del self._maxima[old]

    def recent_max(self) -> float:
        """The largest lag of the current and the previous slots (about the last minute)."""
        slot = int(time.monotonic() // (WINDOW_SECONDS / _SLOTS))
        return max((v for s, v in self._maxima.items() if s > slot - _SLOTS), default=0.0)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            pause = time.perf_counter() - self._gc_started
            self.gc_pause.observe(pause, generation=str(info.get("generation", "?")))

    async def run(self, interval: float) -> None:
        """Sleep ``interval`` seconds over and over and record how late each wake-up was; time
        the process's collections meanwhile. Runs until cancelled."""
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                asked = time.perf_counter()
                await asyncio.sleep(interval)
                woke = time.perf_counter()
                self.record(max(0.0, woke - asked - interval), time.monotonic())
        finally:
            gc.callbacks.remove(self._on_gc)
