"""Resharding while serving: slots moved by ``valkey-cli --cluster reshard`` under a stream of
reservations cause no error visible to the callers (MOVED, ASK and TRYAGAIN are handled inside),
and every acknowledged reservation is there afterwards."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from omnistock.domain.commands import Adjustment
from omnistock.domain.ids import new_reservation_id, partition_of
from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.client import cluster_client
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.store import StockStore
from tests.cluster.servers import LocalCluster
from tests.conftest import private_dir
from tests.stores import store_on

PARTITIONS = 64
MOVED_SLOTS = 1000


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[LocalCluster]:
    with private_dir("omnistock-reshard-") as base:
        cluster = LocalCluster(Path(base), primaries=3)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
async def store(own_cluster: LocalCluster) -> AsyncIterator[StockStore]:
    hot = ClusterMultiplexer(own_cluster.url)
    async with store_on(cluster_client(own_cluster.url, 32), hot, PARTITIONS) as store:
        yield store


async def test_reservations_flow_while_slots_move(
    own_cluster: LocalCluster, store: StockStore, uid: str
) -> None:
    hot = store.hot
    assert isinstance(hot, ClusterMultiplexer)
    await hot.refresh()
    source = hot._slots[0]
    assert source is not None
    target = next(a for a in await hot.primaries() if a != source)
    # Locations in partitions whose slots are among the first the reshard moves, and others.
    moving: list[str] = []
    staying: list[str] = []
    n = 0
    while len(moving) < 3 or len(staying) < 3:
        loc = f"{uid}-{n}"
        n += 1
        assert n < 10_000, "no partition among the first slots moved"
        slot = hot.slot(keys.stream(partition_of(loc, PARTITIONS)))
        group = moving if slot < MOVED_SLOTS // 2 else staying if slot >= MOVED_SLOTS else None
        if group is not None and len(group) < 3:
            group.append(loc)
    locations = [Location(id=loc, name=loc, kind="store") for loc in moving + staying]
    await store.put_location_meta(locations)
    await store.adjust(
        [Adjustment(loc.id, "s", 100_000, "receipt") for loc in locations], "t", None
    )
    acked = {loc.id: 0 for loc in locations}
    errors: list[BaseException] = []
    done = asyncio.Event()

    async def reserve() -> None:
        rng = random.Random()
        while not done.is_set():
            loc = rng.choice(locations).id
            try:
                await store.reserve(
                    reservation_id=new_reservation_id(store.partition(loc)), location=loc,
                    lines=[("s", 1)], ttl_seconds=600, channel="web", ref="", allow_partial=False,
                    actor="t", idem=None,
                )  # fmt: skip
            except Exception as exc:  # any error reaching a caller fails the test
                errors.append(exc)
                return
            acked[loc] += 1

    def node_id(address: str) -> str:
        port = address.rpartition(":")[2]
        return own_cluster.cli("-p", port, "cluster", "myid").strip()

    async def reshard() -> None:
        try:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(
                own_cluster.cli,
                "--cluster", "reshard", source,
                "--cluster-from", node_id(source), "--cluster-to", node_id(target),
                "--cluster-slots", str(MOVED_SLOTS), "--cluster-yes",
                timeout=120,
            )  # fmt: skip
            await asyncio.sleep(0.3)
        finally:
            done.set()

    await asyncio.gather(reshard(), *(reserve() for _ in range(16)))
    assert errors == []
    await hot.refresh(force=True)
    for loc in moving:  # the slots did move under the traffic ...
        assert hot.owner(keys.stream(partition_of(loc, PARTITIONS))) == target
    assert sum(acked.values()) > 100
    for loc in locations:  # ... and every acknowledged reservation holds its unit
        (pos,) = await store.get_positions([(loc, "s")])
        assert (pos.on_hand, pos.reserved) == (100_000, acked[loc.id])
