"""The serving process runs the loop-lag probe (supervised, in /metrics) and has frozen what
start-up built, so full collections under load no longer walk it."""

from __future__ import annotations

import asyncio
import gc
import time

from tests.integration.conftest import Stack
from tests.integration.test_supervision import running


def _value(metrics: str, name: str) -> float:
    found = [line for line in metrics.splitlines() if line.startswith(name + " ")]
    assert len(found) == 1, name
    return float(found[0].split()[-1])


async def test_the_probe_reports_loop_lag_and_start_up_is_frozen(stack: Stack) -> None:
    async with running(stack, loop_lag_interval_seconds=0.02) as (svc, client):
        assert "looplag" in svc.supervisor.loops
        assert gc.get_freeze_count() > 1000
        deadline = time.monotonic() + 30
        while (
            _value((await client.get("/metrics")).text, "omnistock_event_loop_lag_seconds_count")
            < 5
        ):
            assert time.monotonic() < deadline, "the probe did not report"
            await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251 -- a stall of the serving loop, on purpose
        deadline = time.monotonic() + 30
        while (
            _value((await client.get("/metrics")).text, "omnistock_event_loop_lag_max_seconds")
            < 0.2
        ):
            assert time.monotonic() < deadline, "the stall was not seen"
            await asyncio.sleep(0.05)
        assert svc.supervisor.loops["looplag"].restarts == 0
