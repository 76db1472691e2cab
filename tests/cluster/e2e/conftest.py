"""Apps served over a 3-primary cluster of their own and a Postgres of their own; the e2e
fixtures (tests/e2e/conftest.py, tests/e2e/stream/conftest.py) are re-registered here so that
they take these servers (``servers`` here names the cluster's URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from omnistock.embedded import EmbeddedPostgres
from omnistock.postgres.migrate import migrate
from tests.cluster.servers import LocalCluster
from tests.conftest import TEST_PG_SETTINGS, private_dir
from tests.e2e.conftest import AppServer, admin, anon, app_redis, app_settings, client_for, store
from tests.e2e.stream.conftest import other_app

__all__ = ["admin", "anon", "app_redis", "client_for", "other_app", "store"]


class ClusterServers:
    """What ``tests.conftest.Servers`` offers the e2e helpers: the URLs apps are given."""

    def __init__(self, cluster: LocalCluster, postgres: EmbeddedPostgres) -> None:
        self.cluster = cluster
        self.postgres = postgres
        self.redis_url = cluster.url
        self.database_url = postgres.url


@pytest.fixture(scope="session")
def cluster_servers() -> Iterator[ClusterServers]:
    with private_dir("omnistock-cluster-app-") as base:
        cluster = LocalCluster(Path(base) / "cluster", primaries=3)
        postgres = EmbeddedPostgres(Path(base) / "postgres", settings=TEST_PG_SETTINGS)
        try:
            cluster.start()
            postgres.start()
            yield ClusterServers(cluster, postgres)
        finally:
            postgres.stop()
            cluster.stop()


@pytest.fixture(scope="session")
def servers(cluster_servers: ClusterServers) -> ClusterServers:
    return cluster_servers


@pytest.fixture(scope="session")
async def db(cluster_servers: ClusterServers) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(cluster_servers.database_url, min_size=1, max_size=10)
    assert pool is not None
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def app(cluster_servers: ClusterServers, db: asyncpg.Pool) -> AsyncIterator[AppServer]:
    server = AppServer(app_settings(cluster_servers))  # type: ignore[arg-type]
    await server.start()
    yield server
    await server.stop()
