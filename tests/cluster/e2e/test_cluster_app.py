"""What only a cluster has: a sourcing hold whose parts live on different primaries, and the
invalidation channel reaching every instance (PUBLISH is broadcast over the cluster bus)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from omnistock.redis.cluster import ClusterMultiplexer
from tests.e2e.conftest import AppServer, put_location, stock
from tests.e2e.helpers import PARTITIONS, position

PATH = "/v1/sourcing/reservations"


async def on_three_primaries(hot: ClusterMultiplexer, uid: str) -> list[str]:
    """Three location ids whose partitions are served by three different primaries."""
    await hot.refresh()
    chosen: dict[str, str] = {}
    n = 0
    while len(chosen) < 3:
        loc = f"{uid}-{n}"
        n += 1
        owner = hot.owner(keys.stream(partition_of(loc, PARTITIONS)))
        assert owner is not None
        chosen.setdefault(owner, loc)
    return list(chosen.values())


async def test_a_hold_across_primaries_is_all_or_nothing(
    app: AppServer, admin: httpx.AsyncClient, store: Any, uid: str
) -> None:
    a, b, c = await on_three_primaries(store.hot, uid)
    for n, loc in enumerate((a, b, c)):
        await put_location(
            admin, loc, kind="warehouse", groups=[uid], ship_from=True, priority=n + 1
        )
    await stock(admin, a, x=2)
    await stock(admin, b, y=2)
    await stock(admin, c, z=1)
    body: dict[str, Any] = {
        "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 2}, {"sku": "z", "qty": 1}],
        "fulfillment": "ship",
        "group": uid,
        "ttl_seconds": 120,
        "channel": "web",
    }
    # Concurrent holds of everything there is: exactly one gets all three parts.
    results = await asyncio.gather(*(admin.post(PATH, json=body) for _ in range(8)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 7, [r.text for r in results]
    won = next(r.json() for r in results if r.status_code == 201)
    assert {r["location"] for r in won["reservations"]} == {a, b, c}
    for loc, sku, qty in ((a, "x", 2), (b, "y", 2), (c, "z", 1)):
        assert (await position(admin, loc, sku))["reserved"] == qty
    released = await admin.post(f"{PATH}/{won['id']}/release")
    assert released.status_code == 200, released.text
    for loc, sku in ((a, "x"), (b, "y"), (c, "z")):
        assert (await position(admin, loc, sku))["reserved"] == 0


async def test_invalidations_reach_every_instance(
    app: AppServer, other_app: AppServer, app_redis: Any
) -> None:
    """Both instances hear the channel, whichever node a PUBLISH reaches."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        heard = int(await app_redis.publish(keys.INVALIDATE_CHANNEL, "ping"))
        if heard == 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert heard == 2


async def test_readyz_and_metrics_see_the_workers_on_a_cluster(
    app: AppServer, anon: httpx.AsyncClient
) -> None:
    """Defect (found by tests/cluster/integration/test_fleet.py): on a cluster, /readyz always
    answered 503 "worker: reports unreadable" (TIME cannot join a redis-py cluster pipeline) and
    /metrics left out the workers' lines, however many workers ran."""
    resp = await anon.get("/readyz")
    assert resp.status_code == 200, resp.text
    metrics = await anon.get("/metrics")
    assert metrics.status_code == 200
    alive = re.search(r"^omnistock_workers_alive (\d+)$", metrics.text, re.M)
    assert alive is not None and int(alive.group(1)) >= 1, metrics.text[-2000:]
