"""The integration tests' ``stack`` on a 3-primary cluster and a Postgres of their own (one per
module, as on standalone: these tests wipe and rebuild Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from omnistock.embedded import EmbeddedPostgres
from omnistock.postgres.migrate import migrate
from omnistock.redis.client import ClusterClient, cluster_client
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.sync.rebuild import ensure_ready
from tests.cluster.e2e.conftest import ClusterServers
from tests.cluster.servers import LocalCluster
from tests.conftest import TEST_PG_SETTINGS, private_dir
from tests.integration.conftest import PARTITIONS, Stack


class ClusterStack(Stack):
    """``Stack`` with the cluster's clients: the cluster client and the per-primary hot path."""

    def __init__(
        self,
        cluster: LocalCluster,
        postgres: EmbeddedPostgres,
        redis: ClusterClient,
        db: asyncpg.Pool,
    ) -> None:
        self.cluster = cluster
        self.servers = ClusterServers(cluster, postgres)  # type: ignore[assignment]
        self.redis = redis  # type: ignore[assignment]
        self.db = db
        self.scripts = Scripts.load()
        self.partitions = PARTITIONS
        self.hot = ClusterMultiplexer(cluster.url)
        self.store = StockStore(
            redis,
            self.hot,
            self.scripts,
            partitions=PARTITIONS,
            idempotency_ttl_seconds=3600,
            retention_seconds=3600,
        )


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[ClusterStack]:
    with private_dir("omnistock-cluster-own-") as base:
        cluster = LocalCluster(base / "cluster", primaries=3)
        postgres = EmbeddedPostgres(base / "postgres", settings=TEST_PG_SETTINGS)
        cluster.start()
        try:
            postgres.start()
            try:
                redis = cluster_client(cluster.url, 64)
                db = await asyncpg.create_pool(postgres.url, min_size=1, max_size=10)
                assert db is not None
                async with db.acquire() as conn:
                    await migrate(conn)
                own = ClusterStack(cluster, postgres, redis, db)
                await ensure_ready(redis, db, own.scripts, PARTITIONS)
                yield own
                await own.hot.aclose()
                await db.close()
                await redis.aclose()
            finally:
                postgres.stop()
        finally:
            cluster.stop()
