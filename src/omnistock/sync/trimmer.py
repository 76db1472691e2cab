"""Stream trimming: persisted entries leave the Redis streams past the retention window."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import RedisError

from omnistock.redis import streams
from omnistock.redis.scripts import Scripts
from omnistock.settings import Settings
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.durability")


async def run_trimmer(redis: Any, scripts: Scripts, settings: Settings, every: float = 5.0) -> None:
    """Trim persisted entries past the retention window (expired idempotency records leave
    Postgres through the pruning loop, postgres/prune.py)."""
    while True:
        try:
            retention_ms = settings.stream_retention_seconds * 1000
            await streams.trim(redis, scripts, settings.partitions, retention_ms)
        except (RedisError, OSError) as exc:
            reraise_if_cancelled()
            log.warning("trimmer: %s", exc)
        await asyncio.sleep(every)
