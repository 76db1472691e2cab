"""The one owner of supply.sql: supply documents as Postgres keeps them (written by the
persister from the stream's ``y`` events; read for lists, finished supply and rebuilds)."""

from __future__ import annotations

from typing import Any

import asyncpg

from omnistock.postgres.sql import load_queries

_Q = load_queries("supply.sql")


async def upsert(conn: Any, columns: list[list[Any]]) -> None:
    """Write supply documents (columns: id, location, status, eta ms, created ms, doc JSON,
    event ms, event seq) in the caller's transaction; older events never overwrite newer."""
    if columns[0]:
        await conn.execute(_Q["upsert_supply"], *columns)


async def doc(db: Any, supply_id: str) -> str | None:
    """A supply's document (JSON text), or None."""
    found: str | None = await db.fetchval(_Q["supply_doc"], supply_id)
    return found


async def open_supply(db: Any) -> list[asyncpg.Record]:
    """Every open supply (open or partially received): rows of ``id`` and ``doc``."""
    return list(await db.fetch(_Q["open_supply"]))


async def page(
    db: Any,
    location: str | None,
    sku: str | None,
    status: str | None,
    after_id: str | None,
    limit: int,
) -> list[str]:
    """Supply documents newest first, filtered, after the item ``after_id`` of a previous page."""
    rows = await db.fetch(_Q["supply_page"], location, sku, status, after_id, limit)
    return [r["doc"] for r in rows]


async def exists(db: Any, supply_id: str) -> bool:
    return bool(await db.fetchval(_Q["supply_exists"], supply_id))
