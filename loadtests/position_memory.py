"""Valkey memory per stock position (the capacity model's memory input, docs/scaling.md): sets
counts for N positions over L locations through the store (as an import does) on a Valkey of its
own, drops the partition streams (persisted and trimmed in a running system), and prints
``used_memory`` growth per position as one JSON line.

    python -m loadtests.position_memory [--positions 200000] [--locations 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from omnistock.domain.commands import Count
from omnistock.domain.locations import Location
from omnistock.embedded import EmbeddedValkey
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import ensure_streams

PARTITIONS = 64
BATCH = 1_000


async def _measure(url: str, positions: int, locations: int) -> dict[str, float]:
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(url)
    hot = Multiplexer(url)
    try:
        scripts = Scripts.load()
        await scripts.library.load(client)
        await ensure_streams(client, PARTITIONS)
        store = StockStore(
            client, hot, scripts, partitions=PARTITIONS, idempotency_ttl_seconds=60,
            retention_seconds=60,
        )  # fmt: skip
        locs = [Location(id=f"mem-{n}", name=f"m{n}", kind="store") for n in range(locations)]
        await store.put_location_meta(locs)
        before = int((await client.info("memory"))["used_memory"])
        cells = [
            Count(locs[n % locations].id, f"SKU-{n // locations:07d}", 1 + n % 7)
            for n in range(positions)
        ]
        for start in range(0, positions, BATCH):
            await store.set_counts(cells[start : start + BATCH], "mem", None, positions=False)
        await client.delete(*(keys.stream(p) for p in range(PARTITIONS)))
        after = int((await client.info("memory"))["used_memory"])
        return {
            "positions": positions,
            "locations": locations,
            "bytes_per_position": (after - before) / positions,
            "used_memory_mb": after / 2**20,
        }
    finally:
        await hot.aclose()
        await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--positions", type=int, default=200_000)
    p.add_argument("--locations", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="omnistock-position-memory-") as base:
        valkey = EmbeddedValkey(Path(base) / "valkey")
        valkey.start()
        try:
            found = asyncio.run(_measure(valkey.url, args.positions, args.locations))
        finally:
            valkey.stop()
    print(json.dumps(found))


if __name__ == "__main__":
    main()
