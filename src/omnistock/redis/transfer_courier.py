"""The transfer courier: settles the transfers their drivers left pending.

A serving process settles its transfer within milliseconds (the ``to`` side written and the
record confirmed; or a cancel withdrawn at ``to`` and the units back at ``from``). One that
crashed between the steps leaves the record in its partition's pending set; once the lease has
passed, the courier claims it (transfer_claim.lua renews the lease, so one courier drives it at a
time) and drives it forward with the serving path's routine. Safe with several workers.
"""

from __future__ import annotations

import logging

from omnistock.redis.couriers import ACTOR, carry_due, run_rounds
from omnistock.redis.store import StockStore

log = logging.getLogger("omnistock.courier")


async def transfer_courier_once(
    store: StockStore, batch: int, reported: set[str] | None = None
) -> int:
    """Drive every pending transfer whose lease has passed (at most ``batch`` per partition);
    how many were settled here (couriers.carry_due says what happens on errors)."""
    due = await store.due_transfers(batch)
    return await carry_due("transfer", due, lambda tid: _carry(store, tid), reported)


async def _carry(store: StockStore, transfer_id: str) -> bool:
    """Claim and drive one transfer; True when it is no longer pending."""
    record = await store.claim_transfer(transfer_id, ACTOR)
    if record is None:
        return False
    after = await store.drive_transfer(record, ACTOR)
    log.info("courier: transfer %s settled: %s", transfer_id, after.status)
    return not after.pending


async def run_transfer_courier(store: StockStore, interval: float, batch: int) -> None:
    """Settle due transfers every ``interval`` seconds until cancelled."""
    await run_rounds(
        "transfer", lambda reported: transfer_courier_once(store, batch, reported), interval
    )
