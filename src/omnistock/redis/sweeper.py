"""The expiry sweeper: releases reservations past ``expires_at`` through expire.lua.

Every instance runs one; the script ends a reservation only once, so they never double-release.
While Redis is being rebuilt the scripts answer "not ready": the sweeper waits that out at its
own pace, so expiry resumes within one interval of the rebuild's end. A reservation that cannot
be expired (a malformed record) is logged and skipped: it never holds the others back.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from omnistock.domain.errors import Unavailable
from omnistock.metrics import Metrics
from omnistock.redis.store import StockStore
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.sweeper")
_REPORTED_MAX = 1000  # ids whose failure was logged once already (bounded)


async def sweep_once(
    store: StockStore, metrics: Metrics | None = None, reported: set[str] | None = None
) -> int:
    """Expire everything due now; returns how many this call expired (also counted in
    ``metrics``). Redis errors and "not ready" propagate after the rest of the round; other
    failures skip their reservation (logged once per id when ``reported`` is given)."""
    expired = 0
    waiting: BaseException | None = None
    due = await store.due_reservations()
    for start in range(0, len(due), 50):
        chunk = due[start : start + 50]
        results = await asyncio.gather(
            *(store.expire(rid) for rid in chunk), return_exceptions=True
        )
        for rid, result in zip(chunk, results, strict=True):
            if isinstance(result, (RedisError, Unavailable, asyncio.CancelledError)):
                waiting = waiting or result
            elif isinstance(result, BaseException):
                if reported is None or rid not in reported:
                    log.error("sweeper: cannot expire reservation %s: %r", rid, result)
                    if reported is not None and len(reported) < _REPORTED_MAX:
                        reported.add(rid)
            elif result:
                expired += 1
    if expired and metrics is not None:
        metrics.expired.inc(expired)
    if waiting is not None:
        raise waiting
    return expired


async def run_sweeper(store: StockStore, interval: float, metrics: Metrics) -> None:
    """Sweep every ``interval`` seconds until cancelled; Redis outages and rebuilds are waited
    out (any other exception reaches the supervisor)."""
    reported: set[str] = set()
    rebuilding = False
    while True:
        try:
            await sweep_once(store, metrics, reported)
            if rebuilding:
                log.info("sweeper: the store is ready again; expiring")
            rebuilding = False
        except Unavailable:
            if not rebuilding:
                log.info("sweeper: the store is being rebuilt; waiting")
            rebuilding = True
        except RedisError as exc:
            reraise_if_cancelled()
            log.warning("sweeper: redis unavailable (%s)", exc)
        await asyncio.sleep(interval)
