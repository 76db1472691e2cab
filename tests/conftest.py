"""Shared fixtures: real embedded Valkey and Postgres, started once per test session on free ports.

Tests share the servers and stay apart by using random ids (``uid``) for locations and skus.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
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
def private_dir(prefix: str) -> Iterator[Path]:
    """A folder outside pytest's temporary root, removed on exit. Any pytest session starting
    (another checkout's too) resets that root to 0700, which shuts out the system user running
    the embedded Postgres (when root) in the middle of its initdb."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
def servers() -> Iterator[Servers]:
    """The servers every test shares (tests stay apart by ``uid``)."""
    with private_dir("omnistock-servers-") as base, running_servers(base) as found:
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
