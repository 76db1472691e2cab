"""The watchdog: rebuilds Redis from Postgres when Redis comes back empty."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from omnistock.redis import keys
from omnistock.redis.scripts import Scripts
from omnistock.sync.rebuild import ensure_ready
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.durability")


async def run_watchdog(
    redis: Any, db: asyncpg.Pool, scripts: Scripts, partitions: int, every: float = 1.0
) -> None:
    """Rebuild Redis from Postgres if it comes back empty (restarted without its data)."""
    while True:
        await asyncio.sleep(every)
        try:
            if not await redis.hget(keys.META, "ready"):
                log.warning("Redis lost its state; rebuilding it from Postgres")
                await ensure_ready(redis, db, scripts, partitions)
        except (RedisError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            reraise_if_cancelled()
            log.warning("watchdog: %s", exc)
