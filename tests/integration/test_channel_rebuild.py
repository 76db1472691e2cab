"""Priority and channel fences survive `omnistock rebuild`: Redis rebuilt from Postgres gets the
location meta (fences included) back, so reserve.lua keeps holding each channel to its fence."""

from __future__ import annotations

import pytest

from omnistock.domain.commands import Adjustment
from omnistock.domain.errors import Shortage
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.locations import Location
from omnistock.postgres import catalog
from omnistock.redis import keys
from tests.integration.conftest import Stack
from tests.integration.test_cli_data import omnistock


async def _hold(stack: Stack, loc: str, qty: int, channel: str) -> None:
    await stack.store.reserve(
        reservation_id=new_reservation_id(stack.store.partition(loc)), location=loc,
        lines=[("a", qty)], ttl_seconds=60, channel=channel, ref=None, allow_partial=False,
        actor="shop", idem=None,
    )  # fmt: skip


async def test_rebuild_restores_priority_and_fences(stack: Stack, uid: str) -> None:
    wanted = Location(
        id=uid, name=uid, kind="store", priority=3, channel_safety_stock={"web": 5, "app": 2}
    )
    stored, created = await catalog.upsert_location(stack.db, wanted)
    assert created and (stored.priority, stored.channel_safety_stock) == (3, {"web": 5, "app": 2})
    await stack.store.put_location_meta([stored])
    await stack.store.adjust([Adjustment(uid, "a", 8, "receipt")], "erp", None)
    # reconcile drains the streams into Postgres first: the stock is persisted before Redis is lost.
    assert omnistock(stack, "reconcile").returncode == 0

    await stack.redis.flushall()
    rebuilt = omnistock(stack, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr

    meta = await stack.redis.hgetall(keys.location_meta(stack.store.partition(uid), uid))
    assert {k.decode(): int(v) for k, v in meta.items()} == {
        "ss": 0, "lt": 2, "c:web": 5, "c:app": 2, "c:kiosk": 0, "c:store": 0, "c:marketplace": 0,
    }  # fmt: skip
    [back] = [loc for loc in await catalog.all_locations(stack.db) if loc.id == uid]
    assert (back.priority, back.channel_safety_stock) == (3, {"web": 5, "app": 2})
    with pytest.raises(Shortage) as err:
        await _hold(stack, uid, 4, "web")
    assert [(s.sku, s.requested, s.available) for s in err.value.extra["shortages"]] == [
        ("a", 4, 3)
    ]
    await _hold(stack, uid, 3, "web")
    await _hold(stack, uid, 5, "store")
