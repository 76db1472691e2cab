"""A mixed write workload and the checks that Postgres holds exactly what Redis did."""

from __future__ import annotations

import asyncio
import random

from omnistock.domain.commands import Adjustment, Count
from omnistock.domain.errors import DomainError
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.store import StockStore
from tests.events import event_fields


async def locations(store: StockStore, prefix: str, n: int = 4) -> list[Location]:
    locs = [Location(id=f"{prefix}-{i}", name=f"{prefix}-{i}", kind="store") for i in range(n)]
    await store.put_location_meta(locs)
    return locs


async def churn(store: StockStore, locs: list[Location], rounds: int, seed: int = 7) -> int:
    """Receipts, counts, reservations, commits, releases over a few hot skus. Returns how many
    calls succeeded."""
    rng = random.Random(seed)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        loc = rng.choice(locs).id
        sku = f"s{rng.randrange(5)}"
        try:
            match i % 5:
                case 0 | 1:
                    await store.adjust(
                        [Adjustment(loc, sku, rng.randint(1, 9), "receipt")], "erp", None
                    )
                case 2:
                    await store.set_counts([Count(loc, sku, rng.randint(0, 30))], "count", None)
                case _:
                    rid = new_reservation_id(store.partition(loc))
                    doc, _ = await store.reserve(
                        reservation_id=rid, location=loc, lines=[(sku, 1)], ttl_seconds=600,
                        channel="web", ref=None, allow_partial=False, actor="shop", idem=None,
                    )  # fmt: skip
                    if i % 2:
                        await store.commit(doc, None, "till", None)
                    else:
                        await store.release(doc, "shop", None)
            done += 1
        except DomainError:
            pass  # a shortage is an outcome too

    for start in range(0, rounds, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(rounds, start + 50))))
    return done


async def stream_event_ids(store: StockStore, locs: list[Location]) -> set[str]:
    """Ids (as the ledger names them) of every position event of ``locs`` still in the streams."""
    wanted = {loc.id for loc in locs}
    found: set[str] = set()
    for p in {store.partition(loc.id) for loc in locs}:
        for entry_id, fields in await store.client.xrange(keys.stream(p)):
            event = event_fields(fields)
            if event["t"] == "p" and event["loc"] in wanted:
                found.add(f"{p}:{entry_id.decode()}")
    return found


async def redis_positions(
    store: StockStore, locs: list[Location]
) -> dict[tuple[str, str], tuple[int, ...]]:
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    for loc in locs:
        for sku in await store.skus_at(loc):
            pos = await store.get_position(loc, sku)
            out[(loc.id, sku)] = (pos.on_hand, pos.reserved, pos.version)
    return out


async def pg_positions(db: object, locs: list[Location]) -> dict[tuple[str, str], tuple[int, ...]]:
    rows = await db.fetch(  # type: ignore[attr-defined]
        "SELECT location, sku, on_hand, reserved, version FROM positions WHERE location = ANY($1)",
        [loc.id for loc in locs],
    )
    return {(r["location"], r["sku"]): (r["on_hand"], r["reserved"], r["version"]) for r in rows}


async def ledger_ids(db: object, locs: list[Location]) -> list[str]:
    rows = await db.fetch(  # type: ignore[attr-defined]
        "SELECT event_id FROM ledger WHERE location = ANY($1)", [loc.id for loc in locs]
    )
    return [r["event_id"] for r in rows]
