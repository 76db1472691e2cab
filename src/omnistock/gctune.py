"""Collector tuning once start-up is done (tail latency, issue 11).

A full collection walks every tracked object. After start-up most of them (modules, the app and
its routes, the OpenAPI schema, caches) live for the life of the process, so each full collection
under load re-walks them while requests wait: 40-100 ms on one worker, measured with the
``omnistock_gc_pause_seconds`` histogram (looplag.py). ``gc.freeze()`` moves them to the permanent
generation, out of every later collection (0.5 ms then); the collector keeps working on what
requests allocate. The young generations' thresholds stay Python's: their collections take about
0.1 ms each and did not show in the tail.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect once and freeze what survives: call it when start-up is done."""
    gc.collect()
    gc.freeze()
