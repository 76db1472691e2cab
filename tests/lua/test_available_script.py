"""available.lua: the sourcing plan's one-call-per-partition read agrees with the positions' own
``available`` (domain/stock.py) for every case: missing position, the location's and a position's
own safety stock, reserved and unsellable units, and a result that would go below zero."""

from __future__ import annotations

import redis.asyncio as aredis

from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.store import StockStore


async def test_available_at_agrees_with_the_positions(
    store: StockStore, ready_redis: aredis.Redis, uid: str
) -> None:
    locs = [
        Location(id=f"{uid}-{n}", name="x", kind="store", safety_stock=n, limited_threshold=2)
        for n in range(12)  # spread over several partitions
    ]
    await store.put_location_meta(locs)
    skus = ["a", "b", "c", "d"]
    for n, loc in enumerate(locs):
        p = store.partition(loc.id)
        # a: plain; b: reserved and unsellable; c: own safety stock past what is left; d: none.
        await ready_redis.hset(keys.position(p, loc.id, "a"), mapping={"oh": 20 + n, "r": 0})
        await ready_redis.hset(
            keys.position(p, loc.id, "b"), mapping={"oh": 30, "r": n, "u": 2 * n}
        )
        await ready_redis.hset(
            keys.position(p, loc.id, "c"), mapping={"oh": 5, "r": 1, "ss": 4 + n % 3}
        )
    found = await store.available_at(locs, skus)
    positions = await store.get_positions([(loc, sku) for loc in locs for sku in skus])
    assert found == [pos.available for pos in positions]
    assert found[:4] == [20, 30, 0, 0]  # location 0: safety stock 0, c: 5 - 1 - 4
    assert found[-4:] == [20 + 11 - 11, max(0, 30 - 11 - 22 - 11), max(0, 5 - 1 - 6), 0]
    assert await store.available_at([], skus) == []
