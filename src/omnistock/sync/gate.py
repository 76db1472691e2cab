"""The back-pressure gate on writes: refuses mutations while too much waits to reach Postgres
(the backlog monitor keeps its count current)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from omnistock.domain.errors import Unavailable
from omnistock.redis import streams
from omnistock.settings import Settings
from omnistock.sync.persister import Persister
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


async def run_postgres_probe(persister: Persister, db: asyncpg.Pool, every: float = 0.5) -> None:
    """With acks waiting for Postgres, keep ``persister.healthy`` current in a serving process
    (its persister does not run there: the worker's does), so the gate refuses writes before
    they reach Redis while Postgres does not answer."""
    while True:
        try:
            await asyncio.wait_for(db.fetchval("SELECT 1"), timeout=2.0)
            persister.healthy, persister.last_error = True, ""
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            reraise_if_cancelled()
            persister.healthy = False
            persister.last_error = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(every)
