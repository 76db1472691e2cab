"""Servers of their own for tests that crash, stop or wipe them, or need no other consumer on
the streams (the shared app's persister would otherwise take entries)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aredis

from omnistock.postgres.migrate import migrate
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.sync.rebuild import ensure_ready
from tests.conftest import Servers, private_dir, running_servers

PARTITIONS = 16


class Stack:
    """Own servers with clients, migrated and initialised."""

    def __init__(self, servers: Servers, redis: aredis.Redis, db: asyncpg.Pool) -> None:
        self.servers = servers
        self.redis = redis
        self.db = db
        self.scripts = Scripts.load()
        self.partitions = PARTITIONS
        self.hot = Multiplexer(servers.redis_url)
        self.store = StockStore(
            redis,
            self.hot,
            self.scripts,
            partitions=PARTITIONS,
            idempotency_ttl_seconds=3600,
            retention_seconds=3600,
        )


async def open_stack(servers: Servers) -> tuple[Stack, aredis.Redis, asyncpg.Pool]:
    redis = aredis.Redis(
        connection_pool=aredis.BlockingConnectionPool.from_url(
            servers.redis_url, max_connections=64, timeout=20
        )
    )
    db = await asyncpg.create_pool(servers.database_url, min_size=1, max_size=10)
    assert db is not None
    async with db.acquire() as conn:
        await migrate(conn)
    stack = Stack(servers, redis, db)
    await ensure_ready(redis, db, stack.scripts, PARTITIONS)
    return stack, redis, db


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    with private_dir("omnistock-own-") as base, running_servers(base) as servers:
        own, redis, db = await open_stack(servers)
        yield own
        await own.hot.aclose()
        await db.close()
        await redis.aclose()
