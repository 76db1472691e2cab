"""Rebuild (Redis from Postgres) and reconcile (Redis vs Postgres) on servers of their own."""

from __future__ import annotations

import asyncio

import msgspec

from omnistock.domain.commands import Adjustment, Count, Idempotency, idempotency_digest
from omnistock.domain.ids import new_reservation_id
from omnistock.redis import keys
from omnistock.redis.streams import parse_id
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import ensure_ready, redis_state
from omnistock.sync.reconcile import Reconciler, drift_table
from tests.integration.conftest import Stack
from tests.integration.workload import churn, locations, redis_positions


async def snapshot(stack: Stack, locs: list) -> dict:  # type: ignore[type-arg]
    """Everything a rebuild must bring back for ``locs``."""
    positions = await redis_positions(stack.store, locs)
    own_ss = {}
    for loc in locs:
        for sku in await stack.store.skus_at(loc):
            raw = await stack.redis.hget(
                keys.position(stack.store.partition(loc.id), loc.id, sku), "ss"
            )
            own_ss[(loc.id, sku)] = raw
    active = {}
    for p in range(stack.partitions):
        for rid, score in await stack.redis.zrange(keys.expiries(p), 0, -1, withscores=True):
            doc = await stack.store.get_reservation(rid.decode())
            active[rid] = (score, doc)
    return {"positions": positions, "own_ss": own_ss, "active": active}


async def test_redis_wiped_is_rebuilt_exactly(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid)
    await churn(stack.store, locs, 200)
    await stack.store.set_counts([Count(locs[0].id, "own", 9, safety_stock=4)], "c", None)
    await stack.store.adjust([Adjustment(locs[1].id, "held", 10, "receipt")], "erp", None)
    held, _ = await stack.store.reserve(
        reservation_id=new_reservation_id(stack.store.partition(locs[1].id)), location=locs[1].id,
        lines=[("held", 3)], ttl_seconds=900, channel="web", ref="cart", allow_partial=False,
        actor="shop", idem=None,
    )  # fmt: skip
    idem = Idempotency(key="k1", digest=idempotency_digest("key-1", uid), body_hash="body")
    first, _ = await stack.store.adjust([Adjustment(locs[2].id, "i", 5, "receipt")], "erp", idem)
    await Persister(stack.redis, stack.db, stack.partitions).drain()
    before = await snapshot(stack, locs)
    offsets = {
        r["partition"]: (r["last_ms"], r["last_seq"])
        for r in await stack.db.fetch("SELECT * FROM stream_offsets")
    }

    await stack.redis.flushall()
    assert await redis_state(stack.redis, stack.db, stack.partitions) == "empty"
    await stack.store.put_location_meta(locs)  # a location PUT racing the rebuild must not help
    reply = await stack.scripts.adjust(
        stack.redis,
        [keys.stream(0), keys.unused_idempotency_record(0), keys.position(0, "x", "y"), keys.sku_index(0, "x"), keys.location_meta(0, "x")],
        ["erp", "", 1000, "", "x", "y", 1, "receipt", ""],
    )  # fmt: skip
    assert reply.code == 10  # not ready: no write lands on the empty store

    results = await asyncio.gather(
        *(ensure_ready(stack.redis, stack.db, stack.scripts, stack.partitions) for _ in range(3))
    )
    assert sorted(results) == ["ready", "ready", "rebuilt"]
    await stack.store.put_location_meta(locs)
    assert await snapshot(stack, locs) == before
    again, replayed = await stack.store.adjust(
        [Adjustment(locs[2].id, "i", 5, "receipt")], "erp", idem
    )
    assert (again, replayed) == (first, True)
    # New events follow what Postgres already has, and older cursors are seen as too old.
    for p, persisted in offsets.items():
        info = await stack.redis.xinfo_stream(keys.stream(p))
        assert parse_id(info["max-deleted-entry-id"]) == persisted
    (pos,), _ = await stack.store.adjust(
        [Adjustment(locs[1].id, "held", 1, "receipt")], "erp", None
    )
    assert (pos.on_hand, pos.reserved, pos.version) == (11, 3, 3)
    p = stack.store.partition(locs[1].id)
    newest = await stack.redis.xrevrange(keys.stream(p), count=1)
    assert parse_id(newest[0][0]) > offsets[p]
    doc = await stack.store.get_reservation(held.id)
    assert doc == held


async def test_redis_behind_postgres_is_rebuilt(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid, n=1)
    (pos,), _ = await stack.store.adjust([Adjustment(locs[0].id, "a", 7, "receipt")], "erp", None)
    await Persister(stack.redis, stack.db, stack.partitions).drain()
    # As if Redis restarted from an AOF missing its last second: the change and its stream entry
    # are gone from Redis, but Postgres has them.
    p = stack.store.partition(locs[0].id)
    await stack.redis.delete(keys.position(p, locs[0].id, "a"), keys.stream(p))
    await stack.redis.xgroup_create(keys.stream(p), keys.PERSISTER_GROUP, id="0", mkstream=True)
    assert await redis_state(stack.redis, stack.db, stack.partitions) == "behind"
    assert await ensure_ready(stack.redis, stack.db, stack.scripts, stack.partitions) == "rebuilt"
    await stack.store.put_location_meta(locs)
    assert await stack.store.get_position(locs[0], "a") == pos


async def test_reconcile_clean_then_drift_then_fix(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid)
    await churn(stack.store, locs, 200)  # not persisted yet: in flight, not drift
    reconciler = Reconciler(stack.redis, stack.db, stack.partitions)
    assert await reconciler.run() == []

    loc = locs[0]
    sku = (await stack.store.skus_at(loc))[0]
    p = stack.store.partition(loc.id)
    await stack.redis.hincrby(keys.position(p, loc.id, sku), "oh", 5)
    await stack.redis.hset(
        keys.position(p, loc.id, "ghost"), mapping={"oh": 1, "r": 0, "v": 1, "ts": 1}
    )
    await stack.redis.sadd(keys.sku_index(p, loc.id), "ghost")
    rid = new_reservation_id(p)
    await stack.redis.hset(
        keys.reservation(p, rid),
        mapping={
            "doc": msgspec.json.encode(
                {
                    "id": rid,
                    "location": loc.id,
                    "status": "active",
                    "actor": "x",
                    "created_at": 1,
                    "expires_at": 9999999999999,
                    "lines": [["a", 1, 1, 0]],
                }
            ),
            "st": "active",
        },
    )
    await stack.redis.zadd(keys.expiries(p), {rid: 9999999999999})

    drift = await reconciler.run()
    found = {(d.what, d.item, d.field) for d in drift}
    assert found == {
        ("position", sku, "on_hand"),
        ("position", "ghost", "exists"),
        ("reservation", rid, "active"),
    }
    table = drift_table(drift)
    assert "on_hand" in table and "ghost" in table and rid in table
    assert await reconciler.run(fix=True) != []
    assert await reconciler.run() == []
