"""The supervisor alone (no IO): restarts with a doubling, capped delay that resets after a
healthy run, counts every restart, reports failing loops until they run healthily, stops."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from omnistock.metrics import Metrics
from omnistock.postgres.prune import DAY, Retention
from omnistock.settings import Settings
from omnistock.supervisor import Supervisor


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _supervisor(metrics: Metrics) -> Supervisor:
    return Supervisor(metrics, backoff_initial=0.05, backoff_max=0.2, healthy_seconds=0.5)


async def test_restarts_with_doubling_capped_backoff_then_recovers() -> None:
    metrics = Metrics()
    sup = _supervisor(metrics)
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(loop.time())
        if len(starts) <= 5:
            raise RuntimeError(f"failure {len(starts)}")
        await asyncio.Event().wait()  # healthy for ever

    sup.spawn("flaky", flaky)
    await _until(lambda: len(starts) >= 6)
    assert sup.failing() == {"flaky": "RuntimeError: failure 5"}
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for gap, delay in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2], strict=True):
        assert delay <= gap < delay + 0.15  # capped: never the 0.4 s doubling would give
    assert sup.loops["flaky"].restarts == 5
    assert 'omnistock_background_restarts_total{loop="flaky"} 5.0' in metrics.render()
    await asyncio.sleep(0.55)  # a healthy run: no longer failing
    assert sup.failing() == {}
    await sup.stop()
    assert all(task.done() for task in sup.tasks)


async def test_a_healthy_run_resets_the_backoff() -> None:
    sup = _supervisor(Metrics())
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    ends: list[float] = []

    async def fails_after_a_while() -> None:
        starts.append(loop.time())
        if len(starts) == 4:
            await asyncio.sleep(0.55)  # longer than healthy_seconds, then fails again
        ends.append(loop.time())
        raise ValueError("again")

    sup.spawn("x", fails_after_a_while)
    await _until(lambda: len(starts) >= 5)
    await sup.stop()
    waited = [start - end for end, start in zip(ends, starts[1:], strict=False)]
    # 0.05, 0.1, 0.2; run 4 was healthy, so 0.05 again (not the 0.2 cap).
    assert 0.2 <= waited[2] < 0.35
    assert 0.05 <= waited[3] < 0.15


async def test_a_loop_that_ends_by_itself_is_restarted_and_stop_ends_every_loop() -> None:
    sup = _supervisor(Metrics())
    runs = 0

    async def returns() -> None:
        nonlocal runs
        runs += 1

    async def stubborn() -> None:
        swallowed = False
        while True:  # swallows the first cancellation, as a client library may
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True

    sup.spawn("returns", returns)
    sup.spawn("stubborn", stubborn)
    await _until(lambda: runs >= 3)
    assert sup.failing()["returns"] == "ended by itself"
    with pytest.raises(ValueError, match="already supervised"):
        sup.spawn("returns", returns)
    await asyncio.wait_for(sup.stop(), 5)
    assert all(task.done() for task in sup.tasks)
    assert sup.loops["stubborn"].restarts == 0  # stopping is not a failure


def test_retention_never_shorter_than_what_must_stay() -> None:
    settings = Settings(
        ledger_retention_days=1,
        reservation_retention_days=1,
        stream_retention_seconds=3 * DAY,
        finished_reservation_retention_seconds=3600,
        prune_batch=50,
    )
    floor = 3 * DAY + 3600
    assert Retention.from_settings(settings) == Retention(
        ledger_seconds=floor,
        reservations_seconds=floor,
        batch=50,
        supply_seconds=400 * DAY,
        transfers_seconds=400 * DAY,
    )
    kept = Settings(
        ledger_retention_days=0,
        reservation_retention_days=0,
        supply_retention_days=0,
        transfer_retention_days=0,
    )
    assert Retention.from_settings(kept) == Retention(
        ledger_seconds=0, reservations_seconds=0, batch=1000
    )
    defaults = Retention.from_settings(Settings())
    assert (defaults.ledger_seconds, defaults.reservations_seconds) == (400 * DAY, 90 * DAY)
