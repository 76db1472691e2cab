"""The sourcing courier: finishes or undoes the sourcing holds their drivers left unfinished.

A serving process drives its hold within milliseconds; one that crashed (or stalled past the
lease) leaves the record pending or compensating in its partition's pending set. Once the lease
has passed, the courier claims the record (sourcing_claim.lua renews the lease, so one courier
drives it at a time) and drives it with the same routine as the serving path: every recorded part
held -> held; else every part undone -> failed. It never re-plans. Safe with several workers.
"""

from __future__ import annotations

import logging

from omnistock.redis.couriers import ACTOR, carry_due, run_rounds
from omnistock.redis.store import StockStore

log = logging.getLogger("omnistock.courier")


async def courier_once(store: StockStore, batch: int, reported: set[str] | None = None) -> int:
    """Drive every hold whose lease has passed (at most ``batch`` per partition); how many this
    call moved to a finished state (couriers.carry_due says what happens on errors)."""
    due = await store.due_holds(batch)
    return await carry_due("sourcing hold", due, lambda hid: _carry(store, hid), reported)


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
    """Carry due holds every ``interval`` seconds until cancelled."""
    await run_rounds("sourcing", lambda reported: courier_once(store, batch, reported), interval)
