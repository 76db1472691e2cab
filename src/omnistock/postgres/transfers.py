"""The one owner of transfers.sql: transfer documents as Postgres keeps them (written by the
persister from the streams' ``t`` events, each side from its own partition; read for lists,
finished transfers and rebuilds)."""

from __future__ import annotations

from typing import Any

from omnistock.postgres.sql import load_queries

_Q = load_queries("transfers.sql")
Docs = tuple[str | None, str | None]  # the record (from side) and the shadow (to side), JSON


async def upsert(conn: Any, from_columns: list[list[Any]], to_columns: list[list[Any]]) -> None:
    """Write each side's newest documents (columns: id, from, to, created ms, doc JSON, event
    ms, event seq) in the caller's transaction; older events never overwrite newer."""
    if from_columns[0]:
        await conn.execute(_Q["upsert_from"], *from_columns)
    if to_columns[0]:
        await conn.execute(_Q["upsert_to"], *to_columns)


async def docs(db: Any, transfer_id: str) -> Docs | None:
    """A transfer's two documents, or None when Postgres has no such transfer."""
    row = await db.fetchrow(_Q["transfer_docs"], transfer_id)
    return None if row is None else (row["from_doc"], row["to_doc"])


async def open_transfers(db: Any) -> list[Docs]:
    """Every open transfer (in transit or partially received): its two documents."""
    return [(r["from_doc"], r["to_doc"]) for r in await db.fetch(_Q["open_transfers"])]


async def page(
    db: Any, location: str | None, status: str | None, after_id: str | None, limit: int
) -> list[Docs]:
    """Transfers newest first, filtered (``location`` is from or to), after ``after_id``."""
    rows = await db.fetch(_Q["transfer_page"], location, status, after_id, limit)
    return [(r["from_doc"], r["to_doc"]) for r in rows]


async def exists(db: Any, transfer_id: str) -> bool:
    return bool(await db.fetchval(_Q["transfer_exists"], transfer_id))
