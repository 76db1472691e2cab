"""The hot path on a cluster: one pipelined connection per primary, routed by slot; MOVED and
ASK followed; the function library loaded again on a node that lost it."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis

from omnistock.redis import keys
from omnistock.redis.client import ClusterClient
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.multiplex import NAME
from omnistock.redis.scripts import Scripts
from tests.cluster.servers import LocalCluster


def node_client(cluster: LocalCluster, address: str) -> aredis.Redis:
    host, _, port = address.rpartition(":")
    return aredis.Redis(host=host, port=int(port), password=cluster.password)


async def hot_connections(cluster: LocalCluster) -> dict[int, int]:
    counts = {}
    for node in cluster.nodes:
        client = aredis.Redis(port=node.port, password=cluster.password)
        listed = await client.client_list()
        counts[node.port] = sum(1 for c in listed if c["name"] == NAME)
        await client.aclose()
    return counts


async def test_one_connection_per_primary_whatever_the_load(cluster: LocalCluster) -> None:
    before = await hot_connections(cluster)
    hot = ClusterMultiplexer(cluster.url)
    try:
        replies = await asyncio.gather(
            *(hot.execute_command("SET", f"os:{{p{i % 64}}}:hot-test", i) for i in range(640))
        )
        assert replies == [b"OK"] * 640
        reads = await hot.execute_many([("GET", f"os:{{p{p}}}:hot-test") for p in range(64)])
        assert reads == [str(576 + p).encode() for p in range(64)]
        after = await hot_connections(cluster)
        assert {port: after[port] - before[port] for port in after} == dict.fromkeys(after, 1)
        assert len(await hot.primaries()) == 3
    finally:
        await hot.aclose()


async def test_a_stale_map_is_corrected_by_moved(cluster: LocalCluster) -> None:
    hot = ClusterMultiplexer(cluster.url)
    try:
        key = "os:{p9}:moved-test"
        slot = hot.slot(key)
        await hot.refresh()
        right = hot._slots[slot]
        wrong = next(a for a in await hot.primaries() if a != right)
        hot._slots[slot] = wrong  # as after a resharding this process has not heard of
        assert await hot.execute_command("SET", key, "v") == b"OK"
        assert hot._slots[slot] == right
        assert await hot.execute_many([("GET", key)]) == [b"v"]
    finally:
        await hot.aclose()


async def test_ask_during_a_slot_migration_is_followed_with_asking(cluster: LocalCluster) -> None:
    hot = ClusterMultiplexer(cluster.url)
    key = "os:{ask-test}:k"
    slot = hot.slot(key)
    primaries = await hot.primaries()
    source_address = hot._slots[slot]
    assert source_address is not None
    target_address = next(a for a in primaries if a != source_address)
    source, target = node_client(cluster, source_address), node_client(cluster, target_address)
    source_id = (await source.execute_command("CLUSTER", "MYID")).decode()
    target_id = (await target.execute_command("CLUSTER", "MYID")).decode()
    # Other tests' keys may share the slot (16,384 slots, keys named from random ids): count them.
    left_on_source = await source.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    try:
        await target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        # The key is not on the source: it answers ASK, and the command lands on the target.
        assert await hot.execute_command("SET", key, "moved-in") == b"OK"
        asked = await target.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
        stayed = await source.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
        assert (asked, stayed) == (1, left_on_source)
        assert hot._slots[slot] == source_address  # ASK does not move the slot in the map
    finally:
        pipe = target.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.delete(key)
        await pipe.execute()
        for node in (source, target):
            await node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            await node.aclose()
        await hot.aclose()


async def test_a_primary_that_lost_the_library_gets_it_again(
    cluster: LocalCluster, redis: ClusterClient, scripts: Scripts
) -> None:
    hot = ClusterMultiplexer(cluster.url)
    try:
        await scripts.library.load(redis)
        stream = keys.stream(11)
        await hot.refresh()
        address = hot.owner(stream)
        assert address is not None
        node = node_client(cluster, address)
        await node.function_flush()
        await node.aclose()
        reply = await scripts.trim(hot, [stream], ["0-1"])
        assert reply.code == 0
        listed = await redis.function_list(library=scripts.library.name)
        assert sorted(len(libraries) for libraries in listed.values()) == [1, 1, 1]
    finally:
        await hot.aclose()
