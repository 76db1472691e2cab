"""Shared fixtures: real embedded Valkey and Postgres, started once per test session on free ports.

Tests share the servers and stay apart by using random ids (``uid``) for locations and skus.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aredis

from omnistock.embedded import EmbeddedPostgres, EmbeddedValkey
from omnistock.postgres.migrate import migrate
from omnistock.redis.multiplex import Multiplexer

# Durability settings do not change behaviour, only speed: tests trade them for time.
TEST_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class Servers:
    def __init__(self, valkey: EmbeddedValkey, postgres: EmbeddedPostgres) -> None:
        self.valkey = valkey
        self.postgres = postgres
        self.redis_url = valkey.url
        self.database_url = postgres.url


@contextlib.contextmanager
def running_servers(base: Path) -> Iterator[Servers]:
    """A Valkey and a Postgres of their own under ``base``, stopped on exit."""
    valkey = EmbeddedValkey(base / "valkey")
    postgres = EmbeddedPostgres(base / "postgres", settings=TEST_PG_SETTINGS)
    valkey.start()
    try:
        postgres.start()
        try:
            yield Servers(valkey, postgres)
        finally:
            postgres.stop()
    finally:
        valkey.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The servers every test shares (tests stay apart by ``uid``)."""
    with running_servers(tmp_path_factory.mktemp("servers")) as found:
        yield found


@pytest.fixture(scope="session")
async def redis(servers: Servers) -> AsyncIterator[aredis.Redis]:
    pool = aredis.BlockingConnectionPool.from_url(servers.redis_url, max_connections=64, timeout=20)
    client = aredis.Redis(connection_pool=pool)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def hot(servers: Servers) -> AsyncIterator[Multiplexer]:
    """The session's pipelined connection (what a serving process sends requests' commands on)."""
    client = Multiplexer(servers.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def db(servers: Servers) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(servers.database_url, min_size=1, max_size=10)
    assert pool is not None
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture
def uid() -> str:
    """A fresh id prefix, so tests sharing the servers never see each other's data."""
    return "t" + secrets.token_hex(4)
