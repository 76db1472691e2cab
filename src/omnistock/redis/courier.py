"""The sourcing courier: finishes or undoes the sourcing holds their drivers left unfinished.

A serving process drives its hold within milliseconds; one that crashed (or stalled past the
lease) leaves the record pending or compensating in its partition's pending set. Once the lease
has passed, the courier claims the record (sourcing_claim.lua renews the lease, so one courier
drives it at a time) and drives it with the same routine as the serving path: every recorded part
held -> held; else every part undone -> failed. It never re-plans. Safe with several workers.
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


async def courier_once(store: StockStore, batch: int, reported: set[str] | None = None) -> int:
    """Drive every hold whose lease has passed (at most ``batch`` per partition); how many this
    call moved to a finished state. Redis errors and "not ready" propagate after the round;
    another failure skips its hold (logged once per id when ``reported`` is given)."""
    due = await store.due_holds(batch)
    results = await asyncio.gather(*(_carry(store, hid) for hid in due), return_exceptions=True)
    done = 0
    waiting: BaseException | None = None
    for hid, result in zip(due, results, strict=True):
        if isinstance(result, (RedisError, Unavailable, asyncio.CancelledError)):
            waiting = waiting or result
        elif isinstance(result, BaseException):
            if reported is None or hid not in reported:
                log.error("courier: cannot finish sourcing hold %s: %r", hid, result)
                if reported is not None and len(reported) < _REPORTED_MAX:
                    reported.add(hid)
        elif result:
            done += 1
    if waiting is not None:
        raise waiting
    return done


async def _carry(store: StockStore, hold_id: str) -> bool:
    """Claim and drive one hold; True when it ended held or failed here."""
    record = await store.claim_hold(hold_id, ACTOR)
    if record is None:
        return False
    driven = await store.drive(record, ACTOR)
    current = driven.record
    if current.status == "held":
        log.info("courier: sourcing hold %s finished: held", hold_id)
        return True
    if current.status == "compensating" and current.attempt == record.attempt:
        failed = await store.fail_hold(current, driven.shortages, ACTOR)
        log.info("courier: sourcing hold %s undone: failed", hold_id)
        return failed.code == 0
    return False


async def run_courier(store: StockStore, interval: float, batch: int) -> None:
    """Carry due holds every ``interval`` seconds until cancelled; outages and rebuilds are
    waited out (anything else reaches the supervisor)."""
    reported: set[str] = set()
    while True:
        try:
            await courier_once(store, batch, reported)
        except Unavailable:
            pass  # being rebuilt: the records come back with it
        except RedisError as exc:
            reraise_if_cancelled()
            log.warning("courier: redis unavailable (%s)", exc)
        await asyncio.sleep(interval)
