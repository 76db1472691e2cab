"""What keeps acknowledged changes safe around the persister: the back-pressure gate on writes,
stream trimming, and the watchdog that rebuilds Redis from Postgres when Redis comes back empty."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from omnistock.domain.errors import Unavailable
from omnistock.postgres.persister import Persister
from omnistock.postgres.rebuild import ensure_ready
from omnistock.redis import keys, streams
from omnistock.redis.scripts import Scripts
from omnistock.settings import Settings
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.durability")


class WriteGate:
    """Refuses mutations (503) while too much is waiting to reach Postgres, or, when acks wait
    for Postgres, while Postgres does not answer. Reads are never gated."""

    def __init__(self, settings: Settings, persister: Persister) -> None:
        self.limit = settings.backlog_limit
        self.ack_postgres = settings.ack == "postgres"
        self.persister = persister
        self.backlog = 0

    def check(self) -> None:
        """Raise 503 with the reason when writes are paused."""
        if self.backlog > self.limit:
            reason = self.persister.last_error or "the persister is behind"
            raise Unavailable(
                f"writes paused: {self.backlog} changes are waiting to be written to Postgres "
                f"(limit {self.limit}); {reason}. Reads keep working; writes resume by themselves.",
                backlog=self.backlog,
                retry_after_seconds=1,
            )
        if self.ack_postgres and not self.persister.healthy:
            raise Unavailable(
                "writes paused: acknowledgements wait for Postgres, which does not answer "
                f"({self.persister.last_error})",
                retry_after_seconds=1,
            )


async def run_backlog_monitor(
    gate: WriteGate, redis: Any, partitions: int, every: float = 0.25
) -> None:
    """Keep ``gate.backlog`` current."""
    while True:
        try:
            gate.backlog = await streams.backlog(redis, partitions)
        except RedisError as exc:
            reraise_if_cancelled()
            log.warning("backlog monitor: %s", exc)
        await asyncio.sleep(every)


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
