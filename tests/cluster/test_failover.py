"""Failover: 3 primaries with a replica each; a primary killed mid-traffic stops only its own
shard's writes, and they resume by themselves once its replica is promoted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

from omnistock.domain.commands import Adjustment
from omnistock.domain.errors import Shortage
from omnistock.domain.ids import new_reservation_id, partition_of
from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.client import cluster_client
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.replicated import ClusterWaitMultiplexer
from omnistock.redis.store import StockStore
from tests.cluster.servers import LocalCluster
from tests.conftest import private_dir
from tests.stores import store_on

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
    hot = ClusterMultiplexer(replicated.url, retry_seconds=0.5)
    async with store_on(cluster_client(replicated.url, 16), hot, PARTITIONS) as store:
        yield store


async def test_with_wait_replicas_every_acknowledged_reservation_is_on_its_shards_replica(
    replicated: LocalCluster, store: StockStore, uid: str
) -> None:
    """OMNISTOCK_REDIS_WAIT_REPLICAS=1 on a cluster (runs before the kill below, while every
    shard has its replica): scripts go through a write connection per primary, and each
    reservation, on whichever shard, is on that shard's replica when reserve returns."""
    hot = store.hot
    assert isinstance(hot, ClusterMultiplexer)
    writes = ClusterWaitMultiplexer(replicated.url, retry_seconds=0.5, replicas=1, timeout_ms=2000)
    hot.writes = writes
    await hot.refresh()
    # Each shard's replica, read-only on its primary's slots.
    replica_of: dict[str, aredis.Redis] = {}
    for node in replicated.nodes:
        client = aredis.Redis(
            host="127.0.0.1", port=node.port, password=replicated.password,
            single_connection_client=True,
        )  # fmt: skip
        role = await client.execute_command("ROLE")
        if role[0] == b"slave":
            await client.execute_command("READONLY")
            replica_of[f"127.0.0.1:{int(role[2])}"] = client
        else:
            await client.aclose()
    assert len(replica_of) == 3
    locs: dict[str, str] = {}  # location -> its primary
    n = 0
    while len(set(locs.values())) < 3 or len(locs) < 6:
        loc = f"{uid}-w{n}"
        n += 1
        owner = hot.owner(keys.stream(partition_of(loc, PARTITIONS)))
        assert owner is not None
        if list(locs.values()).count(owner) < 2:
            locs[loc] = owner
    await store.put_location_meta([Location(id=loc, name=loc, kind="store") for loc in locs])
    await store.adjust([Adjustment(loc, "s", 30, "receipt") for loc in locs], "test", None)
    acked: dict[str, int] = dict.fromkeys(locs, 0)
    missing: list[str] = []

    async def client(loc: str) -> None:
        p = partition_of(loc, PARTITIONS)
        while True:
            rid = new_reservation_id(p)
            try:
                await store.reserve(
                    reservation_id=rid, location=loc, lines=[("s", 1)], ttl_seconds=600,
                    channel="web", ref="", allow_partial=False, actor="t", idem=None,
                )  # fmt: skip
            except Shortage:
                return
            if not await replica_of[locs[loc]].exists(keys.reservation(p, rid)):
                missing.append(rid)
            acked[loc] += 1

    try:
        await asyncio.gather(*(client(loc) for loc in locs for _ in range(4)))
    finally:
        hot.writes = None
        await writes.aclose()
        for replica in replica_of.values():
            await replica.aclose()
    assert missing == []
    assert acked == dict.fromkeys(locs, 30)
    assert writes.stats.writes >= 6 * 30 and writes.stats.unconfirmed == 0


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
