"""The transfer courier: settles the transfers their drivers left pending.

A serving process settles its transfer within milliseconds (the ``to`` side written and the
record confirmed; or a cancel withdrawn at ``to`` and the units back at ``from``). One that
crashed between the steps leaves the record in its partition's pending set; once the lease has
passed, the courier claims it (transfer_claim.lua renews the lease, so one courier drives it at a
time) and drives it forward with the serving path's routine. Safe with several workers.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from omnistock.domain.errors import Unavailable
from omnistock.redis.store import StockStore
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.courier")
ACTOR = "system:courier"
_REPORTED_MAX = 1000


async def transfer_courier_once(
    store: StockStore, batch: int, reported: set[str] | None = None
) -> int:
    """Drive every pending transfer whose lease has passed (at most ``batch`` per partition);
    how many were settled here. Redis errors and "not ready" propagate after the round; another
    failure skips its transfer (logged once per id when ``reported`` is given)."""
    due = await store.due_transfers(batch)
    results = await asyncio.gather(*(_carry(store, tid) for tid in due), return_exceptions=True)
    done = 0
    waiting: BaseException | None = None
    for tid, result in zip(due, results, strict=True):
        if isinstance(result, (RedisError, Unavailable, asyncio.CancelledError)):
            waiting = waiting or result
        elif isinstance(result, BaseException):
            if reported is None or tid not in reported:
                log.error("courier: cannot settle transfer %s: %r", tid, result)
                if reported is not None and len(reported) < _REPORTED_MAX:
                    reported.add(tid)
        elif result:
            done += 1
    if waiting is not None:
        raise waiting
    return done


async def _carry(store: StockStore, transfer_id: str) -> bool:
    """Claim and drive one transfer; True when it is no longer pending."""
    record = await store.claim_transfer(transfer_id, ACTOR)
    if record is None:
        return False
    after = await store.drive_transfer(record, ACTOR)
    log.info("courier: transfer %s settled: %s", transfer_id, after.status)
    return not after.pending


async def run_transfer_courier(store: StockStore, interval: float, batch: int) -> None:
    """Settle due transfers every ``interval`` seconds until cancelled; outages and rebuilds are
    waited out (anything else reaches the supervisor)."""
    reported: set[str] = set()
    while True:
        try:
            await transfer_courier_once(store, batch, reported)
        except Unavailable:
            pass  # being rebuilt: the records come back with it
        except RedisError as exc:
            reraise_if_cancelled()
            log.warning("transfer courier: redis unavailable (%s)", exc)
        await asyncio.sleep(interval)
