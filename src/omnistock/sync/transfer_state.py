"""Transfers in Redis from Postgres (the record): what a rebuild restores (the open transfers'
records, shadows and pending sets, and the transfer members ``t:`` of the incoming schedules;
each position's ``in`` comes back with the position) and what reconcile compares and repairs.
Other kinds of schedule members (supply) are left to their own part."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg

from omnistock.domain.ids import partition_of, transfer_partition
from omnistock.domain.transfers import (
    OPEN,
    SCHEDULE_PREFIX,
    StoredTransfer,
    decode_transfer,
    schedule_member,
    schedule_score,
)
from omnistock.postgres import transfers as transfer_table
from omnistock.redis import keys
from omnistock.sync.supply_state import SupplyDrift, scan_keys, schedule_drift

Cell = tuple[str, str]  # location, sku
Schedules = dict[Cell, dict[str, float]]  # (location, sku) -> {member: score}
_PREFIX = f"{SCHEDULE_PREFIX}:".encode()
_UNSETTLED = frozenset({"in_transit", "cancelling"})  # a record not finished


def expected_schedules(shadows: list[StoredTransfer]) -> Schedules:
    """The transfer members each position's schedule has when the open shadows are these."""
    out: Schedules = defaultdict(dict)
    for doc in shadows:
        if doc.status not in OPEN:
            continue
        for line in doc.lines:
            if line.outstanding > 0:
                member = schedule_member(doc.id, line.outstanding)
                out[(doc.to, line.sku)][member] = schedule_score(doc.eta)
    return out


async def _open_from_postgres(
    db: Any,
) -> tuple[list[tuple[StoredTransfer, str]], list[tuple[StoredTransfer, str]]]:
    records, shadows = [], []
    for from_doc, to_doc in await transfer_table.open_transfers(db):
        if from_doc is not None:
            records.append((decode_transfer(from_doc), from_doc))
        if to_doc is not None:
            shadows.append((decode_transfer(to_doc), to_doc))
    return records, shadows


async def restore_transfers(redis: Any, db: asyncpg.Pool, partitions: int, *, fresh: bool) -> int:
    """Write every open transfer's record (pending ones back in their pending set, so the
    courier settles them), shadow and schedule members as Postgres has them (clearing what Redis
    had first, unless ``fresh``). Returns the open transfers restored."""
    records, shadows = await _open_from_postgres(db)
    if not fresh:
        await _clear(redis, partitions)
    async with redis.pipeline(transaction=False) as pipe:
        for doc, raw in records:
            p = transfer_partition(doc.id, partitions)
            pipe.hset(keys.transfer(p, doc.id), mapping={"doc": raw, "st": doc.status})
            if doc.pending:
                pipe.zadd(keys.transfer_pending(p), {doc.id: doc.lease_until})
        for doc, raw in shadows:
            key = keys.transfer_shadow(partition_of(doc.to, partitions), doc.id)
            pipe.hset(key, mapping={"doc": raw, "st": doc.status})
        for (loc, sku), members in expected_schedules([d for d, _ in shadows]).items():
            pipe.zadd(keys.incoming_schedule(partition_of(loc, partitions), loc, sku), members)
        await pipe.execute()
    return len({d.id for d, _ in records} | {d.id for d, _ in shadows})


async def _clear(redis: Any, partitions: int) -> None:
    """Drop transfer records, shadows, pending sets and the transfer members of every schedule."""
    doomed = await scan_keys(redis, keys.TRANSFER_PATTERN)
    doomed += await scan_keys(redis, keys.TRANSFER_SHADOW_PATTERN)
    doomed += [keys.transfer_pending(p).encode() for p in range(partitions)]
    for i in range(0, len(doomed), 500):
        await redis.delete(*doomed[i : i + 500])
    for key in await scan_keys(redis, keys.INCOMING_SCHEDULE_PATTERN):
        members = [m for m in await redis.zrange(key, 0, -1) if m.startswith(_PREFIX)]
        if members:
            await redis.zrem(key, *members)


async def _docs(redis: Any, pattern: str) -> dict[str, StoredTransfer]:
    found = await scan_keys(redis, pattern)
    async with redis.pipeline(transaction=False) as pipe:
        for key in found:
            pipe.hget(key, "doc")
        raws = await pipe.execute()
    docs = (decode_transfer(raw) for raw in raws if raw is not None)
    return {doc.id: doc for doc in docs}


def _compare(
    what: str, have: dict[str, StoredTransfer], want: dict[str, StoredTransfer], fields: list[str]
) -> list[SupplyDrift]:
    drift = []
    for tid in sorted(have.keys() | want.keys()):
        a, b = have.get(tid), want.get(tid)
        loc = (a or b).from_ if what == "transfer" else (a or b).to  # type: ignore[union-attr]
        if a is None or b is None:
            drift.append(
                SupplyDrift(what, loc, tid, "open", str(a is not None), str(b is not None))
            )
            continue
        for name in fields:
            if getattr(a, name) != getattr(b, name):
                drift.append(
                    SupplyDrift(what, loc, tid, name, str(getattr(a, name)), str(getattr(b, name)))
                )
    return drift


async def transfer_drift(redis: Any, db: asyncpg.Pool, partitions: int) -> list[SupplyDrift]:
    """Open transfer records and shadows, and transfer schedule members, that differ between
    Redis and Postgres (``what``: ``transfer``, ``transfer_shadow`` or ``schedule``)."""
    records, shadows = await _open_from_postgres(db)
    pg_records = {d.id: d for d, _ in records if d.status in _UNSETTLED}
    pg_shadows = {d.id: d for d, _ in shadows if d.status in OPEN}
    redis_records = {
        tid: d
        for tid, d in (await _docs(redis, keys.TRANSFER_PATTERN)).items()
        if d.status in _UNSETTLED
    }
    redis_shadows = {
        tid: d
        for tid, d in (await _docs(redis, keys.TRANSFER_SHADOW_PATTERN)).items()
        if d.status in OPEN
    }
    # (not `pending`: clearing it is Redis-only state, see transfer_confirm.lua)
    drift = _compare("transfer", redis_records, pg_records, ["status", "lines"])
    drift += _compare("transfer_shadow", redis_shadows, pg_shadows, ["status", "eta", "lines"])
    drift += await schedule_drift(redis, expected_schedules(list(pg_shadows.values())), _PREFIX)
    return drift
