"""Reconcile: compare every position, active reservation, open supply and incoming schedule in
Redis with Postgres.

Events still in flight are allowed for: the streams are drained into Postgres first, and what still
differs is read again after another drain before it counts as drift. ``fix`` repairs Redis from
Postgres (the record).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from omnistock.domain.ids import partition_of
from omnistock.domain.reservations import StoredReservation, decode_reservation
from omnistock.postgres import ledger
from omnistock.redis import keys
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import write_positions
from omnistock.sync.supply_state import restore_supply, supply_drift
from omnistock.sync.transfer_state import restore_transfers, transfer_drift

_FIELDS = ("oh", "r", "ss", "v", "u", "in")
_CHUNK = 5000

PositionKey = tuple[str, str]
# on_hand, reserved, own safety stock, version, unsellable, incoming
Values = tuple[int, int, int | None, int, int, int]
_NAMES = ("on_hand", "reserved", "safety_stock", "version", "unsellable", "incoming")


class Drift(msgspec.Struct, frozen=True):
    """One difference: ``what`` is ``position``, ``reservation``, ``supply``, ``transfer``,
    ``transfer_shadow`` or ``schedule``."""

    what: str
    location: str
    item: str  # sku or reservation id
    field: str
    redis: str
    postgres: str


def _values(fields: Sequence[bytes | None]) -> Values | None:
    oh, r, ss, v, u, inc = fields
    if v is None:
        return None
    return (
        int(oh or 0),
        int(r or 0),
        int(ss) if ss is not None else None,
        int(v),
        int(u or 0),
        int(inc or 0),
    )


def _pg_values(row: Any) -> Values:
    return tuple(row[name] for name in _NAMES)


def _position_drift(key: PositionKey, redis: Values | None, pg: Values | None) -> list[Drift]:
    if redis == pg:
        return []
    loc, sku = key
    if redis is None or pg is None:
        return [Drift("position", loc, sku, "exists", str(redis is not None), str(pg is not None))]
    return [
        Drift("position", loc, sku, name, str(a), str(b))
        for name, a, b in zip(_NAMES, redis, pg, strict=True)
        if a != b
    ]


class Reconciler:
    def __init__(self, redis: Any, db: asyncpg.Pool, partitions: int) -> None:
        self.redis = redis
        self.db = db
        self.partitions = partitions

    async def run(self, fix: bool = False) -> list[Drift]:
        """The drift found (after allowing for events in flight); with ``fix``, repaired too."""
        persister = Persister(self.redis, self.db, self.partitions)
        await persister.drain()
        suspects = await self._positions()
        if suspects:
            await persister.drain()  # writes during the walk: give them their chance
            suspects = await self._recheck(suspects)
        drift = [d for key, (r, p) in suspects.items() for d in _position_drift(key, r, p)]
        drift += await self._reservations()
        supply = await supply_drift(self.redis, self.db, self.partitions)
        drift += [Drift(*msgspec.structs.astuple(d)) for d in supply]
        transfers = await transfer_drift(self.redis, self.db, self.partitions)
        drift += [Drift(*msgspec.structs.astuple(d)) for d in transfers]
        if fix and drift:
            await self._fix_positions(list(suspects))
            await self._fix_reservations()
            if supply:
                await restore_supply(self.redis, self.db, self.partitions, fresh=False)
            if transfers:
                await restore_transfers(self.redis, self.db, self.partitions, fresh=False)
        return drift

    async def _redis_values(self, cells: Sequence[PositionKey]) -> list[Values | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for loc, sku in cells:
                pipe.hmget(keys.position(partition_of(loc, self.partitions), loc, sku), _FIELDS)
            return [_values(row) for row in await pipe.execute()]

    async def _positions(self) -> dict[PositionKey, tuple[Values | None, Values | None]]:
        suspects: dict[PositionKey, tuple[Values | None, Values | None]] = {}
        seen: dict[str, set[str]] = defaultdict(set)
        after = ("", "")
        while True:
            rows = await ledger.positions_chunk(self.db, after[0], after[1], _CHUNK)
            if not rows:
                break
            cells = [(r["location"], r["sku"]) for r in rows]
            for (loc, sku), row, found in zip(
                cells, rows, await self._redis_values(cells), strict=True
            ):
                seen[loc].add(sku)
                pg = _pg_values(row)
                if found != pg:
                    suspects[(loc, sku)] = (found, pg)
            after = cells[-1]
        # Positions only Redis has: walk every sku index (even of a location Postgres lacks).
        async for index in self.redis.scan_iter(match=keys.SKU_INDEX_PATTERN, count=1000):
            loc = keys.location_of_sku_index(index.decode())
            extra = [(loc, m.decode()) for m in await self.redis.smembers(index)]
            extra = [cell for cell in extra if cell[1] not in seen[loc]]
            for cell, found in zip(extra, await self._redis_values(extra), strict=True):
                if found is not None:
                    suspects[cell] = (found, None)
        return suspects

    async def _recheck(
        self, suspects: dict[PositionKey, Any]
    ) -> dict[PositionKey, tuple[Values | None, Values | None]]:
        cells = list(suspects)
        locs, skus = [c[0] for c in cells], [c[1] for c in cells]
        pg_rows = {
            (r["location"], r["sku"]): _pg_values(r)
            for r in await ledger.positions_of(self.db, locs, skus)
        }
        out = {}
        for cell, found in zip(cells, await self._redis_values(cells), strict=True):
            pg = pg_rows.get(cell)
            if found != pg:
                out[cell] = (found, pg)
        return out

    async def _active_in_redis(self) -> dict[str, StoredReservation]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrange(keys.expiries(p), 0, -1)
            ids_by_p = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            wanted = [(p, rid.decode()) for p, ids in enumerate(ids_by_p) for rid in ids]
            for p, rid in wanted:
                pipe.hget(keys.reservation(p, rid), "doc")
            docs = await pipe.execute()
        out = {}
        for (_, rid), doc in zip(wanted, docs, strict=True):
            if doc is not None:
                parsed = decode_reservation(doc)
                if parsed.status == "active":
                    out[rid] = parsed
        return out

    async def _reservations(self) -> list[Drift]:
        redis_active = await self._active_in_redis()
        pg_active = {
            r["id"]: decode_reservation(r["doc"]) for r in await ledger.active_reservations(self.db)
        }
        drift = []
        for rid in sorted(redis_active.keys() | pg_active.keys()):
            a, b = redis_active.get(rid), pg_active.get(rid)
            loc = (a or b).location  # type: ignore[union-attr]
            if a is None or b is None:
                drift.append(
                    Drift("reservation", loc, rid, "active", str(a is not None), str(b is not None))
                )
            elif a != b:
                for name in ("expires_at", "lines", "status"):
                    if getattr(a, name) != getattr(b, name):
                        drift.append(
                            Drift(
                                "reservation",
                                loc,
                                rid,
                                name,
                                str(getattr(a, name)),
                                str(getattr(b, name)),
                            )
                        )
        return drift

    async def _fix_positions(self, cells: Sequence[PositionKey]) -> None:
        if not cells:
            return
        rows = await ledger.positions_of(self.db, [c[0] for c in cells], [c[1] for c in cells])
        known = {(r["location"], r["sku"]) for r in rows}
        for loc, sku in cells:
            if (loc, sku) not in known:  # Redis-only: the record says it does not exist
                p = partition_of(loc, self.partitions)
                await self.redis.delete(keys.position(p, loc, sku))
                await self.redis.srem(keys.sku_index(p, loc), sku)
        await write_positions(self.redis, [rows], self.partitions, fresh=False)

    async def _fix_reservations(self) -> None:
        redis_active = await self._active_in_redis()
        pg_active = {r["id"]: r["doc"] for r in await ledger.active_reservations(self.db)}
        async with self.redis.pipeline(transaction=False) as pipe:
            for rid, doc in redis_active.items():
                if rid not in pg_active:
                    p = partition_of(doc.location, self.partitions)
                    pipe.zrem(keys.expiries(p), rid)
                    pipe.delete(keys.reservation(p, rid))
            for rid, raw in pg_active.items():
                doc = decode_reservation(raw)
                p = partition_of(doc.location, self.partitions)
                pipe.hset(keys.reservation(p, rid), mapping={"doc": raw, "st": doc.status})
                pipe.zadd(keys.expiries(p), {rid: doc.expires_at})
            await pipe.execute()


def drift_table(drift: Sequence[Drift]) -> str:
    """A readable table of the drift."""
    header = ("what", "location", "sku / reservation", "field", "redis", "postgres")
    rows = [header] + [(d.what, d.location, d.item, d.field, d.redis, d.postgres) for d in drift]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
