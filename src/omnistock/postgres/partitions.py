"""The one owner of partitions.sql: the ledger's month partitions.

The ledger is range-partitioned by UTC month on ``ts`` (migration 0008). The pruning loop calls
:func:`maintain` every round: it creates the partitions of the current month and the next
``ahead`` ones (so the persister's rows always have a month to go to), creates the month of any
row that landed in ``ledger_default`` (moving those rows into it), and drops whole months once
every instant of them is older than the retention. Rows of the month that straddles the cutoff
are deleted row by row (:func:`prune_rows`), so history reaches back exactly the retention.

A partition change that cannot get its lock within ``lock_timeout_ms`` gives up and is tried
again next round: a drop needs ACCESS EXCLUSIVE on the ledger for a moment, and a request that
waits for it would hold every reader and writer behind it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import asyncpg
import msgspec

from omnistock.postgres.sql import load_queries

log = logging.getLogger("omnistock.partitions")
_Q = load_queries("partitions.sql")
UTC = dt.UTC


class Maintenance(msgspec.Struct, frozen=True, kw_only=True):
    """What one :func:`maintain` round did: months (their first instant) created and dropped,
    and how many changes gave up on their lock (tried again next round)."""

    created: list[dt.datetime] = msgspec.field(default_factory=list)
    dropped: list[dt.datetime] = msgspec.field(default_factory=list)
    lock_timeouts: int = 0


def month_start(at: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of the month holding ``at``."""
    at = at.astimezone(UTC)
    return dt.datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: dt.datetime, n: int) -> dt.datetime:
    """The first instant of the month ``n`` months after (before, if negative) ``month``'s."""
    index = month.year * 12 + month.month - 1 + n
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


async def months(db: Any) -> list[dt.datetime]:
    """The first instant of every month that has a partition, oldest first."""
    return [r["lo"] for r in await db.fetch(_Q["months"])]


async def default_months(db: Any) -> list[dt.datetime]:
    """Months with rows in the default partition (normally none)."""
    return [r["lo"] for r in await db.fetch(_Q["default_months"])]


async def _change(db: asyncpg.Pool, query: str, month: dt.datetime, lock_timeout_ms: int) -> bool:
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(_Q["lock_timeout"], lock_timeout_ms)
        return bool(await conn.fetchval(query, month))


async def ensure_month(db: asyncpg.Pool, month: dt.datetime, lock_timeout_ms: int = 2000) -> bool:
    """Create the partition of the month holding ``month`` (moving its rows out of the default
    partition); False when it existed. Raises LockNotAvailableError past the lock timeout."""
    return await _change(db, _Q["ensure_month"], month, lock_timeout_ms)


async def drop_month(db: asyncpg.Pool, month: dt.datetime, lock_timeout_ms: int = 2000) -> bool:
    """Drop the partition of the month holding ``month`` with all its rows; False when there was
    none. Raises LockNotAvailableError past the lock timeout."""
    return await _change(db, _Q["drop_month"], month, lock_timeout_ms)


async def prune_rows(db: Any, older_than_seconds: int, batch: int) -> int:
    """Delete at most ``batch`` ledger rows older than ``older_than_seconds``, oldest first; the
    number deleted."""
    return int(await db.fetchval(_Q["prune_rows"], older_than_seconds, batch))


async def retained_since(db: Any) -> int | None:
    """Epoch ms before which ledger rows may have been deleted by retention (None: the ledger
    was never pruned, it is complete)."""
    ms: int | None = await db.fetchval(_Q["retained_since"])
    return ms


async def maintain(
    db: asyncpg.Pool,
    *,
    retention_seconds: int,
    ahead: int = 2,
    lock_timeout_ms: int = 2000,
    now: dt.datetime | None = None,
) -> Maintenance:
    """One round: create this month's partition and the next ``ahead`` ones, and those of rows in
    the default partition; drop the months wholly older than ``retention_seconds`` (0: keep every
    month). A change whose lock times out is counted and left to the next round."""
    now = now or dt.datetime.now(UTC)
    current = month_start(now)
    cutoff = now - dt.timedelta(seconds=retention_seconds) if retention_seconds else None
    # A month is past retention once its end is: those months' stragglers are row-pruned instead.
    wanted = {add_months(current, n) for n in range(ahead + 1)}
    wanted |= {m for m in await default_months(db) if cutoff is None or add_months(m, 1) > cutoff}
    have = set(await months(db))
    created: list[dt.datetime] = []
    dropped: list[dt.datetime] = []
    timeouts = 0
    for month in sorted(wanted - have):
        try:
            if await ensure_month(db, month, lock_timeout_ms):
                created.append(month)
        except asyncpg.LockNotAvailableError:
            timeouts += 1
    if cutoff is not None:
        for month in sorted(have):
            if add_months(month, 1) > cutoff or month >= current:
                break
            try:
                if await drop_month(db, month, lock_timeout_ms):
                    dropped.append(month)
            except asyncpg.LockNotAvailableError:
                timeouts += 1
    if timeouts:
        log.warning("ledger partitions: %d change(s) timed out on their lock; next round", timeouts)
    return Maintenance(created=created, dropped=dropped, lock_timeouts=timeouts)
