"""The sourcing read (``available_at``, HMGETs packed by hand, ``available`` computed inline)
answers what the position read answers: every combination of missing and present fields, a
location's own safety stock standing in for a missing ``ss``, never below 0, cell order kept."""

from __future__ import annotations

from itertools import product

from omnistock.domain.locations import Location
from omnistock.redis import keys
from tests.integration.conftest import Stack


async def test_available_at_matches_positions(stack: Stack, uid: str) -> None:
    store = stack.store
    locations = [
        Location(id=f"{uid}-a", name="a", kind="store", safety_stock=0),
        Location(id=f"{uid}-b", name="b", kind="store", safety_stock=2),
        Location(id=f"{uid}-ü", name="c", kind="store", safety_stock=5),
    ]
    values = [None, 0, 1, 7]
    skus = [f"s{n}" for n in range(len(values) ** 4)]
    for loc in locations:
        p = store.partition(loc.id)
        for sku, fields in zip(skus, product(values, repeat=4), strict=True):
            present = {f: v for f, v in zip(("oh", "r", "ss", "u"), fields, strict=True) if v}
            present |= {f: 0 for f, v in zip(("oh", "r", "ss", "u"), fields, strict=True) if v == 0}
            if present:
                await stack.redis.hset(keys.position(p, loc.id, sku), mapping=present)
    found = await store.available_at(locations, skus)
    expected = [
        pos.available
        for pos in await store.get_positions([(loc, sku) for loc in locations for sku in skus])
    ]
    assert found == expected
    assert len(found) == len(locations) * len(skus)
    # The cases are not all zero: units 7, none reserved, no own ss at b (2 off) -> 5.
    assert max(found) == 7 and 5 in found and min(found) == 0
