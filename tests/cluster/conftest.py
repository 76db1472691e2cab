"""The cluster tier: the same behaviours on a local 3-primary Valkey Cluster (tests/cluster/
servers.py). One cluster serves the script tests (``redis`` and ``hot`` here are its clients);
the app tests start their own (tests/cluster/e2e/conftest.py), as apps get their own database on
standalone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from omnistock.redis.client import ClusterClient, cluster_client
from omnistock.redis.cluster import ClusterMultiplexer
from tests.cluster.servers import LocalCluster
from tests.conftest import private_dir
from tests.lua.conftest import scripts

__all__ = ["scripts"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """3 primaries, no replicas: what the script tests run on."""
    with private_dir("omnistock-cluster-") as base:
        found = LocalCluster(base, primaries=3)
        try:
            found.start()
            yield found
        finally:
            found.stop()


@pytest.fixture(scope="session")
async def redis(cluster: LocalCluster) -> AsyncIterator[ClusterClient]:
    """The cluster client (what ``client`` is on the pool side of a serving process)."""
    client = cluster_client(cluster.url, 64)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def hot(cluster: LocalCluster) -> AsyncIterator[ClusterMultiplexer]:
    """The per-primary pipelined connections of the hot path."""
    client = ClusterMultiplexer(cluster.url)
    yield client
    await client.aclose()
