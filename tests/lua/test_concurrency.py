"""The invariants under contention: many concurrent clients on one hot SKU, exact outcomes."""

from __future__ import annotations

import asyncio

from omnistock.domain.commands import Adjustment
from omnistock.domain.errors import Shortage
from omnistock.domain.ids import new_reservation_id
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe, doc_of


async def try_reserve(store: StockStore, loc: str, lines: list[tuple[str, int]]) -> str | None:
    rid = new_reservation_id(store.partition(loc))
    try:
        await store.reserve(
            reservation_id=rid, location=loc, lines=lines, ttl_seconds=300, channel=None, ref=None,
            allow_partial=False, actor="load", idem=None,
        )  # fmt: skip
    except Shortage:
        return None
    return rid


async def test_no_oversell_500_buyers_100_units(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid)
    await store.adjust([Adjustment(uid, "hot", 100, "receipt")], "erp", None)
    results = await asyncio.gather(*(try_reserve(store, uid, [("hot", 1)]) for _ in range(500)))
    won = [r for r in results if r]
    assert len(won) == 100
    pos = await store.get_position(await probe.location(uid), "hot")
    assert (pos.on_hand, pos.reserved, pos.available, pos.version) == (100, 100, 0, 101)


async def test_two_carts_compete_for_last_units_of_two_skus(
    store: StockStore, probe: Probe, uid: str
) -> None:
    # Each round: 1 unit of x and 1 of y left; cart A wants x+y, cart B wants y+x. Exactly one wins
    # both, and the loser holds nothing (all or nothing).
    loc = await probe.location(uid)
    for round_ in range(50):
        x, y = f"x{round_}", f"y{round_}"
        await store.adjust(
            [Adjustment(uid, x, 1, "receipt"), Adjustment(uid, y, 1, "receipt")], "erp", None
        )
        a, b = await asyncio.gather(
            try_reserve(store, uid, [(x, 1), (y, 1)]), try_reserve(store, uid, [(y, 1), (x, 1)])
        )
        assert (a is None) != (b is None)
        px, py = await store.get_positions([(loc, x), (loc, y)])
        assert (px.reserved, py.reserved, px.available, py.available) == (1, 1, 0, 0)


async def test_many_carts_many_skus_never_oversell(
    store: StockStore, probe: Probe, uid: str
) -> None:
    # 200 carts each want 1 of 3 skus out of 5 (10 units each): the total held per sku never
    # exceeds 10 and every winning cart holds all its lines.
    loc = await probe.location(uid)
    skus = [f"s{i}" for i in range(5)]
    await store.adjust([Adjustment(uid, s, 10, "receipt") for s in skus], "erp", None)
    carts = [[(skus[(i + k) % 5], 1) for k in range(3)] for i in range(200)]
    results = await asyncio.gather(*(try_reserve(store, uid, cart) for cart in carts))
    held = dict.fromkeys(skus, 0)
    for cart, rid in zip(carts, results, strict=True):
        if rid:
            doc = await store.get_reservation(rid)
            assert doc is not None and all(line[2] == 1 for line in doc.lines)
            for sku, _ in cart:
                held[sku] += 1
    positions = await store.get_positions([(loc, s) for s in skus])
    assert [p.reserved for p in positions] == [held[s] for s in skus]
    assert all(p.reserved <= 10 and p.on_hand == 10 for p in positions)
    assert sum(held.values()) == 3 * len([r for r in results if r]) > 0


async def test_concurrent_commit_and_release_end_once(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    await store.adjust([Adjustment(uid, "a", 100, "receipt")], "erp", None)
    rids = [await try_reserve(store, uid, [("a", 1)]) for _ in range(50)]

    async def end(rid: str, i: int) -> str:
        try:
            if i % 3 == 0:
                await store.commit(await doc_of(store, rid), None, "t", None)
            elif i % 3 == 1:
                await store.release(await doc_of(store, rid), "t", None)
            else:
                await store.extend(await doc_of(store, rid), 60, "t", None)
        except Exception as exc:  # counting outcomes, whatever they are
            return type(exc).__name__
        return "ok"

    outcomes = await asyncio.gather(*(end(rid, i) for rid in rids if rid for i in range(3)))
    assert set(outcomes) <= {"ok", "NotActive"}
    loc = await probe.location(uid)
    pos = await store.get_position(loc, "a")
    docs = [await store.get_reservation(r) for r in rids if r]
    committed = sum(1 for d in docs if d and d.status == "committed")
    active = sum(1 for d in docs if d and d.status == "active")
    assert pos.on_hand == 100 - committed
    assert pos.reserved == active
