"""omnistock's reserve, done the classic way: one Postgres transaction per reservation that locks
the lines' position rows (SELECT ... FOR UPDATE), checks them, and writes the holds and the
reservation. Same rules as omnistock's reserve.lua: all lines at one location or none (unless
allow_partial, then as much of each as is available, at least one unit overall), available =
max(0, on_hand - reserved - safety_stock), a 409 listing each short sku."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg
import msgspec

from omnistock.domain import stock
from omnistock.domain.clock import now_ms, rfc3339
from omnistock.domain.errors import NotFound
from omnistock.domain.reservations import StoredReservation, shortage

SCHEMA_LOCK = 0x726F776C  # an advisory lock: concurrent setups do not race on CREATE
EXPIRE_BATCH = 500


def load_queries(path: Path) -> dict[str, str]:
    """Named blocks (``-- name: x``) of a .sql file, as in omnistock.postgres.sql."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("-- name:"):
            current = blocks.setdefault(line.split(":", 1)[1].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}


Q = load_queries(Path(__file__).with_name("queries.sql"))


class Audit(msgspec.Struct, kw_only=True):
    """One position read back, with what active reservations hold of it."""

    position: stock.Position
    held_by_active: int
    active_reservations: int

    @property
    def consistent(self) -> bool:
        """No oversell: the holds add up, and never exceed on_hand less safety stock."""
        p = self.position
        return p.reserved == self.held_by_active and p.reserved <= p.on_hand - p.safety_stock


async def setup(pool: asyncpg.Pool) -> None:
    """Create the ``rowlock`` schema and tables if missing."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(Q["schema"])


async def seed(
    pool: asyncpg.Pool,
    location: str,
    skus: Sequence[str],
    on_hand: int,
    *,
    safety_stock: int = 0,
    position_safety_stock: int | None = None,
    limited_threshold: int = 2,
) -> None:
    """Make ``location`` hold ``on_hand`` of each sku with nothing reserved, removing every
    reservation there (a fresh round of a flash sale)."""
    now = now_ms()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q["upsert_location"], location, safety_stock, limited_threshold)
        await conn.execute(Q["clear_location"], location, now)
        await conn.executemany(
            Q["seed_position"],
            [(location, sku, on_hand, position_safety_stock, now) for sku in skus],
        )


async def reserve(
    pool: asyncpg.Pool,
    *,
    reservation_id: str,
    location: str,
    lines: Sequence[tuple[str, int]],
    ttl_seconds: int,
    channel: str | None,
    ref: str | None,
    allow_partial: bool,
    actor: str,
) -> StoredReservation:
    """Hold ``lines`` (distinct skus) at ``location``; raises Shortage (409) or NotFound (404)."""
    skus = [sku for sku, _ in lines]
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(Q["lock_positions"], location, skus)
        if len(rows) < len(skus) and not await conn.fetchval(Q["location_exists"], location):
            raise NotFound(f"location {location!r} not found")
        free = {
            r["sku"]: stock.available(r["on_hand"], r["reserved"], r["safety_stock"]) for r in rows
        }
        holds = [min(qty, free.get(sku, 0)) for sku, qty in lines]
        short = [(sku, qty, free.get(sku, 0)) for sku, qty in lines if free.get(sku, 0) < qty]
        if short and (not allow_partial or sum(holds) == 0):
            raise shortage(short)  # leaving the block rolls back (nothing was written)
        now = now_ms()
        expires = now + ttl_seconds * 1000
        await conn.execute(
            Q["hold"],
            reservation_id,
            location,
            skus,
            [qty for _, qty in lines],
            holds,
            actor,
            channel,
            ref,
            now,
            expires,
        )
    return StoredReservation(
        id=reservation_id,
        location=location,
        status="active",
        actor=actor,
        created_at=now,
        expires_at=expires,
        lines=[(sku, qty, held, 0) for (sku, qty), held in zip(lines, holds, strict=True)],
        channel=channel,
        ref=ref,
    )


async def expire_due(pool: asyncpg.Pool) -> int:
    """Expire active reservations past ``expires_at`` (giving back what they hold); returns how
    many. Each in its own transaction, locking the reservation, then its positions in sku order."""
    now = now_ms()
    async with pool.acquire() as conn:
        due = [r["id"] for r in await conn.fetch(Q["due_reservations"], now, EXPIRE_BATCH)]
        expired = 0
        for rid in due:
            async with conn.transaction():
                location = await conn.fetchval(Q["lock_active_reservation"], rid)
                if location is None:
                    continue  # finished meanwhile
                await conn.fetch(Q["lock_reservation_positions"], rid, location)
                await conn.execute(Q["expire"], rid, location, now)
                expired += 1
    return expired


async def position(pool: asyncpg.Pool, location: str, sku: str) -> stock.Position:
    """The position as omnistock shows it; NotFound for a position never seeded."""
    row = await pool.fetchrow(Q["position"], location, sku)
    if row is None:
        raise NotFound(f"no position {sku!r} at {location!r}")
    return stock.position(
        location=location,
        sku=sku,
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        safety_stock=row["safety_stock"],
        limited_threshold=row["limited_threshold"],
        version=row["version"],
        updated_at=rfc3339(row["updated_at"]),
    )


async def audit(pool: asyncpg.Pool, location: str, sku: str) -> Audit:
    """Read a position back with what active reservations hold of it (verifies zero oversell)."""
    found = await position(pool, location, sku)
    row = await pool.fetchrow(Q["held_by_active"], location, sku)
    assert row is not None
    return Audit(
        position=found, held_by_active=row["held"], active_reservations=row["reservations"]
    )
