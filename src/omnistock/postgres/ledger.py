"""The one owner of ledger.sql: the ledger, positions, reservations, sourcing hold records,
idempotency records and stream offsets as Postgres keeps them. Everything else reaches those tables through these
functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from omnistock.postgres.sql import load_queries

_Q = load_queries("ledger.sql")

Columns = Sequence[Sequence[Any]]  # unnest()-style parameters: one list per column


async def write_batch(
    conn: Any,
    ledger: Sequence[Sequence[Any]],
    positions: Sequence[Sequence[Any]],
    reservations: Columns,
    idempotency: Columns,
    offsets: Columns,
    sourcing_holds: Columns = ((),),
) -> None:
    """Write one persister batch in the caller's transaction (events and positions by COPY)."""
    if ledger:
        await conn.execute(_Q["staging"])
        await conn.copy_records_to_table("ledger_in", records=ledger)
        await conn.execute(_Q["insert_ledger"])
        await conn.copy_records_to_table("positions_in", records=positions)
        await conn.execute(_Q["upsert_positions"])
    if reservations[0]:
        await conn.execute(_Q["upsert_reservations"], *reservations)
    if sourcing_holds[0]:
        await conn.execute(_Q["upsert_sourcing_holds"], *sourcing_holds)
    if idempotency[0]:
        await conn.execute(_Q["insert_idempotency"], *idempotency)
    if offsets[0]:
        await conn.execute(_Q["advance_offsets"], *offsets)


async def quarantine(
    conn: Any, entry_id: str, partition: int, fields: bytes, error: str, ms: int, seq: int
) -> None:
    """Set a poison stream entry aside and move the partition's offset past it (in the caller's
    transaction)."""
    await conn.execute(_Q["quarantine"], entry_id, partition, fields, error)
    await conn.execute(_Q["advance_offsets"], [partition], [ms], [seq])


async def offsets(db: Any) -> dict[int, tuple[int, int]]:
    """The last persisted stream id of each partition: ``{partition: (ms, seq)}``."""
    rows = await db.fetch(_Q["offsets"])
    return {r["partition"]: (r["last_ms"], r["last_seq"]) for r in rows}


async def has_state(conn: Any) -> bool:
    """Whether Postgres holds anything (positions, reservations or offsets)."""
    return bool(await conn.fetchval(_Q["has_state"]))


async def all_positions_cursor(conn: Any) -> Any:
    """A cursor over every position (in the caller's transaction)."""
    return await conn.cursor(_Q["all_positions"])


async def active_reservations(db: Any) -> list[asyncpg.Record]:
    """Every active reservation: rows of ``id`` and ``doc`` (JSON text)."""
    return list(await db.fetch(_Q["active_reservations"]))


async def live_idempotency(db: Any) -> list[asyncpg.Record]:
    """Idempotency records still live: rows of ``key``, ``record`` and ``ttl_ms``."""
    return list(await db.fetch(_Q["live_idempotency"]))


async def positions_of(db: Any, locations: list[str], skus: list[str]) -> list[asyncpg.Record]:
    """The positions of the given (location, sku) pairs (two parallel lists)."""
    return list(await db.fetch(_Q["positions_of"], locations, skus))


async def positions_chunk(
    db: Any, after_location: str, after_sku: str, limit: int
) -> list[asyncpg.Record]:
    """Up to ``limit`` positions in key order after (``after_location``, ``after_sku``)."""
    return list(await db.fetch(_Q["positions_chunk"], after_location, after_sku, limit))


async def history(
    db: Any, location: str, sku: str, below_version: int | None, limit: int
) -> list[asyncpg.Record]:
    """A position's ledger, newest first, below ``below_version`` (None: from the newest)."""
    if below_version is None:
        return list(await db.fetch(_Q["history"], location, sku, limit))
    return list(await db.fetch(_Q["history_below"], location, sku, below_version, limit))


_MAX_NEAR_MS = 10**13  # past this (year 2286) a stream id's ms is no timestamp worth a look


async def event_version(db: Any, event_id: str, location: str, sku: str) -> int | None:
    """The version an event of this position produced (None: no such event here). Looked for
    near its stream id's time first (cheap), then anywhere (the clock may have stepped back)."""
    ms = _stream_ms(event_id)
    if ms is not None:
        near: int | None = await db.fetchval(_Q["event_version_near"], event_id, location, sku, ms)
        if near is not None:
            return near
    version: int | None = await db.fetchval(_Q["event_version"], event_id, location, sku)
    return version


def _stream_ms(event_id: str) -> int | None:
    """The ms of ``'<partition>:<ms>-<seq>'`` when it is a plausible time, else None."""
    _, _, stream_id = event_id.partition(":")
    ms, _, _ = stream_id.partition("-")
    return int(ms) if ms.isascii() and ms.isdigit() and int(ms) <= _MAX_NEAR_MS else None


async def reservation_doc(db: Any, reservation_id: str) -> str | None:
    """A reservation's document (JSON text) as Postgres keeps it, or None."""
    doc: str | None = await db.fetchval(_Q["reservation_doc"], reservation_id)
    return doc


async def sourcing_hold_doc(db: Any, hold_id: str) -> str | None:
    """A sourcing hold's record (JSON text) as Postgres keeps it, or None: what GET answers with
    once Redis no longer has the record."""
    doc: str | None = await db.fetchval(_Q["sourcing_hold_doc"], hold_id)
    return doc


async def unfinished_sourcing_holds(db: Any) -> list[asyncpg.Record]:
    """Every sourcing hold record still pending or compensating: rows of ``id`` and ``doc``
    (JSON text), for the rebuild to hand back to the courier."""
    return list(await db.fetch(_Q["unfinished_sourcing_holds"]))


async def sourcing_hold_docs(db: Any, hold_ids: list[str]) -> dict[str, str]:
    """The records (JSON text) of those of ``hold_ids`` Postgres has, by id."""
    rows = await db.fetch(_Q["sourcing_hold_docs"], hold_ids)
    return {row["id"]: row["doc"] for row in rows}
