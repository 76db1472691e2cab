"""A StockStore on servers a test module started itself (a replica pair, a cluster of its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import ensure_streams


@asynccontextmanager
async def store_on(redis: Any, hot: Any, partitions: int) -> AsyncIterator[StockStore]:
    """The scripts loaded and the streams created through ``redis``, a store over it and ``hot``
    (both closed after the block), as a fresh install has them."""
    scripts = Scripts.load()
    await scripts.library.load(redis)
    await ensure_streams(redis, partitions)
    try:
        yield StockStore(
            redis, hot, scripts, partitions=partitions, idempotency_ttl_seconds=60,
            retention_seconds=60,
        )  # fmt: skip
    finally:
        await hot.aclose()
        await redis.aclose()
