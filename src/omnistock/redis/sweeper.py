"""The expiry sweeper: releases reservations past ``expires_at`` through expire.lua.

Every instance runs one; the script ends a reservation only once, so they never double-release.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from omnistock.metrics import Metrics
from omnistock.redis.store import StockStore
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.sweeper")


async def sweep_once(store: StockStore) -> int:
    """Expire everything due now; returns how many this call expired."""
    expired = 0
    due = await store.due_reservations()
    for start in range(0, len(due), 50):
        results = await asyncio.gather(*(store.expire(rid) for rid in due[start : start + 50]))
        expired += sum(results)
    return expired


async def run_sweeper(store: StockStore, interval: float, metrics: Metrics) -> None:
    """Sweep every ``interval`` seconds until cancelled; Redis outages are waited out."""
    while True:
        try:
            n = await sweep_once(store)
            if n:
                metrics.expired.inc(n)
        except RedisError as exc:
            reraise_if_cancelled()
            log.warning("sweeper: redis unavailable (%s)", exc)
        await asyncio.sleep(interval)
