"""Rebuild: load Redis from Postgres, the record. Runs by itself when Redis is empty (or lost
persisted changes) and by ``omnistock rebuild``; several instances at once are serialised."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from omnistock.domain.ids import partition_of, sourcing_partition
from omnistock.domain.locations import Location
from omnistock.domain.reservations import decode_reservation
from omnistock.domain.sourcing_holds import decode_hold, encode_hold
from omnistock.postgres import catalog, ledger
from omnistock.redis import keys
from omnistock.redis.bulk import bulk_writer
from omnistock.redis.positions import location_meta_fields
from omnistock.redis.scripts import Scripts
from omnistock.redis.streams import ensure_streams, parse_id
from omnistock.sync.persister import Persister
from omnistock.sync.supply_state import restore_supply
from omnistock.sync.transfer_state import restore_transfers

log = logging.getLogger("omnistock.rebuild")
_LOCK = 0x72656275  # pg advisory lock: one rebuild at a time across instances


class Restored(msgspec.Struct):
    positions: int = 0
    reservations: int = 0
    idempotency: int = 0
    sourcing_holds: int = 0
    supply: int = 0
    transfers: int = 0
    seconds: float = 0.0


async def redis_state(redis: Any, db: asyncpg.Pool, partitions: int) -> str:
    """``ready``; ``empty`` (no marker: nothing there, or wiped); ``behind`` (a stream is older than
    what Postgres already persisted from it: Redis lost acknowledged changes)."""
    meta = await redis.hgetall(keys.META)
    if not meta.get(b"ready"):
        return "empty"
    stored = int(meta.get(b"partitions", partitions))
    if stored != partitions:
        raise ValueError(
            f"OMNISTOCK_PARTITIONS={partitions} but the data was made with {stored}; "
            f"set OMNISTOCK_PARTITIONS={stored}"
        )
    offsets = await ledger.offsets(db)
    async with redis.pipeline(transaction=False) as pipe:
        for p in offsets:
            pipe.xinfo_stream(keys.stream(p))
        infos = await pipe.execute(raise_on_error=False)
    for persisted, info in zip(offsets.values(), infos, strict=True):
        if isinstance(info, Exception) or parse_id(info["last-generated-id"]) < persisted:
            return "behind"
    return "ready"


async def ensure_ready(redis: Any, db: asyncpg.Pool, scripts: Scripts, partitions: int) -> str:
    """Make Redis servable: initialise a fresh install, or rebuild from Postgres when Redis is
    empty but Postgres has state, or Redis is behind. Returns what was done."""
    if await redis_state(redis, db, partitions) == "ready":
        return "ready"
    async with db.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        try:
            state = await redis_state(redis, db, partitions)
            if state == "ready":
                return "ready"  # another instance did it while we waited
            if state == "empty" and not await ledger.has_state(conn):
                await _restore_location_meta(redis, partitions, await catalog.all_locations(db))
                await ensure_streams(redis, partitions)
                await _mark_ready(redis, partitions)
                log.info("initialised an empty Redis")
                return "initialised"
            log.warning("Redis is %s; rebuilding it from Postgres", state)
            restored = await rebuild(redis, db, scripts, partitions, fresh=state == "empty")
            log.warning("rebuilt: %s", restored)
            return "rebuilt"
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)


async def rebuild_locked(
    redis: Any, db: asyncpg.Pool, scripts: Scripts, partitions: int
) -> Restored:
    """``omnistock rebuild``: a full rebuild, serialised with any other."""
    async with db.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        try:
            return await rebuild(redis, db, scripts, partitions)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)


async def rebuild(
    redis: Any,
    db: asyncpg.Pool,
    scripts: Scripts,
    partitions: int,
    progress: Callable[[str], None] | None = None,
    *,
    fresh: bool = False,
) -> Restored:
    """Stop writes (streams set aside), persist what they held, then load Redis from Postgres.
    ``fresh``: Redis holds no positions (it was found empty), so none needs clearing first."""
    started = time.perf_counter()
    say = progress or log.info
    await redis.hdel(keys.META, "ready")
    aside = await _set_streams_aside(redis, db, partitions)
    if aside:
        drained = await Persister(redis, db, partitions, streams=aside).drain()
        say(f"persisted {drained} pending events before rebuilding")
    out = Restored()
    out.positions = await _load_positions(redis, db, partitions, fresh)
    say(f"restored {out.positions} positions")
    out.reservations = await _restore_reservations(redis, db, partitions)
    out.idempotency = await _restore_idempotency(redis, db)
    out.sourcing_holds = await _restore_sourcing_holds(redis, db, partitions)
    out.supply = await restore_supply(redis, db, partitions, fresh=fresh)
    out.transfers = await restore_transfers(redis, db, partitions, fresh=fresh)
    locations = await catalog.all_locations(db)
    await _restore_location_meta(redis, partitions, locations)
    offsets = await ledger.offsets(db)
    await ensure_streams(redis, partitions, after=offsets)
    if aside:
        await redis.delete(*aside)
    await _mark_ready(redis, partitions)
    out.seconds = round(time.perf_counter() - started, 3)
    return out


async def _mark_ready(redis: Any, partitions: int) -> None:
    await redis.hset(
        keys.META, mapping={"partitions": partitions, "ready": int(time.time() * 1000)}
    )


async def _set_streams_aside(redis: Any, db: asyncpg.Pool, partitions: int) -> dict[bytes, int]:
    """Rename every stream: scripts see the partition not ready, so no write lands during the
    rebuild; the renamed streams are persisted, then dropped."""
    aside: dict[bytes, int] = {}
    for p in range(partitions):
        stream, old = keys.stream(p), keys.stream_aside(p)
        if await redis.exists(stream):
            if await redis.exists(old):  # left by an interrupted rebuild: persist it first
                await Persister(redis, db, partitions, streams={old.encode(): p}).drain()
            await redis.rename(stream, old)
        if await redis.exists(old):
            aside[old.encode()] = p
    return aside


async def _load_positions(redis: Any, db: asyncpg.Pool, partitions: int, fresh: bool) -> int:
    async with db.acquire() as conn, conn.transaction():
        cursor = await ledger.all_positions_cursor(conn)
        return await write_positions(redis, _chunks(cursor), partitions, fresh=fresh)


async def _chunks(cursor: Any, size: int = 20_000) -> AsyncIterator[list[asyncpg.Record]]:
    while rows := await cursor.fetch(size):
        yield rows


async def write_positions(
    redis: Any,
    chunks: AsyncIterable[Sequence[asyncpg.Record]] | Iterable[Sequence[asyncpg.Record]],
    partitions: int,
    *,
    fresh: bool,
) -> int:
    """Write positions as Postgres rows have them (``all_positions`` columns, chunk by chunk;
    unsellable and incoming last, 0 when a row stops before them):
    the record's values, no version bump, no event. ``fresh`` when they cannot exist in Redis
    yet (nothing to clear)."""
    where: dict[str, tuple[str, str]] = {}  # location -> (position key prefix, sku index key)
    members: dict[str, list[str]] = defaultdict(list)
    count = 0
    async with bulk_writer(redis) as bulk:
        async for rows in _aiter(chunks):
            for loc, sku, on_hand, reserved, own_ss, version, ts, *states in rows:
                unsellable, incoming = states or (0, 0)  # rows without stock states: none
                found = where.get(loc)
                if found is None:
                    p = partition_of(loc, partitions)
                    found = where[loc] = (keys.position(p, loc, ""), keys.sku_index(p, loc))
                key = found[0] + sku
                fields: list[Any] = ["oh", on_hand, "r", reserved, "v", version, "ts", ts]
                if own_ss is not None:
                    fields += ("ss", own_ss)
                elif not fresh:
                    bulk.add("HDEL", key, "ss")
                # u and in as save_pos writes them: only once a position has used them.
                if unsellable or incoming:
                    fields += ("u", unsellable, "in", incoming)
                elif not fresh:
                    bulk.add("HDEL", key, "u", "in")
                bulk.add("HSET", key, *fields)
                index = members[found[1]]
                index.append(sku)
                if len(index) >= 1000:
                    bulk.add("SADD", found[1], *index)
                    index.clear()
            count += len(rows)
            await bulk.flush_if_full()
        for index_key, skus in members.items():
            if skus:
                bulk.add("SADD", index_key, *skus)
    return count


async def _aiter(chunks: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


async def _restore_reservations(redis: Any, db: asyncpg.Pool, partitions: int) -> int:
    rows = await ledger.active_reservations(db)
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.delete(keys.expiries(p))
        for row in rows:
            doc = decode_reservation(row["doc"])
            p = partition_of(doc.location, partitions)
            pipe.hset(keys.reservation(p, doc.id), mapping={"doc": row["doc"], "st": doc.status})
            pipe.zadd(keys.expiries(p), {doc.id: doc.expires_at})
        await pipe.execute()
    return len(rows)


async def _restore_sourcing_holds(redis: Any, db: asyncpg.Pool, partitions: int) -> int:
    """Hand every unfinished sourcing hold back to the courier: its record, and its place in the
    pending set with the lease ending now (whoever drove it is gone with Redis's state), so the
    courier finishes or undoes it at once. Finished ones stay in Postgres only (GET falls back).
    A record Redis still has as unfinished (an older Redis) that Postgres has finished gets
    Postgres' record, so no stale state is served."""
    rows = await ledger.unfinished_sourcing_holds(db)
    unfinished = {row["id"] for row in rows}
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.zrange(keys.sourcing_pending(p), 0, -1)
        listed = await pipe.execute()
    stale = [m.decode() for members in listed for m in members if m.decode() not in unfinished]
    finished = await ledger.sourcing_hold_docs(db, stale) if stale else {}
    seconds, micros = await redis.time()
    now = int(seconds) * 1000 + int(micros) // 1000  # the scripts' clock
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.delete(keys.sourcing_pending(p))
        for hold_id in stale:
            key = keys.sourcing_hold(sourcing_partition(hold_id, partitions), hold_id)
            if (doc := finished.get(hold_id)) is not None:
                pipe.hset(key, mapping={"doc": doc, "st": decode_hold(doc).status})
            else:  # pruned long after it finished: nothing left to serve
                pipe.delete(key)
        for row in rows:
            hold = msgspec.structs.replace(decode_hold(row["doc"]), lease_until=now)
            p = sourcing_partition(hold.id, partitions)  # the persister wrote only ids that parse
            record = encode_hold(hold)
            pipe.hset(keys.sourcing_hold(p, hold.id), mapping={"doc": record, "st": hold.status})
            pipe.zadd(keys.sourcing_pending(p), {hold.id: now})
        await pipe.execute()
    return len(rows)


async def _restore_idempotency(redis: Any, db: asyncpg.Pool) -> int:
    rows = await ledger.live_idempotency(db)
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            key, record, ttl = row["key"], bytes(row["record"]), max(1000, row["ttl_ms"])
            pipe.set(key, record, px=ttl)
            digest = key.rsplit(":", 1)[1]
            pipe.set(keys.idempotency_claim(digest), record.split(b"\n", 1)[0], px=ttl)
        await pipe.execute()
    return len(rows)


async def _restore_location_meta(redis: Any, partitions: int, locations: list[Location]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for loc in locations:
            key = keys.location_meta(partition_of(loc.id, partitions), loc.id)
            pipe.hset(key, mapping=location_meta_fields(loc))
        await pipe.execute()
