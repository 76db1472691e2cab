"""Failover: 3 primaries with a replica each; a primary killed mid-traffic stops only its own
shard's writes, and they resume by themselves once its replica is promoted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from omnistock.domain.commands import Adjustment
from omnistock.domain.ids import partition_of
from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.client import cluster_client
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import ensure_streams
from tests.cluster.servers import LocalCluster
from tests.conftest import private_dir

PARTITIONS = 16


@pytest.fixture(scope="module")
def replicated() -> Iterator[LocalCluster]:
    """3 primaries + 3 replicas. Without full coverage required, the shards that still have a
    primary keep serving while one has none (the production setting this test recommends)."""
    with private_dir("omnistock-failover-") as base:
        cluster = LocalCluster(
            Path(base), primaries=3, replicas=1, extra=("--cluster-require-full-coverage", "no")
        )
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
async def store(replicated: LocalCluster) -> AsyncIterator[StockStore]:
    redis = cluster_client(replicated.url, 16)
    hot = ClusterMultiplexer(replicated.url, retry_seconds=0.5)
    scripts = Scripts.load()
    await scripts.library.load(redis)
    await ensure_streams(redis, PARTITIONS)
    yield StockStore(
        redis, hot, scripts, partitions=PARTITIONS, idempotency_ttl_seconds=60, retention_seconds=60
    )
    await hot.aclose()
    await redis.aclose()


async def test_a_killed_primary_stops_only_its_shard_until_its_replica_is_promoted(
    replicated: LocalCluster, store: StockStore, uid: str
) -> None:
    hot = store.hot
    assert isinstance(hot, ClusterMultiplexer)
    owners: dict[str, str] = {}  # primary -> a location of a partition it serves
    n = 0
    await hot.refresh()
    while len(owners) < 3:
        loc = f"{uid}-{n}"
        n += 1
        owner = hot.owner(keys.stream(partition_of(loc, PARTITIONS)))
        assert owner is not None
        owners.setdefault(owner, loc)
    victim_address, victim_loc = next(iter(owners.items()))
    await store.put_location_meta(
        [Location(id=loc, name=loc, kind="store") for loc in owners.values()]
    )
    acked = dict.fromkeys(owners.values(), 0)
    failed = dict.fromkeys(owners.values(), 0)
    after_promotion = 0  # the victim's writes acknowledged once its shard came back
    resumed_at: float | None = None
    loop = asyncio.get_running_loop()
    killed_at = loop.time() + 1.0
    stop = killed_at + 30.0

    async def write(loc: str) -> None:
        nonlocal resumed_at, after_promotion
        while loop.time() < stop:
            try:
                await store.adjust([Adjustment(loc, "s", 1, "receipt")], "test", None)
            except Exception:  # the victim's shard while it has no primary
                failed[loc] += 1
                await asyncio.sleep(0.05)
                continue
            acked[loc] += 1
            if loc == victim_loc and loop.time() > killed_at and failed[loc]:
                if resumed_at is None:
                    resumed_at = loop.time()
                after_promotion += 1
                if loop.time() > resumed_at + 1.0:
                    return  # writes flowed again for a second: enough
            if loc != victim_loc and resumed_at is not None and loop.time() > resumed_at + 1.0:
                return
            await asyncio.sleep(0.005)

    async def kill() -> None:
        await asyncio.sleep(killed_at - loop.time())
        replicated.node_at(victim_address).kill()

    await asyncio.gather(kill(), *(write(loc) for loc in owners.values()))
    assert failed[victim_loc] > 0  # the shard did stop ...
    assert resumed_at is not None and resumed_at - killed_at < 20  # ... and came back by itself
    assert [failed[loc] for loc in owners.values() if loc != victim_loc] == [0, 0]
    # The survivors lost nothing; on the victim's shard, what was acknowledged after the
    # promotion is there (async replication may lose the last acknowledged writes before it).
    for loc in owners.values():
        (pos,) = await store.get_positions([(Location(id=loc, name=loc, kind="store"), "s")])
        if loc == victim_loc:
            assert after_promotion <= pos.on_hand <= acked[loc] + failed[loc]
        else:
            assert pos.on_hand == acked[loc]
