"""Channel fences in reserve.lua: a reservation with a channel is held against that channel's
availability (the location meta's ``c:<channel>`` taken off on top of safety stock)."""

from __future__ import annotations

import asyncio

import pytest

from omnistock.domain.commands import Adjustment
from omnistock.domain.errors import Shortage
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe


async def fenced(
    store: StockStore, probe: Probe, loc_id: str, fences: dict[str, int], safety_stock: int = 0,
    **skus: int,
) -> Location:  # fmt: skip
    loc = Location(
        id=loc_id, name=loc_id, kind="store", safety_stock=safety_stock,
        channel_safety_stock=fences,
    )  # fmt: skip
    await store.put_location_meta([loc])
    await store.adjust(
        [Adjustment(loc_id, sku, qty, "receipt") for sku, qty in skus.items()], "erp", None
    )
    await probe.mark(loc_id)
    return loc


async def hold(
    store: StockStore, loc: str, lines: list[tuple[str, int]], channel: str | None,
    partial: bool = False,
) -> list[tuple[str, int, int, int]]:  # fmt: skip
    doc, _ = await store.reserve(
        reservation_id=new_reservation_id(store.partition(loc)), location=loc, lines=lines,
        ttl_seconds=60, channel=channel, ref=None, allow_partial=partial, actor="shop", idem=None,
    )  # fmt: skip
    return list(doc.lines)


async def shortages(
    store: StockStore, loc: str, lines: list[tuple[str, int]], channel: str | None
) -> list[tuple[str, int, int]]:
    with pytest.raises(Shortage) as err:
        await hold(store, loc, lines, channel)
    return [(s.sku, s.requested, s.available) for s in err.value.extra["shortages"]]


async def test_meta_hash_carries_every_channel_fence(store: StockStore, uid: str) -> None:
    loc = Location(id=uid, name=uid, kind="store", channel_safety_stock={"web": 3})
    await store.put_location_meta([loc])
    raw = await store.client.hgetall(keys.location_meta(store.partition(uid), uid))
    assert {k.decode(): int(v) for k, v in raw.items()} == {
        "ss": 0, "lt": 2, "c:web": 3, "c:app": 0, "c:kiosk": 0, "c:store": 0, "c:marketplace": 0,
    }  # fmt: skip


async def test_web_cannot_take_fenced_units_store_can(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await fenced(store, probe, uid, {"web": 4}, safety_stock=1, a=10, b=3)
    # web may take 10 - 1 - 4 = 5 of a and none of b; the shortages show the channel's figure.
    assert await shortages(store, uid, [("a", 6), ("b", 1)], "web") == [("a", 6, 5), ("b", 1, 0)]
    assert await probe.events(uid) == []  # all or nothing: nothing held
    assert await hold(store, uid, [("a", 5)], "web") == [("a", 5, 5, 0)]
    assert await shortages(store, uid, [("a", 1)], "web") == [("a", 1, 0)]
    # The store channel has no fence: it takes the 4 fenced units (safety stock still holds).
    assert await hold(store, uid, [("a", 4), ("b", 2)], "store") == [("a", 4, 4, 0), ("b", 2, 2, 0)]
    assert await shortages(store, uid, [("a", 1)], "store") == [("a", 1, 0)]
    # Positions and their events keep the channel-free figures.
    raw = await probe.position(uid, "a")
    assert (int(raw["oh"]), int(raw["r"])) == (10, 9)
    events = await probe.events(uid)
    assert [int(e["a"]) for e in events if e.get("sku") == "a"] == [4, 0]


async def test_without_channel_the_fence_does_not_apply(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await fenced(store, probe, uid, {"web": 4, "app": 2}, a=6)
    assert await shortages(store, uid, [("a", 5)], "app") == [("a", 5, 4)]
    assert await hold(store, uid, [("a", 6)], None) == [("a", 6, 6, 0)]


async def test_partial_hold_stops_at_the_fence(store: StockStore, probe: Probe, uid: str) -> None:
    await fenced(store, probe, uid, {"marketplace": 7}, a=10, b=5)
    got = await hold(store, uid, [("a", 5), ("b", 2)], "marketplace", partial=True)
    assert got == [("a", 5, 3, 0), ("b", 2, 0, 0)]
    assert await shortages(store, uid, [("b", 1)], "marketplace") == [("b", 1, 0)]


async def test_changed_and_dropped_fences_apply_at_once(
    store: StockStore, probe: Probe, uid: str
) -> None:
    loc = await fenced(store, probe, uid, {"web": 8}, a=10)
    assert await shortages(store, uid, [("a", 3)], "web") == [("a", 3, 2)]
    await store.put_location_meta([Location(**{**_fields(loc), "channel_safety_stock": {}})])
    assert await hold(store, uid, [("a", 10)], "web") == [("a", 10, 10, 0)]


def _fields(loc: Location) -> dict[str, object]:
    return {f: getattr(loc, f) for f in loc.__struct_fields__}


async def test_concurrent_web_reservations_never_take_fenced_units(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await fenced(store, probe, uid, {"web": 10}, a=30)
    attempts = 60

    async def one() -> bool:
        try:
            await hold(store, uid, [("a", 1)], "web")
        except Shortage:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(attempts)))
    assert sum(results) == 20  # exactly the 30 - 10 units web may take
    raw = await probe.position(uid, "a")
    assert (int(raw["oh"]), int(raw["r"])) == (30, 20)
    # The fenced units are still there for the store channel, exactly.
    assert await hold(store, uid, [("a", 10)], "store") == [("a", 10, 10, 0)]
    assert await shortages(store, uid, [("a", 1)], "store") == [("a", 1, 0)]
