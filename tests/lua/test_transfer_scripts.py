"""The transfer scripts on a real Valkey: state, schedules and events of each step, and every
return code (refusals write nothing; steps keyed by the transfer id are harmless to replay)."""

from __future__ import annotations

import pytest

from omnistock.domain.errors import (
    NotFound,
    Shortage,
    TransferConflict,
    ValidationFailed,
)
from omnistock.domain.ids import new_transfer_id
from omnistock.domain.transfers import StoredTransfer
from omnistock.redis import keys, scripts
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe

ETA = 1_796_000_000_000


async def first_step(
    store: StockStore, src: str, dst: str, lines: list[tuple[str, int]], eta: int | None = ETA
) -> StoredTransfer:
    record, replayed = await store.create_transfer(
        transfer_id=new_transfer_id(store.partition(src)), source=src, to=dst, eta_ms=eta,
        ref="TR", lines=lines, actor="erp", idem=None,
    )  # fmt: skip
    assert not replayed
    return record


async def lengths(store: StockStore, *locs: str) -> list[int]:
    return [await store.client.xlen(keys.stream(store.partition(loc))) for loc in locs]


async def stocked(store: StockStore, probe: Probe, uid: str, **skus: int) -> tuple[str, str]:
    from omnistock.domain.commands import Adjustment

    src, dst = f"{uid}-f", f"{uid}-t"
    await probe.location(src)
    await probe.location(dst)
    items = [Adjustment(src, sku, qty, "receipt") for sku, qty in skus.items()]
    await store.adjust(items, "erp", None)
    return src, dst


async def test_steps_state_schedules_and_events(store: StockStore, probe: Probe, uid: str) -> None:
    src, dst = await stocked(store, probe, uid, a=5, b=2)
    record = await first_step(store, src, dst, [("a", 3), ("b", 2)])
    p, q = store.partition(src), store.partition(dst)
    assert record.pending and record.status == "in_transit" and record.side == "from"
    assert await store.client.zscore(keys.transfer_pending(p), record.id) == record.lease_until
    assert (await probe.position(src, "a"))["oh"] == "2"
    assert (await probe.position(src, "b"))["oh"] == "0"
    assert await store.get_shadow(dst, record.id) is None
    # The last event of `from`'s stream is the record's (t, k=create).
    ((_, fields),) = await store.client.xrevrange(keys.stream(p), count=1)
    assert fields[b"k"] == b"create" and b"t" in fields
    shadow = await store.arrive_transfer(record, "erp")
    assert (shadow.side, shadow.status, shadow.from_, shadow.to) == ("to", "in_transit", src, dst)
    sched = await store.client.zrange(keys.incoming_schedule(q, dst, "a"), 0, -1, withscores=True)
    assert sched == [(f"t:{record.id}:3".encode(), float(ETA))]
    assert (await probe.position(dst, "a"))["in"] == "3"
    # Replaying the arrival does nothing.
    before = await lengths(store, dst)
    again = await store.arrive_transfer(record, "erp")
    assert again == shadow and await lengths(store, dst) == before
    assert (await probe.position(dst, "a"))["in"] == "3"
    reply = await store.confirm_transfer(record.id, "in_transit", "in_transit", "erp")
    assert reply.code == scripts.OK
    assert await store.client.zscore(keys.transfer_pending(p), record.id) is None
    assert not (await store.get_transfer(record.id)).pending  # type: ignore[union-attr]
    reply = await store.confirm_transfer(record.id, "in_transit", "in_transit", "erp")
    assert reply.code == scripts.OK and reply.replayed  # nothing changed
    shadow, _ = await store.receive_transfer(record, [("a", 1)], True, "erp", None)
    assert shadow.status == "partially_received"
    sched = await store.client.zrange(keys.incoming_schedule(q, dst, "a"), 0, -1)
    assert sched == [f"t:{record.id}:2".encode()]
    shadow, _ = await store.receive_transfer(record, None, True, "erp", None)
    assert shadow.status == "received"
    assert await store.client.zcard(keys.incoming_schedule(q, dst, "a")) == 0
    assert (await probe.position(dst, "a"))["oh"] == "3"
    assert (await probe.position(dst, "b"))["oh"] == "2"
    assert 0 < await store.client.pttl(keys.transfer_shadow(q, record.id)) <= 3_600_000
    with pytest.raises(TransferConflict) as done:
        await store.receive_transfer(record, None, True, "erp", None)
    assert done.value.extra["transfer_status"] == "received"
    closed = await store.confirm_transfer(record.id, "in_transit", "received", "erp")
    assert closed.code == scripts.OK
    assert 0 < await store.client.pttl(keys.transfer(p, record.id)) <= 3_600_000


async def test_without_eta_units_are_scheduled_at_infinity(
    store: StockStore, probe: Probe, uid: str
) -> None:
    src, dst = await stocked(store, probe, uid, a=1)
    record = await first_step(store, src, dst, [("a", 1)], eta=None)
    assert record.eta is None
    await store.arrive_transfer(record, "erp")
    q = store.partition(dst)
    sched = await store.client.zrange(keys.incoming_schedule(q, dst, "a"), 0, -1, withscores=True)
    assert sched == [(f"t:{record.id}:1".encode(), float("inf"))]


async def test_refusals_write_nothing(store: StockStore, probe: Probe, uid: str) -> None:
    src, dst = await stocked(store, probe, uid, a=5, b=1)
    await store.client.hset(keys.position(store.partition(src), src, "a"), "r", 2)
    before = await lengths(store, src, dst)
    with pytest.raises(Shortage) as short:
        await first_step(store, src, dst, [("b", 1), ("a", 4)])
    assert [(x.sku, x.requested, x.available) for x in short.value.extra["shortages"]] == [
        ("a", 4, 3)
    ]
    with pytest.raises(NotFound):
        await first_step(store, f"{uid}-nowhere", dst, [("a", 1)])
    assert await lengths(store, src, dst) == before
    assert (await probe.position(src, "a"))["oh"] == "5"
    assert (await probe.position(src, "b"))["oh"] == "1"
    record = await first_step(store, src, dst, [("a", 1)])
    # The same id again: refused, nothing written.
    p = store.partition(src)
    mid = await lengths(store, src)
    reply = await store.scripts.transfer_create(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p), keys.transfer(p, record.id),
         keys.transfer_pending(p), keys.location_meta(p, src), keys.sku_index(p, src),
         keys.position(p, src, "a")],
        ["erp", "", 1000, "", 1000, record.id, src, dst, "", "", "a", 1],
    )  # fmt: skip
    assert (reply.code, reply.payload) == (scripts.TRANSFER_STATE, b"in_transit")
    assert await lengths(store, src) == mid
    # No shadow yet: a receipt is NO_TRANSFER.
    with pytest.raises(NotFound):
        await store.receive_transfer(record, None, True, "erp", None)
    await store.drive_transfer(record, "erp")
    q_before = await lengths(store, dst)
    with pytest.raises(ValidationFailed) as bad_sku:
        await store.receive_transfer(record, [("a", 1), ("zz", 1)], True, "erp", None)
    assert bad_sku.value.field == "lines[1].sku"
    with pytest.raises(Shortage) as over:
        await store.receive_transfer(record, [("a", 2)], False, "erp", None)
    assert over.value.extra["field"] == "lines[0]"
    with pytest.raises(ValidationFailed) as cap:
        await store.receive_transfer(record, [("a", 10**12 + 1)], True, "erp", None)
    assert cap.value.field == "lines[0].qty"
    assert await lengths(store, dst) == q_before
    # Steps out of order are refused: confirm from another status, finish a cancel not begun,
    # claim before the lease has passed.
    wrong = await store.confirm_transfer(record.id, "cancelling", "in_transit", "erp")
    assert (wrong.code, wrong.payload) == (scripts.TRANSFER_STATE, b"in_transit")
    finish = await store.finish_cancel(record, "erp", None)
    assert (finish.code, finish.payload) == (scripts.TRANSFER_STATE, b"in_transit")
    assert await store.claim_transfer(record.id, "courier") is None
    assert (await probe.position(src, "a"))["oh"] == "4"
    assert (await probe.position(dst, "a"))["in"] == "1"


async def test_cancel_steps(store: StockStore, probe: Probe, uid: str) -> None:
    src, dst = await stocked(store, probe, uid, a=6)
    # Cancelled before its `to` side was written: a tombstone; the late arrival does nothing.
    early = await first_step(store, src, dst, [("a", 2)])
    begun, _ = await store.begin_cancel(early.id, "erp", None)
    assert begun.status == "cancelling" and begun.pending
    withdrawn = await store.withdraw_transfer(begun, "erp")
    assert withdrawn.code == scripts.OK
    late = await store.arrive_transfer(early, "late-driver")
    assert late.status == "cancelled"
    assert (await probe.position(dst, "a")).get("in", "0") == "0"
    done = await store.finish_cancel(begun, "erp", None)
    assert done.code == scripts.OK
    assert (await probe.position(src, "a"))["oh"] == "6"
    again = await store.finish_cancel(begun, "erp", None)
    assert (again.code, again.payload) == (scripts.TRANSFER_DONE, b"cancelled")
    with pytest.raises(TransferConflict) as finished:
        await store.begin_cancel(early.id, "erp", None)
    assert finished.value.extra["transfer_status"] == "cancelled"
    # Refused at `to` once units were received: back to in_transit.
    kept = await store.drive_transfer(await first_step(store, src, dst, [("a", 3)]), "erp")
    await store.receive_transfer(kept, [("a", 1)], True, "erp", None)
    begun, _ = await store.begin_cancel(kept.id, "erp", None)
    refused = await store.withdraw_transfer(begun, "erp")
    assert (refused.code, refused.payload) == (scripts.TRANSFER_STATE, b"partially_received")
    after = await store.drive_transfer(begun, "erp")
    assert (after.status, after.pending) == ("in_transit", False)
    assert (await probe.position(src, "a"))["oh"] == "3"
    assert (await probe.position(dst, "a"))["in"] == "2"
    with pytest.raises(NotFound):
        await store.begin_cancel(new_transfer_id(store.partition(src)), "erp", None)


async def test_concurrent_drivers_apply_each_step_once(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """Many drivers (the caller, couriers) settling the same transfers at once: the `to` side is
    written once, a cancel puts the units back once."""
    import asyncio

    src, dst = await stocked(store, probe, uid, a=100)
    records = [await first_step(store, src, dst, [("a", 2)]) for _ in range(10)]
    await asyncio.gather(*(store.drive_transfer(r, f"d{n}") for r in records for n in range(8)))
    assert (await probe.position(dst, "a"))["in"] == "20"
    assert (await probe.position(src, "a"))["oh"] == "80"
    for r in records:
        got = await store.get_transfer(r.id)
        assert got is not None and not got.pending
    begun = [(await store.begin_cancel(r.id, "erp", None))[0] for r in records[:5]]
    after = await asyncio.gather(
        *(store.drive_transfer(b, f"d{n}") for b in begun for n in range(8))
    )
    assert {a.status for a in after} == {"cancelled"}
    assert (await probe.position(src, "a"))["oh"] == "90"
    assert (await probe.position(dst, "a"))["in"] == "10"
    q = store.partition(dst)
    members = await store.client.zrange(keys.incoming_schedule(q, dst, "a"), 0, -1)
    assert sorted(members) == sorted(f"t:{r.id}:2".encode() for r in records[5:])
