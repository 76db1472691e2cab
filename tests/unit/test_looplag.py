"""The loop-lag probe and the collector tuning alone (no IO): a blocked loop shows up as lag in
the histogram and the max gauge, collections are timed by generation, the gc hook goes away with
the probe, and settle_heap freezes what start-up left."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from omnistock.gctune import settle_heap
from omnistock.looplag import LoopLag
from omnistock.metrics import Metrics


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _over(lag: LoopLag, seconds: float) -> int:
    """Lag observations above ``seconds`` (a bucket bound)."""
    counts = lag.lag.counts.get((), [])
    cut = lag.lag.buckets.index(seconds) + 1
    return sum(counts[cut:])


async def test_a_blocked_loop_is_seen_as_lag() -> None:
    metrics = Metrics()
    lag = LoopLag(metrics)
    probe = asyncio.create_task(lag.run(0.02))
    try:
        await _until(lambda: sum(lag.lag.counts.get((), [])) >= 3)
        assert _over(lag, 0.1) == 0
        time.sleep(0.3)  # noqa: ASYNC251 -- holding the loop is the point: the timer fires late
        await _until(lambda: _over(lag, 0.1) >= 1)
        assert _over(lag, 0.25) == 1
        assert 0.25 <= lag.recent_max() < 5.0
        text = metrics.render()
        assert 'omnistock_event_loop_lag_seconds_bucket{le="0.25"}' in text
        gauge = [x for x in text.splitlines() if x.startswith("omnistock_event_loop_lag_max_")]
        assert gauge == [f"omnistock_event_loop_lag_max_seconds {lag.recent_max()}"]
    finally:
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)


async def test_collections_are_timed_by_generation_while_the_probe_runs() -> None:
    metrics = Metrics()
    lag = LoopLag(metrics)
    probe = asyncio.create_task(lag.run(0.05))
    try:
        await _until(lambda: lag._on_gc in gc.callbacks)
        gc.collect()
        gc.collect(0)
        assert sum(lag.gc_pause.counts[(("generation", "2"),)]) >= 1
        assert sum(lag.gc_pause.counts[(("generation", "0"),)]) >= 1
        assert 'omnistock_gc_pause_seconds_count{generation="2"}' in metrics.render()
    finally:
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
    assert lag._on_gc not in gc.callbacks  # a restarted probe does not hook twice


def test_the_max_gauge_forgets_lag_older_than_a_minute() -> None:
    lag = LoopLag(Metrics())
    now = time.monotonic()
    lag.record(0.5, now - 120)
    lag.record(0.02, now)
    assert lag.recent_max() == 0.02


def test_settle_heap_freezes_what_start_up_left() -> None:
    built_at_start_up: list[object] = []
    built_at_start_up.append(built_at_start_up)  # a cycle: tracked by the collector
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000  # modules, classes, functions of this process
        tracked = [o for g in range(3) for o in gc.get_objects(generation=g)]
        assert not any(o is built_at_start_up for o in tracked)  # no collection walks it now
    finally:
        gc.unfreeze()
