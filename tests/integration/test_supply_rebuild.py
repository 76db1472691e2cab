"""Redis lost with open supply and unsellable stock: a rebuild brings back positions (incoming
and unsellable), open supply documents and the incoming schedules exactly; reconcile finds drift
in them and repairs it."""

from __future__ import annotations

from typing import Any

from omnistock.domain.commands import Adjustment, Move
from omnistock.domain.ids import new_supply_id
from omnistock.domain.locations import Location
from omnistock.domain.supply import StoredSupply
from omnistock.postgres.prune import Retention, prune_once
from omnistock.redis import keys
from omnistock.settings import Settings
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import ensure_ready
from omnistock.sync.reconcile import Reconciler
from tests.integration.conftest import Stack
from tests.integration.workload import locations

DAY = 86_400_000
T0 = 1_796_000_000_000  # 2026-11-29


async def supply(
    stack: Stack, loc: Location, eta: int, lines: list[tuple[str, int]]
) -> StoredSupply:
    doc, _ = await stack.store.create_supply(
        supply_id=new_supply_id(stack.store.partition(loc.id)), location=loc.id, eta_ms=eta,
        kind="purchase_order", ref="PO", lines=lines, actor="erp", idem=None,
    )  # fmt: skip
    return doc


async def snapshot(stack: Stack, locs: list[Location], ids: list[str]) -> dict[str, Any]:
    positions = {}
    schedules = {}
    for loc in locs:
        p = stack.store.partition(loc.id)
        for sku in await stack.store.skus_at(loc):
            pos = await stack.store.get_position(loc, sku)
            positions[(loc.id, sku)] = (pos.on_hand, pos.reserved, pos.unsellable, pos.incoming,
                                        pos.available, pos.version)  # fmt: skip
            key = keys.incoming_schedule(p, loc.id, sku)
            schedules[(loc.id, sku)] = await stack.redis.zrange(key, 0, -1, withscores=True)
    docs = {sid: await stack.store.get_supply(sid) for sid in ids}
    open_sets = {
        p: await stack.redis.smembers(keys.supply_open(p)) for p in range(stack.partitions)
    }
    due = {
        by: await stack.store.positions_due([(loc, "a") for loc in locs], by)
        for by in (T0, T0 + DAY, T0 + 2 * DAY, T0 + 5 * DAY)
    }
    return {"positions": positions, "schedules": schedules, "docs": docs, "open": open_sets,
            "due": due}  # fmt: skip


async def test_redis_lost_with_open_supply_is_rebuilt_exactly(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid, n=3)
    a, b, c = locs
    await stack.store.adjust([Adjustment(a.id, "a", 10, "receipt")], "erp", None)
    await stack.store.move([Move(a.id, "a", 3, "unsellable", "damaged")], "erp", None)
    open1 = await supply(stack, a, T0 + DAY, [("a", 5), ("b", 2)])
    partial = await supply(stack, a, T0 + 2 * DAY, [("a", 8)])
    await stack.store.receive_supply(partial, [("a", 3)], True, "erp", None)
    moved = await supply(stack, b, T0 + DAY, [("a", 4)])
    await stack.store.reschedule_supply(moved, T0 + 3 * DAY, "erp", None)
    done = await supply(stack, b, T0, [("a", 1)])
    await stack.store.receive_supply(done, None, True, "erp", None)
    gone = await supply(stack, c, T0, [("a", 6)])
    await stack.store.cancel_supply(gone, "erp", None)
    ids = [open1.id, partial.id, moved.id]
    await Persister(stack.redis, stack.db, stack.partitions).drain()
    before = await snapshot(stack, locs, ids)
    assert before["positions"][(a.id, "a")] == (13, 0, 3, 10, 10, 5)
    assert before["due"][T0 + 2 * DAY][1] == [10, 0, 0]

    await stack.redis.flushall()
    assert await ensure_ready(stack.redis, stack.db, stack.scripts, stack.partitions) == "rebuilt"
    await stack.store.put_location_meta(locs)
    assert await snapshot(stack, locs, ids) == before
    # Finished supply is read from Postgres now; open supply keeps working after the rebuild.
    assert await stack.store.get_supply(done.id) is None
    doc, _ = await stack.store.receive_supply(partial, None, True, "erp", None)
    assert doc.status == "received"
    pos = await stack.store.get_position(a, "a")
    assert (pos.on_hand, pos.incoming, pos.unsellable) == (18, 5, 3)
    await Persister(stack.redis, stack.db, stack.partitions).drain()
    assert await Reconciler(stack.redis, stack.db, stack.partitions).run() == []


async def test_reconcile_finds_and_fixes_supply_drift(stack: Stack, uid: str) -> None:
    (loc,) = await locations(stack.store, uid, n=1)
    kept = await supply(stack, loc, T0, [("a", 5)])
    lost = await supply(stack, loc, T0, [("b", 2)])
    reconciler = Reconciler(stack.redis, stack.db, stack.partitions)
    assert await reconciler.run() == []
    p = stack.store.partition(loc.id)
    await stack.redis.delete(keys.supply(p, lost.id))
    await stack.redis.srem(keys.supply_open(p), lost.id)
    await stack.redis.zadd(keys.incoming_schedule(p, loc.id, "a"), {f"y:{kept.id}:5": T0 + DAY})
    await stack.redis.zadd(keys.incoming_schedule(p, loc.id, "c"), {"y:ghost:1": T0})
    await stack.redis.zadd(keys.incoming_schedule(p, loc.id, "c"), {"t:transfer:1": T0})
    drift = await reconciler.run()
    assert {(d.what, d.item, d.field) for d in drift} == {
        ("supply", lost.id, "open"), ("schedule", "a", "members"), ("schedule", "c", "members"),
    }  # fmt: skip
    assert await reconciler.run(fix=True) != []
    assert await reconciler.run() == []
    assert await stack.store.get_supply(lost.id) == lost
    # Other kinds' members are not supply's to repair: the ghost transfer member is repaired by
    # the transfers' part of reconcile (sync/transfer_state.py), which drops it.
    schedule_c = await stack.redis.zrange(keys.incoming_schedule(p, loc.id, "c"), 0, -1)
    assert schedule_c == []


async def test_pruning_deletes_only_finished_supply_past_retention(stack: Stack, uid: str) -> None:
    async def row(sid: str, status: str, age_s: int) -> None:
        await stack.db.execute(
            "INSERT INTO supply (id, location, status, eta, created_at, doc, event_ms, event_seq)"
            " VALUES ($1, $2, $3, now(), now(), '{}'::jsonb,"
            " (extract(epoch FROM now()) * 1000)::bigint - $4::bigint * 1000, 0)",
            sid, uid, status, age_s,
        )  # fmt: skip

    old, recent = 3 * DAY // 1000, DAY // 1000 // 2
    await row(f"{uid}-1", "received", old)
    await row(f"{uid}-2", "cancelled", old)
    await row(f"{uid}-3", "open", old)
    await row(f"{uid}-4", "partially_received", old)
    await row(f"{uid}-5", "received", recent)
    retention = Retention(
        ledger_seconds=0, reservations_seconds=0, batch=1, supply_seconds=DAY // 1000
    )
    done = await prune_once(stack.db, retention)
    assert done["supply"] == 2
    left = await stack.db.fetch("SELECT id FROM supply WHERE location = $1 ORDER BY id", uid)
    assert [r["id"] for r in left] == [f"{uid}-3", f"{uid}-4", f"{uid}-5"]
    # Never shorter than Redis keeps finished supply.
    settings = Settings(supply_retention_days=0)
    assert Retention.from_settings(settings).supply_seconds == 0
    settings = Settings(supply_retention_days=1, finished_supply_retention_seconds=3 * 86400)
    assert Retention.from_settings(settings).supply_seconds == 3 * 86400 + 3600
