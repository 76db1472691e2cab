"""Persistence budgets, measured on servers of its own: CSV import into Redis (rows/s), the
persister draining the events into Postgres (events/s), and a rebuild of Redis from Postgres
(seconds for all positions). Run: ``python -m loadtests.persistence_bench --positions 1000000``.

Postgres runs with its durable defaults (fsync and synchronous commit on), as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import redis.asyncio as aredis

from omnistock.domain.locations import Location
from omnistock.embedded import EmbeddedPostgres, EmbeddedValkey
from omnistock.postgres import catalog
from omnistock.postgres.migrate import migrate
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import ensure_ready, rebuild
from omnistock.usecases.imports import import_stream

PARTITIONS = 64


def write_csv(path: Path, positions: int, locations: int) -> None:
    per_location = positions // locations
    with path.open("w") as f:
        f.write("location,sku,on_hand\n")
        for loc in range(locations):
            f.writelines(
                f"L{loc},SKU-{sku:07d},{(loc * 7 + sku) % 50 + 1}\n" for sku in range(per_location)
            )


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


async def _redis_cpu(redis: aredis.Redis) -> float:
    """CPU seconds the Redis server has used (all its threads)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run(positions: int, locations: int, persisters: int) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="omnistock-bench-"))
    valkey, postgres = EmbeddedValkey(base / "valkey"), EmbeddedPostgres(base / "postgres")
    valkey.start()
    postgres.start()
    try:
        redis = aredis.Redis(
            connection_pool=aredis.BlockingConnectionPool.from_url(valkey.url, max_connections=64)
        )
        db = await asyncpg.create_pool(postgres.url, min_size=2, max_size=16)
        assert db is not None
        async with db.acquire() as conn:
            await migrate(conn)
        scripts = Scripts.load()
        await ensure_ready(redis, db, scripts, PARTITIONS)
        store = StockStore(
            redis,
            Multiplexer(valkey.url),
            scripts,
            partitions=PARTITIONS,
            idempotency_ttl_seconds=3600,
            retention_seconds=3600,
        )
        locs = [Location(id=f"L{i}", name=f"L{i}", kind="store") for i in range(locations)]
        for loc in locs:
            await catalog.upsert_location(db, loc)
        await store.put_location_meta(locs)
        csv_path = base / "stock.csv"
        write_csv(csv_path, positions, locations)
        known = {loc.id for loc in locs}

        redis_cpu, python_cpu = await _redis_cpu(redis), time.process_time()
        started = time.perf_counter()
        result = await import_stream(
            chunks(csv_path),
            "csv",
            store,
            "bench",
            allowed=lambda loc: None if loc in known else "unknown",
        )
        import_s = time.perf_counter() - started
        python_cpu = time.process_time() - python_cpu
        redis_cpu = await _redis_cpu(redis) - redis_cpu
        assert result.rows == positions and not result.rejected_total, result

        workers = [Persister(redis, db, PARTITIONS, batch=4000) for _ in range(persisters)]
        started = time.perf_counter()
        await asyncio.gather(*(w.drain() for w in workers))
        persist_s = time.perf_counter() - started
        persisted = sum(w.persisted for w in workers)
        stored = await db.fetchval("SELECT count(*) FROM positions")
        assert stored == positions, (stored, positions)

        await redis.flushall()
        started = time.perf_counter()
        restored = await rebuild(redis, db, scripts, PARTITIONS, fresh=True)
        rebuild_s = time.perf_counter() - started
        assert restored.positions == positions

        await db.close()
        await redis.aclose()
        return {
            "positions": positions,
            "import_rows_per_s": round(positions / import_s),
            # Which side limits the import: cores each used while it ran (1.0 = one whole core).
            "import_redis_cpu": round(redis_cpu / import_s, 2),
            "import_python_cpu": round(python_cpu / import_s, 2),
            "persister_events_per_s": round(persisted / persist_s),
            "persisted_events": persisted,
            "rebuild_seconds": round(rebuild_s, 2),
        }
    finally:
        postgres.stop()
        valkey.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--locations", type=int, default=100)
    parser.add_argument(
        "--persisters", type=int, default=1, help="persister instances draining at once"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.positions, args.locations, args.persisters))))


if __name__ == "__main__":
    main()
