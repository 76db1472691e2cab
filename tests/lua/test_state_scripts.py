"""moves.lua, adjust.lua's unsellable items and the supply scripts on a real Valkey: every code,
exact state and exact events after, nothing written on a refusal."""

from __future__ import annotations

import json

import pytest

from omnistock.domain.commands import Adjustment, Count, Move
from omnistock.domain.errors import NotFound, Shortage, SupplyFinished, ValidationFailed
from omnistock.domain.ids import new_supply_id
from omnistock.domain.supply import StoredSupply
from omnistock.redis import keys, scripts
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe

ETA = 1_796_000_000_000


async def supply(store: StockStore, uid: str, lines: list[tuple[str, int]]) -> StoredSupply:
    doc, _ = await store.create_supply(
        supply_id=new_supply_id(store.partition(uid)), location=uid, eta_ms=ETA,
        kind="purchase_order", ref=None, lines=lines, actor="erp", idem=None,
    )  # fmt: skip
    return doc


async def test_moves_codes_and_events(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid)
    await store.adjust([Adjustment(uid, "s", 5, "receipt")], "erp", None)
    await probe.mark(uid)
    (pos,), _ = await store.move([Move(uid, "s", 2, "unsellable", "damaged", "r1")], "qc", None)
    assert (pos.on_hand, pos.unsellable, pos.available, pos.version) == (5, 2, 3, 2)
    raw = await probe.position(uid, "s")
    assert (raw["oh"], raw["u"], raw["in"]) == ("5", "2", "0")
    (ev,) = await probe.events(uid)
    assert (ev["kind"], ev["reason"], ev["ref"], ev["doh"], ev["du"], ev["u"], ev["a"]) == (
        "move", "damaged", "r1", "0", "2", "2", "3",
    )  # fmt: skip
    p = store.partition(uid)
    reply = await store.scripts.moves(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.position(p, uid, "s"), keys.sku_index(p, uid), keys.location_meta(p, uid)],
        ["qc", "", 1000, "", uid, "s", 3, "sellable", "repaired", ""],
    )  # fmt: skip
    assert reply.code == scripts.NOT_ENOUGH
    assert json.loads(reply.payload) == [0, uid, "s", "unsellable", 3, 2]
    ghost = f"{uid}-ghost"
    reply = await store.scripts.moves(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.position(p, ghost, "s"), keys.sku_index(p, ghost), keys.location_meta(p, ghost)],
        ["qc", "", 1000, "", ghost, "s", 1, "unsellable", "damaged", ""],
    )  # fmt: skip
    assert (reply.code, reply.payload) == (scripts.NO_LOCATION, ghost.encode())
    assert await probe.position(uid, "s") == raw
    assert len(await probe.events(uid)) == 1


async def test_moves_of_one_call_are_checked_together(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    await store.adjust([Adjustment(uid, "s", 4, "receipt")], "erp", None)
    await probe.mark(uid)
    items = [Move(uid, "s", 3, "unsellable", "damaged"), Move(uid, "s", 2, "unsellable", "damaged")]
    with pytest.raises(Shortage) as caught:
        await store.move(items, "qc", None)
    assert caught.value.extra["field"] == "moves[1]"
    assert caught.value.extra["shortages"][0]["available"] == 1
    assert await probe.events(uid) == []


async def test_moves_across_partitions_are_checked_before_any(
    store: StockStore, probe: Probe, uid: str
) -> None:
    a, b = f"{uid}-0", f"{uid}-1"
    while store.partition(b) == store.partition(a):
        b += "x"
    await probe.location(a)
    await probe.location(b)
    await store.adjust(
        [Adjustment(a, "s", 4, "receipt"), Adjustment(b, "s", 1, "receipt")], "e", None
    )
    await probe.mark(a)
    with pytest.raises(Shortage) as caught:
        await store.move(
            [Move(a, "s", 1, "unsellable", "damaged"), Move(b, "s", 2, "unsellable", "damaged")],
            "qc", None,
        )  # fmt: skip
    assert caught.value.extra["field"] == "moves[1]"
    assert await probe.events(a) == []


async def test_adjust_unsellable_item_never_below_zero(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    (pos,), _ = await store.adjust(
        [Adjustment(uid, "s", 3, "return", state="unsellable")], "pos", None
    )
    assert (pos.on_hand, pos.unsellable, pos.available) == (3, 3, 0)
    await probe.mark(uid)
    with pytest.raises(Shortage) as caught:
        await store.adjust(
            [Adjustment(uid, "s", -2, "damage", state="unsellable"),
             Adjustment(uid, "s", -2, "damage", state="unsellable")], "pos", None,
        )  # fmt: skip
    assert caught.value.extra["field"] == "adjustments[1]"
    assert await probe.events(uid) == []
    assert (await probe.position(uid, "s"))["u"] == "3"


async def test_supply_create_receive_cancel_state_and_events(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    doc = await supply(store, uid, [("a", 4), ("b", 1)])
    p = store.partition(uid)
    assert await probe.position(uid, "a") == {
        "oh": "0", "r": "0", "v": "1", "u": "0", "in": "4",
        "ts": (await probe.position(uid, "a"))["ts"],
    }  # fmt: skip
    sched = await store.client.zrange(keys.incoming_schedule(p, uid, "a"), 0, -1, withscores=True)
    assert sched == [(f"y:{doc.id}:4".encode(), float(ETA))]
    assert await store.client.smembers(keys.supply_open(p)) >= {doc.id.encode()}
    events = await probe.events(uid)
    assert [(e["t"], e.get("kind"), e.get("din"), e.get("in")) for e in events] == [
        ("p", "supply", "4", "4"),
        ("p", "supply", "1", "1"),
        ("y", "create", None, None),
    ]
    await probe.mark(uid)
    doc, _ = await store.receive_supply(doc, [("a", 1)], True, "erp", None)
    assert (doc.status, [ln.received for ln in doc.lines]) == ("partially_received", [1, 0])
    sched = await store.client.zrange(keys.incoming_schedule(p, uid, "a"), 0, -1)
    assert sched == [f"y:{doc.id}:3".encode()]
    assert [(e["t"], e.get("doh"), e.get("din")) for e in await probe.events(uid)] == [
        ("p", "1", "-1"),
        ("y", None, None),
    ]
    await probe.mark(uid)
    doc, _ = await store.cancel_supply(doc, "erp", None)
    assert doc.status == "cancelled"
    assert await store.client.zcard(keys.incoming_schedule(p, uid, "a")) == 0
    assert await store.client.zcard(keys.incoming_schedule(p, uid, "b")) == 0
    assert doc.id.encode() not in await store.client.smembers(keys.supply_open(p))
    assert (await probe.position(uid, "a"))["in"] == "0"
    assert (await probe.position(uid, "b"))["in"] == "0"
    assert 0 < await store.client.pttl(keys.supply(p, doc.id)) <= 3_600_000
    with pytest.raises(SupplyFinished) as caught:
        await store.receive_supply(doc, None, True, "erp", None)
    assert caught.value.extra["supply_status"] == "cancelled"


async def test_supply_refusals_write_nothing(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid)
    doc = await supply(store, uid, [("a", 4)])
    await probe.mark(uid)
    with pytest.raises(ValidationFailed) as caught:
        await store.receive_supply(doc, [("a", 1), ("zz", 1)], True, "erp", None)
    assert caught.value.field == "lines[1].sku"
    with pytest.raises(Shortage) as short:
        await store.receive_supply(doc, [("a", 5)], False, "erp", None)
    assert short.value.extra["field"] == "lines[0]"
    with pytest.raises(ValidationFailed) as cap:
        await store.receive_supply(doc, [("a", 10**12 + 1)], True, "erp", None)
    assert cap.value.field == "lines[0].qty"
    assert await probe.events(uid) == []
    # Keys not matching the document's lines: stale, nothing written.
    p = store.partition(uid)
    reply = await store.scripts.supply_cancel(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p), keys.supply(p, doc.id),
         keys.supply_open(p), keys.location_meta(p, uid), keys.sku_index(p, uid)],
        ["erp", "", 1000, "", 3600000],
    )  # fmt: skip
    assert reply.code == scripts.STALE
    gone = StoredSupply(id=new_supply_id(p), location=uid, eta=ETA, status="open", kind="other",
                        created_at=1, updated_at=1, actor="x", lines=doc.lines)  # fmt: skip
    with pytest.raises(NotFound):
        await store.reschedule_supply(gone, ETA, "erp", None)
    assert await probe.events(uid) == []
    assert (await probe.position(uid, "a"))["in"] == "4"


async def test_supply_create_over_cap_writes_nothing(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    await supply(store, uid, [("a", 10**9)])
    p = store.partition(uid)
    await store.client.hset(keys.position(p, uid, "a"), "in", 10**12)
    await probe.mark(uid)
    with pytest.raises(ValidationFailed) as caught:
        await supply(store, uid, [("b", 1), ("a", 1)])
    assert caught.value.field == "lines[1].qty"
    assert await probe.events(uid) == []


async def test_counts_and_reservations_keep_unsellable_and_incoming(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """set.lua and the reservation scripts carry u and in along (available net of u)."""
    loc = await probe.location(uid, safety_stock=1)
    await store.adjust([Adjustment(uid, "s", 10, "receipt")], "erp", None)
    await store.move([Move(uid, "s", 3, "unsellable", "damaged")], "qc", None)
    await supply(store, uid, [("s", 7)])
    (pos,), _ = await store.set_counts([Count(uid, "s", 12)], "clerk", None)
    assert (pos.on_hand, pos.unsellable, pos.incoming, pos.available) == (12, 3, 7, 8)
    rid = f"r{store.partition(uid)}-bbbbbbbbbbbbbbbbbbbb"
    with pytest.raises(Shortage):
        await store.reserve(
            reservation_id=rid, location=uid, lines=[("s", 9)], ttl_seconds=60, channel=None,
            ref=None, allow_partial=False, actor="web", idem=None,
        )  # fmt: skip
    held, _ = await store.reserve(
        reservation_id=rid, location=uid, lines=[("s", 8)], ttl_seconds=60, channel=None,
        ref=None, allow_partial=False, actor="web", idem=None,
    )  # fmt: skip
    await probe.mark(uid)
    await store.commit(held, None, "web", None)
    pos = await store.get_position(loc, "s")
    assert (pos.on_hand, pos.reserved, pos.unsellable, pos.incoming, pos.available) == (
        4, 0, 3, 7, 0,
    )  # fmt: skip
    (ev,) = [e for e in await probe.events(uid) if e["t"] == "p"]
    assert (ev["du"], ev["u"], ev["din"], ev["in"], ev["a"]) == ("0", "3", "0", "7", "0")
