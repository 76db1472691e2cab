"""Ledger at scale: generate N million ledger rows (COPY) over 13 months of month partitions on a
Postgres of its own, then time what must stay fast however large the ledger grows: history pages
(newest first, and deep pages through ``before``), the reconcile walk, row pruning, and creating and
dropping a month. Each query is timed (median of many) and one run of it is shown with
EXPLAIN (ANALYZE, BUFFERS). The figures and the extrapolation to 100M rows: docs/scaling.md.

It also times the upgrade (migration 0008 copying an unpartitioned ledger into its months).

Run: ``python -m loadtests.ledger_scale --rows 3000000`` (a few minutes on 2 cores); ``--json``
for the figures only, ``--keep DIR`` to leave the database in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

from omnistock.embedded import EmbeddedPostgres
from omnistock.postgres import ledger, partitions
from omnistock.postgres.migrate import migrate, migration_files
from omnistock.postgres.partitions import add_months, month_start

UTC = dt.UTC
_COPY_CHUNK = 100_000
# Speed of generation only: the timed queries read, and reads do not depend on these.
_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_COLUMNS = (
    "event_id", "partition", "ts", "location", "sku", "kind", "reason", "ref", "actor",
    "idempotency_key", "delta_on_hand", "delta_reserved", "on_hand", "reserved", "safety_stock",
    "version", "reservation_id", "delta_unsellable", "unsellable", "delta_incoming", "incoming",
)  # fmt: skip


class Shape:
    """What to generate: ``rows`` over ``locations`` x ``skus`` positions, one in ``hot_every``
    rows on one hot position (a fast seller at a warehouse: the deepest history)."""

    def __init__(self, rows: int, locations: int, skus: int, hot_every: int, months: int) -> None:
        self.rows = rows
        self.locations = locations
        self.skus = skus
        self.hot_every = hot_every
        self.now = dt.datetime.now(UTC)
        self.first = add_months(month_start(self.now), -(months - 1))
        self.span = (self.now - self.first).total_seconds()
        self.versions = [0] * (locations * skus + 1)  # the last slot: the hot position

    def position(self, i: int) -> tuple[int, str, str]:
        if i % self.hot_every == 0:
            return len(self.versions) - 1, "HOT", "HOT-SKU"
        n = (i * 7919) % (self.locations * self.skus)  # spread writes over every position
        return n, f"L{n % self.locations:04d}", f"SKU-{n // self.locations:07d}"

    def records(self, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
        for i in range(start, stop):
            slot, loc, sku = self.position(i)
            self.versions[slot] += 1
            v = self.versions[slot]
            ts = self.first + dt.timedelta(seconds=self.span * i / self.rows)
            ms = int(ts.timestamp() * 1000)
            kind = ("adjust", "reserve", "commit", "release")[i % 4]
            yield (f"{slot % 64}:{ms}-{i}", slot % 64, ts, loc, sku, kind, kind, None, "bench",
                   None, 1, 0, v, 0, 0, v, None, 0, 0, 0, 0)  # fmt: skip


async def _median_ms(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


async def _explain(db: asyncpg.Pool, sql: str, *args: Any) -> str:
    rows = await db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    return "\n".join(r[0] for r in rows)


async def generate(db: asyncpg.Pool, shape: Shape, months: int) -> float:
    """Create the months and COPY the rows in; the seconds it took."""
    for n in range(months + 2):
        await partitions.ensure_month(db, add_months(shape.first, n))
    started = time.perf_counter()
    async with db.acquire() as conn:
        for start in range(0, shape.rows, _COPY_CHUNK):
            stop = min(shape.rows, start + _COPY_CHUNK)
            await conn.copy_records_to_table(
                "ledger", records=shape.records(start, stop), columns=_COLUMNS
            )
        # The positions reconcile walks: the last version of each.
        await conn.execute(
            "INSERT INTO positions (location, sku, on_hand, reserved, safety_stock, version,"
            " updated_at) SELECT DISTINCT ON (location, sku) location, sku, on_hand, reserved,"
            " NULL, version, ts FROM ledger ORDER BY location, sku, version DESC"
        )
        await conn.execute("VACUUM ANALYZE ledger")
        await conn.execute("VACUUM ANALYZE positions")
    return time.perf_counter() - started


async def measure(db: asyncpg.Pool, shape: Shape, samples: int) -> dict[str, Any]:
    rng = random.Random(1)
    cells = [
        (f"L{rng.randrange(shape.locations):04d}", f"SKU-{rng.randrange(shape.skus):07d}")
        for _ in range(samples)
    ]
    it = iter(cells * 4)
    out: dict[str, Any] = {}
    hot_rows = shape.versions[-1]

    async def first_page() -> None:
        loc, sku = next(it)
        await ledger.history(db, loc, sku, None, 101)

    out["history_first_page_ms"] = await _median_ms(first_page, samples)
    out["history_hot_first_page_ms"] = await _median_ms(
        lambda: ledger.history(db, "HOT", "HOT-SKU", None, 101), samples
    )
    # A deep page of the hot position: `before` names an event half way down its history.
    middle = await db.fetchval(
        "SELECT event_id FROM ledger WHERE location = 'HOT' AND sku = 'HOT-SKU' AND version = $1",
        hot_rows // 2,
    )

    async def deep_page() -> None:
        below = await ledger.event_version(db, middle, "HOT", "HOT-SKU")
        await ledger.history(db, "HOT", "HOT-SKU", below, 101)

    out["history_hot_deep_page_ms"] = await _median_ms(deep_page, samples)
    out["history_hot_before_lookup_ms"] = await _median_ms(
        lambda: ledger.event_version(db, middle, "HOT", "HOT-SKU"), samples
    )

    async def walk() -> int:
        after, n = ("", ""), 0
        while rows := await ledger.positions_chunk(db, after[0], after[1], 5000):
            n += len(rows)
            after = (rows[-1]["location"], rows[-1]["sku"])
        return n

    started = time.perf_counter()
    walked = await walk()
    out["reconcile_walk_positions"] = walked
    out["reconcile_walk_s"] = round(time.perf_counter() - started, 3)
    out["reconcile_chunk_ms"] = await _median_ms(
        lambda: ledger.positions_chunk(db, "L0001", "SKU-0000100", 5000), 10
    )
    out["explain"] = {
        "history_first_page": await _explain(
            db,
            "SELECT * FROM ledger WHERE location = $1 AND sku = $2 ORDER BY version DESC LIMIT 101",
            *cells[0],
        ),
        "history_hot_deep_page": await _explain(
            db,
            "SELECT * FROM ledger WHERE location = 'HOT' AND sku = 'HOT-SKU' AND version < $1"
            " ORDER BY version DESC LIMIT 101",
            hot_rows // 2,
        ),
        "before_lookup": await _explain(
            db,
            "SELECT version FROM ledger WHERE event_id = $1 AND location = 'HOT'"
            " AND sku = 'HOT-SKU' AND ts BETWEEN to_timestamp(($2::bigint - 50) / 1000.0)"
            " AND to_timestamp(($2::bigint + 50) / 1000.0)",
            middle,
            int(middle.split(":")[1].split("-")[0]),
        ),
        "reconcile_chunk": await _explain(
            db,
            "SELECT * FROM positions WHERE (location, sku) > ($1, $2)"
            " ORDER BY location, sku LIMIT 5000",
            "L0001",
            "SKU-0000100",
        ),
    }
    return out


async def retention(db: asyncpg.Pool, shape: Shape) -> dict[str, Any]:
    """Row pruning inside the oldest month, then dropping it whole; a new month ahead."""
    oldest = shape.first
    in_month = await db.fetchval(
        "SELECT count(*) FROM ledger WHERE ts >= $1 AND ts < $2", oldest, add_months(oldest, 1)
    )
    cutoff = oldest + dt.timedelta(days=3)
    older = int((shape.now - cutoff).total_seconds())
    started = time.perf_counter()
    pruned = await partitions.prune_rows(db, older, 1000)
    prune_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    assert await partitions.drop_month(db, oldest)
    drop_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    assert await partitions.ensure_month(db, add_months(month_start(shape.now), 6))
    ensure_ms = (time.perf_counter() - started) * 1000
    return {
        "prune_batch_rows": pruned,
        "prune_batch_ms": round(prune_ms, 1),
        "drop_month_rows": in_month - pruned,
        "drop_month_ms": round(drop_ms, 1),
        "create_month_ms": round(ensure_ms, 1),
        "rows_after_retention": await db.fetchval("SELECT count(*) FROM ledger"),
    }


async def sizes(db: asyncpg.Pool) -> dict[str, Any]:
    parts = await db.fetch(
        "SELECT pg_table_size(inhrelid) AS heap, pg_indexes_size(inhrelid) AS index"
        " FROM pg_inherits WHERE inhparent = 'ledger'::regclass"
    )
    heap = sum(p["heap"] for p in parts)
    index = sum(p["index"] for p in parts)
    rows = await db.fetchval("SELECT count(*) FROM ledger")
    depth = await db.fetchval(
        "SELECT max(level) + 1 FROM (SELECT (bt_metap(indexrelid::regclass::text)).level"
        " FROM pg_index WHERE indrelid IN (SELECT inhrelid FROM pg_inherits"
        " WHERE inhparent = 'ledger'::regclass) AND indisprimary) AS m"
    )
    return {
        "rows": rows,
        "partitions": len(parts),
        "heap_bytes_per_row": round(heap / rows, 1),
        "index_bytes_per_row": round(index / rows, 1),
        "pk_btree_levels": depth,
    }


async def upgrade(url: str, rows: int, months: int) -> dict[str, Any]:
    """Migration 0008 on an unpartitioned ledger of ``rows`` rows (a database of its own)."""
    admin = await asyncpg.connect(url)
    await admin.execute("CREATE DATABASE upgrade")
    await admin.close()
    conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/upgrade")
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        todo = []
        for name, sql in migration_files():
            if name >= "0008":
                todo.append((name, sql))
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        shape = Shape(rows, 200, 250, 20, months)
        for start in range(0, rows, _COPY_CHUNK):
            stop = min(rows, start + _COPY_CHUNK)
            await conn.copy_records_to_table(
                "ledger", records=shape.records(start, stop), columns=_COLUMNS
            )
        started = time.perf_counter()
        applied = await migrate(conn)
        took = time.perf_counter() - started
        assert applied == [name for name, _ in todo], applied
        assert await conn.fetchval("SELECT count(*) FROM ledger") == rows
        return {"upgrade_rows": rows, "upgrade_s": round(took, 1)}
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(args.keep or tempfile.mkdtemp(prefix="omnistock-ledger-"))
    postgres = EmbeddedPostgres(base / "postgres", settings=_PG_SETTINGS)
    postgres.start()
    try:
        db = await asyncpg.create_pool(postgres.url, min_size=1, max_size=4)
        assert db is not None
        async with db.acquire() as conn:
            await migrate(conn)
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        shape = Shape(args.rows, args.locations, args.skus, args.hot_every, args.months)
        load_s = await generate(db, shape, args.months)
        out: dict[str, Any] = {
            "rows": args.rows,
            "positions": sum(1 for v in shape.versions if v),
            "hot_position_rows": shape.versions[-1],
            "generate_s": round(load_s, 1),
            "copy_rows_per_s": round(args.rows / load_s),
        }
        out.update(await sizes(db))
        out.update(await measure(db, shape, args.samples))
        out.update(await retention(db, shape))
        await db.close()
        if args.upgrade_rows:
            out.update(await upgrade(postgres.url, args.upgrade_rows, args.months))
        return out
    finally:
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3_000_000, help="ledger rows (1k-50M)")
    parser.add_argument("--locations", type=int, default=200)
    parser.add_argument("--skus", type=int, default=250, help="skus per location")
    parser.add_argument(
        "--hot-every", type=int, default=20, help="one row in this many is the hot position's"
    )
    parser.add_argument("--months", type=int, default=13, help="months of history")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument(
        "--upgrade-rows",
        type=int,
        default=1_000_000,
        help="also time migration 0008 on an unpartitioned ledger of this many rows (0: no)",
    )
    parser.add_argument("--keep", help="folder for the database (kept); default: a temp folder")
    parser.add_argument("--json", action="store_true", help="the figures only, no plans")
    args = parser.parse_args()
    if not 1000 <= args.rows <= 50_000_000:
        parser.error("--rows: 1,000 to 50,000,000 (a bounded run; 100M is extrapolated)")
    out = asyncio.run(run(args))
    plans = out.pop("explain")
    print(json.dumps(out, indent=2))
    if not args.json:
        for name, plan in plans.items():
            print(f"\n== {name}\n{plan}")


if __name__ == "__main__":
    main()
