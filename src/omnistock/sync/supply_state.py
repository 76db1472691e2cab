"""Supply in Redis from Postgres (the record): what a rebuild restores (open supply documents,
the open sets and the incoming schedules; each position's `in` comes back with the position) and
what reconcile compares and repairs. Only supply members (``y:``) of the schedules are touched:
other kinds (transfers) are restored by their own part."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from omnistock.domain.ids import partition_of
from omnistock.domain.supply import SCHEDULE_PREFIX, StoredSupply, decode_supply, schedule_member
from omnistock.postgres import supply as supply_table
from omnistock.redis import keys

Cell = tuple[str, str]  # location, sku
Schedules = dict[Cell, dict[str, int]]  # (location, sku) -> {member: eta ms}
_PREFIX = f"{SCHEDULE_PREFIX}:".encode()


class SupplyDrift(msgspec.Struct, frozen=True):
    """One difference: ``what`` is ``supply`` (an open supply) or ``schedule`` (a position's
    incoming schedule)."""

    what: str
    location: str
    item: str  # supply id or sku
    field: str
    redis: str
    postgres: str


def expected_schedules(docs: list[StoredSupply]) -> Schedules:
    """The supply members each position's schedule has when the open supplies are ``docs``."""
    out: Schedules = defaultdict(dict)
    for doc in docs:
        for line in doc.lines:
            if line.outstanding > 0:
                out[(doc.location, line.sku)][schedule_member(doc.id, line.outstanding)] = doc.eta
    return out


async def _open_from_postgres(db: Any) -> list[tuple[StoredSupply, str]]:
    return [(decode_supply(r["doc"]), r["doc"]) for r in await supply_table.open_supply(db)]


async def scan_keys(redis: Any, pattern: str) -> list[bytes]:
    """Every key matching ``pattern``."""
    return [key async for key in redis.scan_iter(match=pattern, count=1000)]


async def schedule_drift(
    redis: Any, want: Mapping[Cell, Mapping[str, float]], prefix: bytes
) -> list[SupplyDrift]:
    """The incoming schedules whose members of one kind (``prefix``: supply's or transfers')
    differ from ``want``; members of the other kinds are their owner's to compare."""
    have: dict[Cell, dict[str, float]] = defaultdict(dict)
    schedule_keys = await scan_keys(redis, keys.INCOMING_SCHEDULE_PATTERN)
    async with redis.pipeline(transaction=False) as pipe:
        for key in schedule_keys:
            pipe.zrange(key, 0, -1, withscores=True)
        found = await pipe.execute()
    for key, members in zip(schedule_keys, found, strict=True):
        loc, sku = key.decode().split(":inc:", 1)[1].split("/", 1)
        for member, score in members:
            if member.startswith(prefix):
                have[(loc, sku)][member.decode()] = int(score) if score.is_integer() else score
    drift = []
    for cell in sorted(want.keys() | have.keys()):
        if want.get(cell, {}) != have.get(cell, {}):
            drift.append(
                SupplyDrift(
                    "schedule", cell[0], cell[1], "members",
                    str(sorted(have.get(cell, {}).items())), str(sorted(want.get(cell, {}).items())),
                )
            )  # fmt: skip
    return drift


async def restore_supply(redis: Any, db: asyncpg.Pool, partitions: int, *, fresh: bool) -> int:
    """Write every open supply, the open sets and the schedules' supply members as Postgres has
    them (clearing what Redis had first, unless ``fresh``). Returns the open supplies restored."""
    found = await _open_from_postgres(db)
    if not fresh:
        await _clear(redis, partitions)
    async with redis.pipeline(transaction=False) as pipe:
        for doc, raw in found:
            p = partition_of(doc.location, partitions)
            pipe.hset(keys.supply(p, doc.id), mapping={"doc": raw, "st": doc.status})
            pipe.sadd(keys.supply_open(p), doc.id)
        for (loc, sku), members in expected_schedules([d for d, _ in found]).items():
            key = keys.incoming_schedule(partition_of(loc, partitions), loc, sku)
            pipe.zadd(key, members)
        await pipe.execute()
    return len(found)


async def _clear(redis: Any, partitions: int) -> None:
    """Drop supply documents, open sets and the supply members of every schedule."""
    doomed = await scan_keys(redis, keys.SUPPLY_PATTERN)
    doomed += [keys.supply_open(p).encode() for p in range(partitions)]
    for i in range(0, len(doomed), 500):
        await redis.delete(*doomed[i : i + 500])
    for key in await scan_keys(redis, keys.INCOMING_SCHEDULE_PATTERN):
        members = [m for m in await redis.zrange(key, 0, -1) if m.startswith(_PREFIX)]
        if members:
            await redis.zrem(key, *members)


async def supply_drift(redis: Any, db: asyncpg.Pool, partitions: int) -> list[SupplyDrift]:
    """Open supplies and schedule members that differ between Redis and Postgres."""
    pg = {doc.id: doc for doc, _ in await _open_from_postgres(db)}
    in_redis: dict[str, StoredSupply] = {}
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.smembers(keys.supply_open(p))
        open_ids = await pipe.execute()
    wanted = [(p, sid.decode()) for p, ids in enumerate(open_ids) for sid in ids]
    async with redis.pipeline(transaction=False) as pipe:
        for p, sid in wanted:
            pipe.hget(keys.supply(p, sid), "doc")
        for (_, sid), raw in zip(wanted, await pipe.execute(), strict=True):
            if raw is not None:
                in_redis[sid] = decode_supply(raw)
    drift: list[SupplyDrift] = []
    for sid in sorted(in_redis.keys() | pg.keys()):
        a, b = in_redis.get(sid), pg.get(sid)
        loc = (a or b).location  # type: ignore[union-attr]
        if a is None or b is None:
            drift.append(
                SupplyDrift("supply", loc, sid, "open", str(a is not None), str(b is not None))
            )
            continue
        for name in ("status", "eta", "lines"):
            if getattr(a, name) != getattr(b, name):
                drift.append(
                    SupplyDrift(
                        "supply", loc, sid, name, str(getattr(a, name)), str(getattr(b, name))
                    )
                )
    drift += await schedule_drift(redis, expected_schedules(list(pg.values())), _PREFIX)
    return drift
