"""The sourcing hold scripts on a real Valkey: each one's codes, the record's state machine, the
part holds (replay, void, fence, shortage), the undo, the events and the retention."""

from __future__ import annotations

import asyncio

import pytest

from omnistock.domain.commands import Adjustment, Idempotency, idempotency_digest
from omnistock.domain.errors import IdempotencyMismatch
from omnistock.domain.ids import new_reservation_id, new_sourcing_id
from omnistock.domain.sourcing_holds import HoldPart, HoldRequest, SourcingHold, decode_hold
from omnistock.redis import keys
from omnistock.redis.courier import courier_once
from omnistock.redis.scripts import (
    HOLD_STATE,
    NO_HOLD,
    NO_LOCATION,
    NOT_ACTIVE,
    OK,
    SHORTAGE,
    VOID,
)
from omnistock.redis.store import StockStore
from tests.events import event_fields
from tests.lua.conftest import Probe, doc_of


async def stocked(store: StockStore, probe: Probe, loc: str, **skus: int) -> None:
    await probe.location(loc)
    await store.adjust(
        [Adjustment(loc, sku, qty, "receipt") for sku, qty in skus.items()], "erp", None
    )


def part(store: StockStore, loc: str, **skus: int) -> HoldPart:
    return HoldPart(
        reservation=new_reservation_id(store.partition(loc)), location=loc, lines=list(skus.items())
    )


def record(store: StockStore, parts: list[HoldPart], channel: str | None = None) -> SourcingHold:
    p = store.partition(parts[0].location)
    return SourcingHold(
        id=new_sourcing_id(p), status="pending", attempt=1,
        request=HoldRequest(lines=[ln for pt in parts for ln in pt.lines], fulfillment="ship", ttl_ms=60_000, channel=channel,
                            ref="order-9"),
        parts=parts, why="test", actor="shop", created_at=0, updated_at=0, lease_until=0,
        owner="key-1", owner_role="storefront",
    )  # fmt: skip


async def begun(store: StockStore, rec: SourcingHold) -> SourcingHold:
    hold_id, replayed = await store.begin_hold(store.partition(rec.parts[0].location), rec, None)
    assert (hold_id, replayed) == (rec.id, False)
    got = await store.get_hold(hold_id)
    assert got is not None
    return got


async def hold_events(store: StockStore, probe: Probe, hold_id: str) -> list[tuple[str, str]]:
    p = int(hold_id[1:].split("-")[0])
    entries = await probe.redis.xrange(keys.stream(p))
    out = []
    for _id, fields in entries:
        ev = event_fields(fields)
        if ev["t"] == "o" and ev["id"] == hold_id:
            out.append((ev["kind"], ev["st"]))
    return out


async def test_begin_records_pending_and_replays_the_id(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=5)
    rec = record(store, [part(store, uid, x=1)])
    p = store.partition(uid)
    idem = Idempotency(key="k", digest=idempotency_digest("key-1", uid), body_hash="h1")
    hold_id, replayed = await store.begin_hold(p, rec, idem)
    assert (hold_id, replayed) == (rec.id, False)
    got = await store.get_hold(hold_id)
    assert got is not None
    assert (got.status, got.attempt, got.parts, got.owner) == ("pending", 1, rec.parts, "key-1")
    assert got.lease_until == got.created_at + store.lease_ms
    score = await probe.redis.zscore(keys.sourcing_pending(p), hold_id)
    assert score == got.lease_until
    # A replay (another id proposed, same key) answers the first id; another body: 422.
    again, replayed = await store.begin_hold(p, record(store, rec.parts), idem)
    assert (again, replayed) == (rec.id, True)
    assert await store.recorded_hold_id(p, idem) == rec.id
    with pytest.raises(IdempotencyMismatch):
        await store.begin_hold(p, rec, Idempotency(key="k", digest=idem.digest, body_hash="h2"))
    assert await hold_events(store, probe, hold_id) == [("begin", "pending")]


async def test_part_hold_replay_shortage_void_and_no_location(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=3)
    ok = part(store, uid, x=2)
    rec = await begun(store, record(store, [ok], channel="web"))
    first = await store.hold_part(rec, ok)
    assert (first.code, first.replayed) == (OK, False)
    doc = await doc_of(store, ok.reservation)
    assert (doc.sourcing, doc.channel, doc.ref, doc.owner, doc.status) == (
        rec.id, "web", "order-9", "key-1", "active",
    )  # fmt: skip
    assert doc.lines == [("x", 2, 2, 0)]
    assert doc.expires_at - doc.created_at == 60_000
    again = await store.hold_part(rec, ok)
    assert (again.code, again.replayed) == (OK, True)
    assert (await probe.position(uid, "x"))["r"] == "2"  # held once
    short = await store.hold_part(rec, part(store, uid, x=2))
    assert short.code == SHORTAGE and short.payload == b'[["x",2,1]]'
    # Undone before its hold arrives: void, and the late hold does nothing.
    late = part(store, uid, x=1)
    assert await store.undo_part(late, "shop") == "voided"
    assert (await store.hold_part(rec, late)).code == VOID
    assert await store.get_reservation(late.reservation) is None
    assert (await probe.position(uid, "x"))["r"] == "2"
    gone = await store.hold_part(rec, part(store, f"{uid}-gone", x=1))
    assert gone.code == NO_LOCATION
    # Held once and ended since (released, or past its expiry): it no longer counts as held.
    ended = await store.get_reservation(ok.reservation)
    assert ended is not None
    await store.release(ended, "shop", None)
    replay = await store.hold_part(rec, ok)
    assert (replay.code, replay.payload) == (NOT_ACTIVE, b"released")
    assert (await probe.position(uid, "x"))["r"] == "0"
    short_lived = part(store, uid, x=1)
    brief = record(store, [short_lived])
    brief.request.ttl_ms = 50
    brief = await begun(store, brief)
    assert (await store.hold_part(brief, short_lived)).code == OK
    await asyncio.sleep(0.08)
    due = await store.hold_part(brief, short_lived)
    assert (due.code, due.payload) == (NOT_ACTIVE, b"expired")


async def test_part_hold_honours_the_channel_fence(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=3)
    await probe.redis.hset(keys.location_meta(store.partition(uid), uid), "c:web", 2)
    web = record(store, [part(store, uid, x=2)], channel="web")
    web = await begun(store, web)
    short = await store.hold_part(web, web.parts[0])
    assert short.code == SHORTAGE and short.payload == b'[["x",2,1]]'
    kiosk = await begun(store, record(store, [part(store, uid, x=3)], channel="store"))
    assert (await store.hold_part(kiosk, kiosk.parts[0])).code == OK


async def test_finish_abort_replan_fail_and_their_state_codes(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=5)
    rec = await begun(store, record(store, [part(store, uid, x=1)]))
    p = store.partition(uid)
    assert (await store.replan_hold(rec, rec.parts, "w", "shop")).code == HOLD_STATE
    assert (await store.fail_hold(rec, [], "shop")).code == HOLD_STATE
    aborted = await store.abort_hold(rec, "shop")
    assert aborted.code == OK
    comp = decode_hold(aborted.payload)
    assert comp.status == "compensating" and comp.lease_until >= rec.lease_until
    finished = await store.finish_hold(rec, "shop")
    assert (finished.code, finished.payload) == (HOLD_STATE, b"compensating")
    new_parts = [part(store, uid, x=2)]
    moved = await store.replan_hold(comp, new_parts, "next option", "shop")
    assert moved.code == OK
    second = decode_hold(moved.payload)
    assert (second.status, second.attempt, second.parts, second.why) == (
        "pending", 2, new_parts, "next option",
    )  # fmt: skip
    # A stale driver of attempt 1 can no longer finish or abort it.
    assert (await store.finish_hold(rec, "shop")).code == HOLD_STATE
    assert (await store.abort_hold(rec, "shop")).code == HOLD_STATE
    comp2 = decode_hold((await store.abort_hold(second, "shop")).payload)
    failed = await store.fail_hold(comp2, [("x", 2, 1)], "shop")
    assert failed.code == OK
    final = decode_hold(failed.payload)
    assert (final.status, final.shortages) == ("failed", [("x", 2, 1)])
    assert await probe.redis.zscore(keys.sourcing_pending(p), rec.id) is None
    ttl = await probe.redis.pttl(keys.sourcing_hold(p, rec.id))
    assert 0 < ttl <= 3600_000
    assert await hold_events(store, probe, rec.id) == [
        ("begin", "pending"), ("abort", "compensating"), ("replan", "pending"),
        ("abort", "compensating"), ("fail", "failed"),
    ]  # fmt: skip
    # Empty shortages leave the field null (cjson would write {}).
    other = await begun(store, record(store, [part(store, uid, x=1)]))
    other = decode_hold((await store.abort_hold(other, "shop")).payload)
    assert decode_hold((await store.fail_hold(other, [], "shop")).payload).shortages is None
    missing = record(store, [part(store, uid, x=1)])
    assert (await store.finish_hold(missing, "shop")).code == NO_HOLD


async def test_finish_then_release(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, x=5)
    rec = await begun(store, record(store, [part(store, uid, x=1)]))
    p = store.partition(uid)
    assert (await store.release_hold(rec, "shop")).code == HOLD_STATE
    done = await store.finish_hold(rec, "shop")
    assert done.code == OK and decode_hold(done.payload).status == "held"
    assert await probe.redis.zscore(keys.sourcing_pending(p), rec.id) is None
    ttl = await probe.redis.pttl(keys.sourcing_hold(p, rec.id))
    assert 3600_000 < ttl <= 3600_000 + 60_000  # the parts' ttl + retention
    released = await store.release_hold(rec, "shop")
    assert released.code == OK and not released.replayed
    assert decode_hold(released.payload).status == "released"
    again = await store.release_hold(rec, "shop")
    assert again.code == OK and again.replayed and again.payload == released.payload
    assert [k for k, _ in await hold_events(store, probe, rec.id)] == ["begin", "finish", "release"]


async def test_undo_releases_an_active_part_with_its_reason(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=5)
    held = part(store, uid, x=2)
    rec = await begun(store, record(store, [held]))
    assert (await store.hold_part(rec, held)).code == OK
    await probe.mark(uid)
    assert await store.undo_part(held, "shop") == "released"
    doc = await doc_of(store, held.reservation)
    assert doc.status == "released"
    assert (await probe.position(uid, "x"))["r"] == "0"
    events = await probe.events(uid)
    assert [(e["t"], e.get("kind"), e.get("reason")) for e in events] == [
        ("p", "release", "sourcing_undo"),
        ("r", "release", None),
    ]
    # Already ended: nothing more.
    assert await store.undo_part(held, "shop") == "released"
    assert (await probe.position(uid, "x"))["r"] == "0"
    assert len(await probe.events(uid)) == 2


async def test_claim_waits_for_the_lease_then_renews_it(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=5)
    store.lease_ms = 100
    rec = await begun(store, record(store, [part(store, uid, x=1)]))
    p = store.partition(uid)
    assert await store.claim_hold(rec.id, "courier") is None  # lease not passed
    assert rec.id not in await store.due_holds(1000)
    await asyncio.sleep(0.15)
    assert rec.id in await store.due_holds(1000)
    claimed = await store.claim_hold(rec.id, "courier")
    assert claimed is not None and claimed.lease_until > rec.lease_until
    assert await store.claim_hold(rec.id, "courier") is None  # renewed: not due again yet
    assert (await store.finish_hold(rec, "shop")).code == OK
    await probe.redis.zadd(keys.sourcing_pending(p), {rec.id: 0})  # a leftover entry
    assert await store.claim_hold(rec.id, "courier") is None
    assert await probe.redis.zscore(keys.sourcing_pending(p), rec.id) is None
    await probe.redis.zadd(keys.sourcing_pending(p), {"s0-gone": 0})
    assert await store.claim_hold("s0-" + "a" * 20, "courier") is None


async def test_drive_holds_all_parts_or_undoes_every_one(
    store: StockStore, probe: Probe, uid: str
) -> None:
    a, b = f"{uid}a", f"{uid}b"
    await stocked(store, probe, a, x=2)
    await stocked(store, probe, b, y=1)
    rec = await begun(store, record(store, [part(store, a, x=2), part(store, b, y=1)]))
    driven = await store.drive(rec, "shop")
    assert driven.record.status == "held" and driven.shortages == []
    # A second hold of the same: the first part holds, the second is short: all undone.
    rec2 = await begun(store, record(store, [part(store, b, y=1), part(store, a, x=1)]))
    rec2 = rec2  # parts in order: b is short first: nothing held, every part voided
    driven2 = await store.drive(rec2, "shop")
    assert driven2.record.status == "compensating" and driven2.shortages == [("y", 1, 0)]
    for p_ in rec2.parts:
        assert await store.get_reservation(p_.reservation) is None
        assert await probe.redis.exists(
            keys.sourcing_void(store.partition(p_.location), p_.reservation)
        )
    await store.adjust([Adjustment(a, "x", 1, "receipt")], "erp", None)
    rec3 = await begun(store, record(store, [part(store, a, x=1), part(store, b, y=1)]))
    driven3 = await store.drive(rec3, "shop")
    assert driven3.record.status == "compensating"
    first = await doc_of(store, rec3.parts[0].reservation)
    assert first.status == "released"
    assert (await probe.position(a, "x"))["r"] == "2"  # rec's part only


async def test_many_drivers_of_one_hold_hold_each_part_once(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """Drivers racing on one record (a slow caller, couriers of several workers): every part is
    held exactly once and the record ends held; with a part that cannot be held, every driver's
    outcome is the same undone record and nothing stays reserved."""
    a, b, c = f"{uid}a", f"{uid}b", f"{uid}c"
    await stocked(store, probe, a, x=3)
    await stocked(store, probe, b, y=3)
    await stocked(store, probe, c, z=1)
    rec = await begun(store, record(store, [part(store, a, x=2), part(store, b, y=3)]))
    results = await asyncio.gather(*(store.drive(rec, f"driver-{n}") for n in range(20)))
    assert {r.record.status for r in results} == {"held"}
    final = await store.get_hold(rec.id)
    assert final is not None and final.status == "held"
    assert (await probe.position(a, "x"))["r"] == "2"
    assert (await probe.position(b, "y"))["r"] == "3"
    reserves = [e for e in await probe.events(a) if e["t"] == "r" and e["kind"] == "reserve"]
    assert len(reserves) == 1
    # z is short (1 < 2): whoever gets there aborts; every part ends undone whatever the order.
    await probe.mark(a)
    lost = await begun(store, record(store, [part(store, a, x=1), part(store, c, z=2)]))
    outcomes = await asyncio.gather(*(store.drive(lost, f"driver-{n}") for n in range(20)))
    assert {r.record.status for r in outcomes} == {"compensating"}
    after = await store.get_hold(lost.id)
    assert after is not None and (after.status, after.attempt) == ("compensating", 1)
    assert (await probe.position(a, "x"))["r"] == "2"  # the first hold's only
    assert (await probe.position(c, "z"))["r"] == "0"
    first = await store.get_reservation(lost.parts[0].reservation)
    assert first is None or first.status == "released"
    assert (await store.fail_hold(after, [("z", 2, 1)], "driver-0")).code == OK
    assert (await store.fail_hold(after, [("z", 2, 1)], "driver-1")).code == HOLD_STATE


async def test_courier_once_finishes_and_undoes_what_was_left(
    store: StockStore, probe: Probe, uid: str
) -> None:
    a, b = f"{uid}a", f"{uid}b"
    await stocked(store, probe, a, x=2)
    await stocked(store, probe, b, y=1)
    store.lease_ms = 50
    whole = await begun(store, record(store, [part(store, a, x=1), part(store, b, y=1)]))
    assert (await store.hold_part(whole, whole.parts[0])).code == OK
    short = await begun(store, record(store, [part(store, a, x=1), part(store, b, y=1)]))
    assert (await store.hold_part(short, short.parts[0])).code == OK
    # Not due yet: the courier leaves both alone. (Other tests' records in this database may
    # fall due meanwhile: the counts say "at least ours".)
    await courier_once(store, 100)
    assert {(await store.get_hold(h.id)).status for h in (whole, short)} == {"pending"}  # type: ignore[union-attr]
    await asyncio.sleep(0.08)
    assert await courier_once(store, 100) >= 2
    statuses = {}
    for hold_id in (whole.id, short.id):
        got = await store.get_hold(hold_id)
        assert got is not None
        statuses[hold_id] = got.status
    # Parts are held in order: whichever the courier drove first took b's only y.
    assert sorted(statuses.values()) == ["failed", "held"]
    winner = whole if statuses[whole.id] == "held" else short
    loser = short if winner is whole else whole
    for pt in winner.parts:
        doc = await store.get_reservation(pt.reservation)
        assert doc is not None and doc.status == "active"
    for pt in loser.parts:
        doc = await store.get_reservation(pt.reservation)
        assert doc is None or doc.status == "released"
    assert (await probe.position(a, "x"))["r"] == "1"
    assert (await probe.position(b, "y"))["r"] == "1"
    await courier_once(store, 100)  # nothing of ours left to do: the same state
    assert (await probe.position(a, "x"))["r"] == "1"
    assert {(await store.get_hold(h.id)).status for h in (whole, short)} == {"held", "failed"}  # type: ignore[union-attr]


async def test_begin_with_shortages_records_a_failed_hold_without_parts(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, x=1)
    rec = record(store, [part(store, uid, x=2)])
    rec.parts = []
    p = store.partition(uid)
    idem = Idempotency(key="k", digest=idempotency_digest("key-1", f"{uid}-f"), body_hash="h")
    hold_id, replayed = await store.begin_hold(p, rec, idem, [("x", 2, 1)])
    assert (hold_id, replayed) == (rec.id, False)
    got = await store.get_hold(hold_id)
    assert got is not None
    assert (got.status, got.parts, got.shortages) == ("failed", [], [("x", 2, 1)])
    assert await probe.redis.zscore(keys.sourcing_pending(p), hold_id) is None
    assert 0 < await probe.redis.pttl(keys.sourcing_hold(p, hold_id)) <= 3600_000
    assert await hold_events(store, probe, hold_id) == [("fail", "failed")]
    assert await store.begin_hold(p, rec, idem, [("x", 2, 1)]) == (hold_id, True)
